"""Initialisation from DeiT and PaSST, position-encoding resizing, and load_checkpoint's dispatch."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from maest.checkpoints import CheckpointError, init_from_deit, init_from_passt, load_checkpoint, save_native
from maest.checkpoints.posenc import NotSeparableError, resize_grid, split_separable
from maest.configs import MaestConfig, for_segment
from maest.model import Maest

WIDTH = 768
DEPTH = 2  # block tensors are copied one-to-one; two blocks show the pattern at full width


def blocks(depth: int = DEPTH) -> dict[str, torch.Tensor]:
    shapes = {"norm1.weight": (WIDTH,), "norm1.bias": (WIDTH,), "attn.qkv.weight": (3 * WIDTH, WIDTH),
              "attn.qkv.bias": (3 * WIDTH,), "attn.proj.weight": (WIDTH, WIDTH), "attn.proj.bias": (WIDTH,),
              "norm2.weight": (WIDTH,), "norm2.bias": (WIDTH,), "mlp.fc1.weight": (4 * WIDTH, WIDTH),
              "mlp.fc1.bias": (4 * WIDTH,), "mlp.fc2.weight": (WIDTH, 4 * WIDTH), "mlp.fc2.bias": (WIDTH,)}
    return {f"blocks.{i}.{k}": torch.randn(s) for i in range(depth) for k, s in shapes.items()}


def deit_state() -> dict[str, torch.Tensor]:
    """timm deit_base_distilled_patch16_384 layout (checkpoints.md, section 4)."""
    torch.manual_seed(0)
    return {"cls_token": torch.randn(1, 1, WIDTH), "dist_token": torch.randn(1, 1, WIDTH),
            "pos_embed": torch.randn(1, 2 + 24 * 24, WIDTH), "patch_embed.proj.weight": torch.randn(WIDTH, 3, 16, 16),
            "patch_embed.proj.bias": torch.randn(WIDTH), **blocks(), "norm.weight": torch.randn(WIDTH),
            "norm.bias": torch.randn(WIDTH), "head.weight": torch.randn(1000, WIDTH), "head.bias": torch.randn(1000),
            "head_dist.weight": torch.randn(1000, WIDTH), "head_dist.bias": torch.randn(1000)}


def passt_state() -> dict[str, torch.Tensor]:
    """passt_s_swa_p16_128_ap476 layout (checkpoints.md, section 5)."""
    torch.manual_seed(1)
    return {"cls_token": torch.randn(1, 1, WIDTH), "dist_token": torch.randn(1, 1, WIDTH),
            "new_pos_embed": torch.randn(1, 2, WIDTH), "freq_new_pos_embed": torch.randn(1, WIDTH, 12, 1),
            "time_new_pos_embed": torch.randn(1, WIDTH, 1, 99), "patch_embed.proj.weight": torch.randn(WIDTH, 1, 16, 16),
            "patch_embed.proj.bias": torch.randn(WIDTH), **blocks(), "norm.weight": torch.randn(WIDTH),
            "norm.bias": torch.randn(WIDTH), "head.0.weight": torch.randn(WIDTH), "head.0.bias": torch.randn(WIDTH),
            "head.1.weight": torch.randn(527, WIDTH), "head.1.bias": torch.randn(527),
            "head_dist.weight": torch.randn(527, WIDTH), "head_dist.bias": torch.randn(527)}


def target(seconds: int = 10) -> MaestConfig:
    return for_segment(seconds, depth=DEPTH)


def assert_blocks_copied(model: Maest, state: dict[str, torch.Tensor]) -> None:
    for key, value in model.state_dict().items():
        if key.startswith(("blocks.", "norm.")):
            torch.testing.assert_close(value, state[key], atol=0, rtol=0)


def test_deit_init_matches_independent_interpolation():
    state = deit_state()
    config = target(10)
    model = init_from_deit(config, state)
    grid = state["pos_embed"][:, 2:].reshape(1, 24, 24, WIDTH).permute(0, 3, 1, 2)
    resized = F.interpolate(grid, size=(9, 62), mode="bicubic", align_corners=False)
    torch.testing.assert_close(model.freq_new_pos_embed.data, resized.mean(dim=3, keepdim=True))
    torch.testing.assert_close(model.time_new_pos_embed.data, resized.mean(dim=2, keepdim=True))
    torch.testing.assert_close(model.new_pos_embed.data, state["pos_embed"][:, :2])
    torch.testing.assert_close(model.patch_embed.proj.weight.data, state["patch_embed.proj.weight"].sum(1, keepdim=True))
    torch.testing.assert_close(model.cls_token.data, state["cls_token"], atol=0, rtol=0)
    assert_blocks_copied(model, state)
    assert model.head[1].weight.shape == (400, WIDTH)  # fresh Discogs head, not ImageNet's


def test_passt_init_from_file_matches_independent_interpolation(tmp_path):
    state = passt_state()
    torch.save({"state_dict": {f"net.{k}": v for k, v in state.items()}}, tmp_path / "passt.ckpt")
    for seconds, columns in ((5, 31), (30, 187)):
        model = init_from_passt(target(seconds), tmp_path / "passt.ckpt")
        freq = F.interpolate(state["freq_new_pos_embed"], size=(9, 1), mode="bicubic", align_corners=False)
        time = F.interpolate(state["time_new_pos_embed"], size=(1, columns), mode="bicubic", align_corners=False)
        torch.testing.assert_close(model.freq_new_pos_embed.data, freq)
        torch.testing.assert_close(model.time_new_pos_embed.data, time)
        torch.testing.assert_close(model.new_pos_embed.data, state["new_pos_embed"], atol=0, rtol=0)
        assert_blocks_copied(model, state)
        assert model.head[1].weight.shape == (400, WIDTH)


def test_init_rejects_a_mismatched_backbone():
    state = passt_state()
    with pytest.raises(CheckpointError, match="missing keys.*blocks.2"):
        init_from_passt(for_segment(10, depth=3), state)
    with pytest.raises(CheckpointError, match="distilled"):
        init_from_deit(target(), {k: v for k, v in deit_state().items() if k != "dist_token"})


def test_resize_grid_is_bicubic_and_keeps_singleton_axes():
    torch.manual_seed(2)
    grid = torch.randn(1, 8, 12, 1)
    torch.testing.assert_close(resize_grid(grid, 12, 1), grid, atol=0, rtol=0)
    # along the one axis, bicubic equals 1-d cubic interpolation of that axis
    expected = F.interpolate(grid.expand(1, 8, 12, 4), size=(9, 4), mode="bicubic", align_corners=False)[..., :1]
    torch.testing.assert_close(resize_grid(grid, 9, 1), expected)
    with pytest.raises(NotSeparableError):
        split_separable(torch.randn(1, 8, 9, 10))


def test_load_checkpoint_dispatches_native_and_rejects_unknown(tmp_path):
    model = Maest(MaestConfig(depth=1, width=64, heads=1, segment_frames=100, num_classes=3))
    save_native(model, tmp_path / "native")
    back = load_checkpoint(tmp_path / "native")
    torch.testing.assert_close(back.cls_token, model.cls_token, atol=0, rtol=0)
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(CheckpointError, match="unrecognised"):
        load_checkpoint(tmp_path / "notes.txt")


def test_registry_name_offline_says_what_to_download(tmp_path, monkeypatch):
    monkeypatch.setenv("MAEST_HOME", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CheckpointError) as error:
        load_checkpoint("discogs-maest-10s-pw-129e")
    message = str(error.value)
    assert "https://huggingface.co/mtg-upf/discogs-maest-10s-pw-129e" in message
    assert str(tmp_path / "discogs-maest-10s-pw-129e") in message


def test_registry_name_found_in_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MAEST_HOME", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = Maest(MaestConfig(depth=1, width=64, heads=1, segment_frames=625, num_classes=400))
    save_native(model, tmp_path / "discogs-maest-10s-pw-129e")
    back = load_checkpoint("discogs-maest-10s-pw-129e")
    assert back.config.name == "discogs-maest-10s-pw-129e"
    torch.testing.assert_close(back.head[1].weight, model.head[1].weight, atol=0, rtol=0)


def test_registry_name_download_failure_says_what_to_download(tmp_path, monkeypatch):
    huggingface_hub = pytest.importorskip("huggingface_hub")
    monkeypatch.setenv("MAEST_HOME", str(tmp_path))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)

    def no_network(**_kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", no_network)
    with pytest.raises(CheckpointError, match="network is unreachable.*huggingface.co/mtg-upf/discogs-maest-5s-pw-129e"):
        load_checkpoint("discogs-maest-5s-pw-129e")
    with pytest.raises(CheckpointError, match="network is unreachable"):
        load_checkpoint("someone/some-maest")


def test_registry_name_downloads_hf_folder_into_cache(tmp_path, monkeypatch):
    huggingface_hub = pytest.importorskip("huggingface_hub")
    from maest.checkpoints import export_hf

    monkeypatch.setenv("MAEST_HOME", str(tmp_path))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    model = Maest(MaestConfig(depth=1, width=64, heads=1, segment_frames=312, num_classes=400, layer_norm_eps=1e-6,
                              head_norm_eps=1e-6))
    requests = []

    def fake_download(repo_id: str, allow_patterns, local_dir: str) -> str:
        requests.append((repo_id, local_dir))
        export_hf(model, local_dir)  # what the hub repository holds
        return local_dir

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_download)
    back = load_checkpoint("discogs-maest-5s-pw-129e")
    assert requests == [("mtg-upf/discogs-maest-5s-pw-129e", str(tmp_path / "discogs-maest-5s-pw-129e"))]
    assert back.config.name == "discogs-maest-5s-pw-129e" and back.config.segment_frames == 312
    torch.testing.assert_close(back.head[1].weight, model.head[1].weight, atol=0, rtol=0)
    load_checkpoint("discogs-maest-5s-pw-129e")  # now from the cache, no second download
    assert len(requests) == 1


def test_init_from_a_training_checkpoint_without_an_average_takes_the_live_network(tmp_path):
    """``maest train`` keeps ``net_swa`` from the start; before its first snapshot it holds the initial weights."""
    live, untouched = passt_state(), {k: torch.zeros_like(v) for k, v in passt_state().items()}
    state = {**{f"net.{k}": v for k, v in live.items()}, **{f"net_swa.{k}": v for k, v in untouched.items()},
             "swa_snapshots": torch.tensor(0)}
    torch.save({"state_dict": state}, tmp_path / "last.ckpt")
    model = init_from_passt(target(10), tmp_path / "last.ckpt")
    torch.testing.assert_close(model.cls_token.data, live["cls_token"], atol=0, rtol=0)
    # Once averaged, the SWA copy is the one taken.
    state["swa_snapshots"] = torch.tensor(3)
    torch.save({"state_dict": state}, tmp_path / "last.ckpt")
    model = init_from_passt(target(10), tmp_path / "last.ckpt")
    torch.testing.assert_close(model.cls_token.data, untouched["cls_token"], atol=0, rtol=0)
