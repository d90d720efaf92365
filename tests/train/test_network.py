"""The network a training config builds: architecture from the config and labels, initialisation."""

from __future__ import annotations


import pytest
import torch

from maest.checkpoints import save_native
from maest.configs import for_segment
from maest.model import Maest
from maest.train.config import ConfigError, from_dict
from maest.train.network import InitError, architecture, build_network

WIDTH, DEPTH = 32, 2
LABELS = ["A---a", "A---b", "B---c"]
ARCH = {"depth": DEPTH, "width": WIDTH, "heads": 2}


def passt_like(width: int = WIDTH, depth: int = DEPTH) -> dict[str, torch.Tensor]:
    """A PaSST state dict (12 frequency and 99 time encodings, 527 AudioSet classes) at a small width."""
    torch.manual_seed(0)
    model = Maest(for_segment(10, depth=depth, width=width, heads=2, num_classes=527))
    state = {k: torch.randn_like(v) for k, v in model.state_dict().items()}
    state["freq_new_pos_embed"] = torch.randn(1, width, 12, 1)
    state["time_new_pos_embed"] = torch.randn(1, width, 1, 99)
    return state


def config(**model) -> object:
    return from_dict({"model": {"segment_seconds": 10, "arch": dict(ARCH), **model}})


def test_architecture_follows_segment_labels_and_normalisation():
    arch = architecture(config(), LABELS, 1.5, 0.5)
    assert (arch.segment_frames, arch.train_patchout_time, arch.num_classes) == (625, 30, 3)
    assert (arch.depth, arch.width, arch.labels, arch.norm_mean, arch.norm_std) == (DEPTH, WIDTH, LABELS, 1.5, 0.5)
    with pytest.raises(ConfigError, match="num_classes"):
        architecture(config(arch={**ARCH, "num_classes": 5}), LABELS, 0.0, 1.0)


def test_passt_initialisation_copies_the_blocks(tmp_path):
    state = passt_like()
    path = tmp_path / "passt.pt"
    torch.save(state, path)
    net = build_network(config(init="passt", init_path=str(path)), LABELS, 0.0, 1.0)
    assert net.head[1].weight.shape == (3, WIDTH)
    for key, value in net.state_dict().items():
        if key.startswith(("blocks.", "norm.", "patch_embed.")):
            torch.testing.assert_close(value, state[key], rtol=0, atol=0)
    assert net.time_new_pos_embed.shape[-1] == 62  # resized from PaSST's 99 encodings


def test_maest_initialisation_crops_time_encodings_and_restarts_other_heads(tmp_path):
    torch.manual_seed(1)
    source = Maest(for_segment(30, depth=DEPTH, width=WIDTH, heads=2, num_classes=7))
    save_native(source, tmp_path / "m")
    net = build_network(config(init="maest", init_path=str(tmp_path / "m")), LABELS, 0.0, 1.0)
    torch.testing.assert_close(net.time_new_pos_embed, source.time_new_pos_embed[..., :62], rtol=0, atol=0)
    torch.testing.assert_close(net.blocks[1].mlp.fc2.weight, source.blocks[1].mlp.fc2.weight, rtol=0, atol=0)
    assert net.head[1].weight.shape == (3, WIDTH)
    wider = Maest(for_segment(30, depth=DEPTH, width=2 * WIDTH, heads=2, num_classes=3))
    save_native(wider, tmp_path / "wider")
    with pytest.raises(InitError):
        build_network(config(init="maest", init_path=str(tmp_path / "wider")), LABELS, 0.0, 1.0)


def test_missing_init_file_is_a_clear_error(tmp_path):
    with pytest.raises(InitError, match="does not exist"):
        build_network(config(init="deit", init_path=str(tmp_path / "none.pth")), LABELS, 0.0, 1.0)


@pytest.mark.parametrize("seconds, frames, columns", [(5, 312, 15), (10, 625, 30), (20, 1250, 60), (30, 1875, 90)])
def test_structured_patchout_counts_per_segment_length(seconds, frames, columns):
    arch = architecture(config(segment_seconds=seconds), LABELS, 0.0, 1.0)
    assert (arch.segment_frames, arch.train_patchout_time, arch.train_patchout_freq) == (frames, columns, 3)


def test_weight_decay_spares_exactly_the_encodings_and_tokens():
    from maest.train.module import MaestTraining

    cfg = config()
    module = MaestTraining(cfg, build_network(cfg, LABELS, 0.0, 1.0))
    optimizer = module.configure_optimizers()["optimizer"]
    names = {id(p): n for n, p in module.net.named_parameters()}
    spared = {"cls_token", "dist_token", "new_pos_embed", "freq_new_pos_embed", "time_new_pos_embed"}
    by_decay = {g["weight_decay"]: {names[id(p)] for p in g["params"]} for g in optimizer.param_groups}
    assert by_decay[0.0] == spared
    trained = {n for n, p in module.net.named_parameters() if p.requires_grad}
    assert by_decay[1e-4] == trained - spared and not any(n.startswith("head_dist") for n in by_decay[1e-4])
    assert isinstance(optimizer, torch.optim.AdamW) and optimizer.param_groups[0]["lr"] == pytest.approx(1e-4 / 5)
