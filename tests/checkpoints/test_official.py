"""Original MAEST checkpoints: plain and Lightning-wrapped state dicts, both directions."""

from __future__ import annotations

import pytest
import torch

from maest.checkpoints import CheckpointError, load_checkpoint
from maest.checkpoints.official import infer_config, load_official, save_official, select_network, to_official
from maest.configs import for_segment, MaestConfig
from maest.registry import architecture
from maest.model import Maest


def tiny(num_classes: int = 400, seed: int = 0) -> Maest:
    torch.manual_seed(seed)
    config = MaestConfig(depth=2, width=64, heads=1, segment_frames=312, num_classes=num_classes)
    return Maest(config).eval()


def assert_same_weights(a: Maest, b: Maest) -> None:
    assert a.state_dict().keys() == b.state_dict().keys()
    for key, value in a.state_dict().items():
        torch.testing.assert_close(b.state_dict()[key], value, atol=0, rtol=0)


def test_plain_round_trip(tmp_path):
    model = tiny()
    path = save_official(model, tmp_path / "maest.pt")
    back = load_checkpoint(path)
    assert_same_weights(model, back)
    # the architecture comes from the shapes alone (heads default to width // 64)
    expected = model.config
    for field in ("depth", "width", "heads", "mlp_ratio", "n_mels", "segment_frames", "num_classes"):
        assert getattr(back.config, field) == getattr(expected, field), field
    assert back.config.labels is not None and len(back.config.labels) == 400  # Discogs names attached
    mel = torch.randn(2, 96, 312)
    with torch.no_grad():
        torch.testing.assert_close(back.eval()(mel), model(mel), atol=0, rtol=0)


def test_full_size_key_layout_and_inferred_config():
    with torch.device("meta"):
        model = Maest(architecture("discogs-maest-30s-pw-129e"))
    state = model.state_dict()
    assert len(state) == 159
    shapes = {"freq_new_pos_embed": (1, 768, 9, 1), "time_new_pos_embed": (1, 768, 1, 187),
              "blocks.11.attn.qkv.weight": (2304, 768), "head.1.weight": (400, 768), "head_dist.weight": (400, 768),
              "new_pos_embed": (1, 2, 768), "patch_embed.proj.weight": (768, 1, 16, 16)}
    for key, shape in shapes.items():
        assert tuple(state[key].shape) == shape, key
    inferred = infer_config(state)
    expected = for_segment(30)
    for field in ("depth", "width", "heads", "mlp_ratio", "n_mels", "segment_frames", "num_classes",
                  "train_patchout_time"):
        assert getattr(inferred, field) == getattr(expected, field), field


def lightning(plain: Maest, averaged: Maest | None) -> dict:
    """A Lightning checkpoint as the original training code writes it (weights under prefixes)."""
    state = {f"net.{k}": v for k, v in plain.state_dict().items()}
    if averaged is not None:
        state.update({f"net_swa.{k}": v for k, v in averaged.state_dict().items()})
    state["mel.window"] = torch.hann_window(512)  # a frontend buffer: not part of either network
    return {"epoch": 129, "global_step": 1000, "pytorch-lightning_version": "1.9.0", "state_dict": state,
            "hyper_parameters": {"lr": 1e-4}}


def test_lightning_picks_swa_by_default_and_plain_on_request(tmp_path):
    plain, averaged = tiny(seed=1), tiny(seed=2)
    path = tmp_path / "epoch=129.ckpt"
    torch.save(lightning(plain, averaged), path)
    assert_same_weights(averaged, load_checkpoint(path))
    assert_same_weights(plain, load_checkpoint(path, swa=False))
    assert_same_weights(plain, load_official(path, swa=False))


def test_lightning_without_swa_copy_gives_plain(tmp_path):
    plain = tiny(seed=1)
    path = tmp_path / "last.ckpt"
    torch.save(lightning(plain, None), path)
    assert_same_weights(plain, load_checkpoint(path))
    assert_same_weights(plain, load_checkpoint(path, swa=False))


def test_missing_and_unexpected_keys_fail_loudly(tmp_path):
    state = to_official(tiny())
    missing = {k: v for k, v in state.items() if k != "blocks.1.mlp.fc2.bias"}
    torch.save(missing, tmp_path / "missing.pt")
    with pytest.raises(CheckpointError, match="missing keys.*blocks.1.mlp.fc2.bias"):
        load_checkpoint(tmp_path / "missing.pt")
    torch.save({**state, "blocks.0.attn.extra": torch.zeros(3)}, tmp_path / "extra.pt")
    with pytest.raises(CheckpointError, match="unexpected keys.*blocks.0.attn.extra"):
        load_checkpoint(tmp_path / "extra.pt")
    with pytest.raises(CheckpointError, match="no 'cls_token'"):
        select_network({"weight": torch.zeros(1)})


def test_pickled_objects_are_refused(tmp_path):
    path = tmp_path / "unsafe.ckpt"
    torch.save({"state_dict": to_official(tiny()), "callback": CheckpointError("not a tensor")}, path)
    with pytest.raises(CheckpointError, match="weights_only"):
        load_checkpoint(path)


def test_grid_model_cannot_be_exported_to_the_original_layout():
    model = Maest(MaestConfig(depth=1, width=64, heads=1, segment_frames=100, num_classes=3), grid_pos_embed=True)
    with pytest.raises(CheckpointError, match="separable"):
        to_official(model)
