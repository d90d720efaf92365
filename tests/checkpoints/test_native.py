"""maest's native format for both network types: the recorded ``"type"``, EffNet folders and files
through the same reader, and files written before the type existed (MAEST and the old EffNet format)."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from maest import frontend
from maest.checkpoints import (CheckpointError, EffNetCheckpointError, is_effnet, load_checkpoint, load_effnet,
                               load_native, save_effnet, save_native)
from maest.configs import MaestConfig
from maest.effnet import EffNet, EffNetConfig
from maest.model import Maest


def tiny_maest() -> Maest:
    torch.manual_seed(0)
    return Maest(MaestConfig(depth=1, width=32, heads=2, num_classes=3, segment_frames=64, labels=["a", "b", "c"],
                             train_patchout_time=0, train_patchout_freq=0, name="tiny")).eval()


def tiny_effnet() -> EffNet:
    torch.manual_seed(0)
    return EffNet(EffNetConfig(num_classes=2, width_mult=0.25, depth_mult=0.34, labels=["x", "y"])).eval()


def same_outputs(a: torch.nn.Module, b: torch.nn.Module, frames: int = 64) -> None:
    assert type(a) is type(b) and a.config == b.config
    mel = torch.randn(2, 96, frames)
    with torch.no_grad():
        torch.testing.assert_close(a.eval()(mel), b.eval()(mel), atol=0, rtol=0)


@pytest.mark.parametrize("name", ["folder", "file.safetensors"])
@pytest.mark.parametrize("make, kind", [(tiny_maest, "maest"), (tiny_effnet, "effnet")])
def test_one_format_for_both_types(make, kind, name, tmp_path):
    model = make()
    path = save_native(model, tmp_path / name)
    if path.is_dir():
        description = json.loads((path / "config.json").read_text())
    else:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            description = json.loads(f.metadata()["maest"])
    assert description["type"] == kind and description["format"] == "maest"
    same_outputs(model, load_native(path))
    same_outputs(model, load_checkpoint(path))
    assert is_effnet(path) == (kind == "effnet")


def test_config_key_order_unchanged():
    """Identity fields come last in to_dict, as in files written before the shared base."""
    keys = list(MaestConfig().to_dict())
    assert keys[:2] == ["depth", "width"] and keys[-4:] == ["labels", "norm_mean", "norm_std", "name"]
    assert list(EffNetConfig().to_dict())[-4:] == ["labels", "norm_mean", "norm_std", "name"]
    assert EffNetConfig().name == "effnet-b0" and MaestConfig().name == "maest"


def _old_describe(model: Maest) -> dict:
    """What maest wrote before the ``type`` field (checkpoints/native.py at 1a4ab6d)."""
    return {
        "format": "maest",
        "format_version": 1,
        "config": model.config.to_dict(),
        "grid_pos_embed": model.has_grid_pos_embed,
        "frontend": {"version": frontend.FRONTEND_VERSION, "sample_rate": frontend.SAMPLE_RATE,
                     "frame_size": frontend.FRAME_SIZE, "hop_size": frontend.HOP_SIZE, "n_bands": frontend.N_BANDS,
                     "mean": model.config.norm_mean, "std": model.config.norm_std},
    }


def _tensors(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}


def test_old_maest_folder_and_file_without_type_load(tmp_path):
    model = tiny_maest()
    folder = tmp_path / "old"
    folder.mkdir()
    save_file(_tensors(model), str(folder / "model.safetensors"), metadata={"format": "maest"})
    (folder / "config.json").write_text(json.dumps(_old_describe(model), indent=2))
    same_outputs(model, load_checkpoint(folder))
    single = tmp_path / "old.safetensors"
    save_file(_tensors(model), str(single), metadata={"maest": json.dumps(_old_describe(model))})
    same_outputs(model, load_checkpoint(single))


def test_old_effnet_file_loads(tmp_path):
    """EffNet files written by the old ``maest.effnet.save_effnet`` (bare config in 'maest-effnet')."""
    model = tiny_effnet()
    path = tmp_path / "model.safetensors"
    save_file(_tensors(model), str(path), metadata={"maest-effnet": json.dumps(model.config.to_dict())})
    assert is_effnet(path)
    same_outputs(model, load_checkpoint(path))
    same_outputs(model, load_effnet(path))


def test_effnet_helpers_refuse_the_other_type(tmp_path):
    maest_path = save_native(tiny_maest(), tmp_path / "maest")
    with pytest.raises(EffNetCheckpointError, match="not an EffNet"):
        load_effnet(maest_path)
    with pytest.raises(EffNetCheckpointError):
        save_effnet(tiny_maest(), tmp_path / "x.safetensors")
    assert isinstance(EffNetCheckpointError("x"), (CheckpointError, ValueError))


def test_unknown_type_and_newer_version_are_refused(tmp_path):
    folder = save_native(tiny_maest(), tmp_path / "m")
    description = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**description, "type": "resnet"}))
    with pytest.raises(CheckpointError, match="unknown network type 'resnet'"):
        load_checkpoint(folder)
    (folder / "config.json").write_text(json.dumps({**description, "format_version": 99}))
    with pytest.raises(CheckpointError, match="newer than this maest"):
        load_checkpoint(folder)


def test_old_import_paths_still_work():
    from maest import effnet
    from maest.checkpoints.native import CheckpointError as native_error

    assert native_error is CheckpointError
    # The 0.1-era lazy aliases on maest.effnet are gone: saving and loading live in maest.checkpoints.
    assert not hasattr(effnet, "load_effnet") and not hasattr(effnet, "save_effnet")
