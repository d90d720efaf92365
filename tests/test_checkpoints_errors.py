"""Bad checkpoint files (issue 11 item 14): each is ONE CheckpointError, on one line, naming the file
and what is wrong, from the library and through the CLI (which prints it as one line)."""

from __future__ import annotations

import json
import os

import pytest
import torch
from typer.testing import CliRunner

from maest.checkpoints import CheckpointError, export_hf, load_checkpoint, save_native
from maest.cli import app
from maest.configs import ConfigValueError, MaestConfig
from maest.effnet import EffNet, EffNetConfig
from maest.model import Maest


def tiny() -> Maest:
    torch.manual_seed(0)
    return Maest(MaestConfig(depth=1, width=32, heads=2, num_classes=3, segment_frames=64,
                             train_patchout_time=0, train_patchout_freq=0))


def truncated_safetensors(tmp_path):
    path = save_native(tiny(), tmp_path / "model.safetensors")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path, "truncated"


def header_only_safetensors(tmp_path):
    path = save_native(tiny(), tmp_path / "model.safetensors")
    data = path.read_bytes()
    path.write_bytes(data[: 8 + int.from_bytes(data[:8], "little")])  # header intact, no tensor bytes
    return path, "truncated"


def bogus_safetensors(tmp_path):
    path = tmp_path / "bogus.safetensors"
    path.write_bytes(os.urandom(4096))
    return path, "not a valid safetensors file"


def pickle_named_safetensors(tmp_path):
    path = tmp_path / "weights.safetensors"
    torch.save(tiny().state_dict(), path)
    return path, "rename it to .pt"


def empty_safetensors(tmp_path):
    path = tmp_path / "empty.safetensors"
    path.write_bytes(b"")
    return path, "empty"


def empty_pt(tmp_path):
    path = tmp_path / "empty.pt"
    path.write_bytes(b"")
    return path, "empty"


def text_ckpt(tmp_path):
    path = tmp_path / "notes.ckpt"
    path.write_text("epoch=3, this is not a checkpoint\n")
    return path, "not a torch checkpoint"


def truncated_pt(tmp_path):
    path = tmp_path / "cut.pt"
    torch.save(tiny().state_dict(), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path, "truncated"


def _native_folder_with(tmp_path, **changes):
    folder = save_native(tiny(), tmp_path / "native")
    description = json.loads((folder / "config.json").read_text())
    description["config"].update(changes)
    (folder / "config.json").write_text(json.dumps(description))
    return folder / "config.json"


def config_width_is_text(tmp_path):
    return _native_folder_with(tmp_path, width="64"), "width must be an int"


def config_depth_zero(tmp_path):
    return _native_folder_with(tmp_path, depth=0), "depth must be > 0"


def config_negative_segment(tmp_path):
    return _native_folder_with(tmp_path, segment_frames=-64), "segment_frames must be > 0"


def config_not_json(tmp_path):
    folder = save_native(tiny(), tmp_path / "native")
    (folder / "config.json").write_text('{"format": "maest", "config": {')
    return folder / "config.json", "not valid JSON"


def single_file_config_wrong_type(tmp_path):
    from safetensors.torch import save_file

    model = tiny()
    description = {"format": "maest", "format_version": 1, "config": {**model.config.to_dict(), "heads": 2.5}}
    path = tmp_path / "bad.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path),
              metadata={"maest": json.dumps(description)})
    return path, "heads must be an int"


def hf_config_wrong_type(tmp_path):
    folder = export_hf(tiny(), tmp_path / "hf")
    hf = json.loads((folder / "config.json").read_text())
    hf["hidden_size"] = "32"
    (folder / "config.json").write_text(json.dumps(hf))
    return folder / "config.json", "not a valid AST config"


CASES = [truncated_safetensors, header_only_safetensors, bogus_safetensors, pickle_named_safetensors,
         empty_safetensors, empty_pt, text_ckpt, truncated_pt, config_width_is_text, config_depth_zero,
         config_negative_segment, config_not_json, single_file_config_wrong_type, hf_config_wrong_type]


def _target(path):
    """What a user passes: the folder for a config.json, else the file."""
    return path.parent if path.name == "config.json" else path


@pytest.mark.parametrize("case", CASES, ids=[c.__name__ for c in CASES])
def test_bad_file_is_one_clear_checkpoint_error(case, tmp_path):
    path, what = case(tmp_path)
    with pytest.raises(CheckpointError) as error:
        load_checkpoint(_target(path))
    message = str(error.value)
    assert str(path) in message, message
    assert what in message, message
    assert "\n" not in message


@pytest.mark.parametrize("case", [truncated_safetensors, pickle_named_safetensors, empty_pt, text_ckpt,
                                  config_width_is_text], ids=lambda c: c.__name__)
def test_cli_prints_one_line(case, tmp_path):
    path, what = case(tmp_path)
    result = CliRunner().invoke(app, ["export", str(_target(path)), str(tmp_path / "out"), "--to", "native"])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "CheckpointError: " in lines[0] and what in lines[0], result.output
    assert not (tmp_path / "out").exists()


def test_effnet_config_is_validated_too(tmp_path):
    folder = save_native(EffNet(EffNetConfig(num_classes=2, width_mult=0.25, depth_mult=0.34)), tmp_path / "eff")
    description = json.loads((folder / "config.json").read_text())
    description["config"]["width_mult"] = -1.0
    (folder / "config.json").write_text(json.dumps(description))
    with pytest.raises(CheckpointError, match=r"config.json: invalid effnet config: EffNetConfig.width_mult must be > 0"):
        load_checkpoint(folder)


@pytest.mark.parametrize("changes, what", [
    ({"width": "64"}, "width must be an int"),
    ({"depth": True}, "depth must be an int"),
    ({"mlp_ratio": float("nan")}, "mlp_ratio must be a finite number"),
    ({"heads": 0}, "heads must be > 0"),
    ({"train_patchout_time": -1}, "train_patchout_time must be >= 0"),
    ({"drop_path_rate": 1.0}, "drop_path_rate must be >= 0 and < 1"),
    ({"width": 30, "heads": 4}, "multiple of heads"),
    ({"labels": ["a", "b"], "num_classes": 3}, "2 labels but num_classes = 3"),
    ({"labels": "abc", "num_classes": 3}, "labels must be a list of strings"),
    ({"norm_std": 0.0}, "norm_std must be > 0"),
    ({"name": 7}, "name must be a str"),
])
def test_config_checks_types_and_ranges(changes, what):
    with pytest.raises(ConfigValueError, match=what):
        MaestConfig(**changes)
    with pytest.raises(ConfigValueError, match="unknown MaestConfig fields"):
        MaestConfig.from_dict({"wdith": 64})


def test_valid_configs_still_build():
    MaestConfig(mlp_ratio=4, layer_norm_eps=1e-12, labels=None)  # an int where a float is expected is fine
    EffNetConfig(96, 128, 3, labels=["a", "b", "c"])  # architecture fields stay positional
    with pytest.raises(ConfigValueError, match="EffNetConfig.dropout"):
        EffNetConfig(dropout=-0.1)
