"""maest's own format: ``model.safetensors`` + ``config.json`` in a folder (or one .safetensors file
whose metadata holds the config). Round-trips exactly; nothing is unpickled.

The description records the network's ``"type"`` (``"maest"`` or ``"effnet"``), so one reader builds
either. Files written before the type was recorded still load: MAEST folders/files without a type
are ``"maest"``, and the EffNet baseline's older single files (``"maest-effnet"`` metadata) are read
as ``"effnet"``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from maest import frontend
from maest.checkpoints.errors import CheckpointError  # noqa: F401  (also importable from here, as before)
from maest.checkpoints.files import load_safetensors, safetensors_metadata
from maest.checkpoints.networks import Network, network_from_config, network_type

FORMAT_NAME = "maest"
FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
METADATA_KEY = "maest"  # single-file form: the description, in the safetensors metadata
LEGACY_EFFNET_KEY = "maest-effnet"  # EffNet single files written before the "type" field: the bare config


def describe(model: Network) -> dict:
    """The JSON description of ``model`` stored beside its weights."""
    description: dict[str, Any] = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "type": network_type(model),
        "config": model.config.to_dict(),
    }
    if description["type"] == "maest":
        description["grid_pos_embed"] = model.has_grid_pos_embed
    description["frontend"] = {
        "version": frontend.FRONTEND_VERSION,
        "sample_rate": frontend.SAMPLE_RATE,
        "frame_size": frontend.FRAME_SIZE,
        "hop_size": frontend.HOP_SIZE,
        "n_bands": frontend.N_BANDS,
        "mean": model.config.norm_mean,
        "std": model.config.norm_std,
    }
    return description


def save_native(model: Network, path: str | os.PathLike) -> Path:
    """Write ``model`` (MAEST or EffNet) to ``path``: a folder (weights + config.json) or a ``.safetensors`` file."""
    from safetensors.torch import save_file

    path = Path(path)
    description = describe(model)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if path.suffix == ".safetensors":
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file(tensors, str(path), metadata={METADATA_KEY: json.dumps(description)})
        return path
    path.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path / WEIGHTS_FILE), metadata={"format": FORMAT_NAME})
    (path / CONFIG_FILE).write_text(json.dumps(description, indent=2))
    return path


def is_native(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a maest-native folder or single file (False for unreadable files too)."""
    path = Path(path)
    if path.is_dir():
        config = path / CONFIG_FILE
        if not config.is_file() or not (path / WEIGHTS_FILE).is_file():
            return False
        try:
            return json.loads(config.read_text()).get("format") == FORMAT_NAME
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
            return False
    if path.suffix == ".safetensors" and path.is_file():
        try:
            metadata = safetensors_metadata(path)
        except CheckpointError:
            return False
        return METADATA_KEY in metadata or LEGACY_EFFNET_KEY in metadata
    return False


def read_description(path: str | os.PathLike) -> tuple[dict, Path]:
    """The description of a native checkpoint (legacy files normalised) and its weights file."""
    path = Path(path)
    if path.is_dir():
        config_path, weights_path = path / CONFIG_FILE, path / WEIGHTS_FILE
        if not config_path.is_file() or not weights_path.is_file():
            raise CheckpointError(f"{path} is not a maest checkpoint folder (needs {CONFIG_FILE} and {WEIGHTS_FILE})")
        description = _parse_json(config_path.read_bytes(), config_path)
    else:
        if not path.is_file():
            raise CheckpointError(f"no checkpoint at {path}")
        weights_path = path
        metadata = safetensors_metadata(path)
        if METADATA_KEY in metadata:
            description = _parse_json(metadata[METADATA_KEY], f"{path} (its '{METADATA_KEY}' metadata)")
        elif LEGACY_EFFNET_KEY in metadata:
            config = _parse_json(metadata[LEGACY_EFFNET_KEY], f"{path} (its '{LEGACY_EFFNET_KEY}' metadata)")
            description = {"format": FORMAT_NAME, "format_version": 1, "type": "effnet", "config": config}
        else:
            raise CheckpointError(f"{path} has no maest config in its safetensors metadata")
    if not isinstance(description, dict) or description.get("format") != FORMAT_NAME:
        raise CheckpointError(f"{path}: not a maest-format checkpoint")
    version = description.get("format_version", 0)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(f"{path}: format version {version!r} is newer than this maest; upgrade maest")
    if "config" not in description:
        raise CheckpointError(f"{path}: the description has no 'config'")
    description.setdefault("type", "maest")  # written before the type was recorded: MAEST
    return description, weights_path


def _parse_json(text: str | bytes, source: Any) -> Any:
    try:
        return json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{source} is not valid JSON ({error}); the file is damaged or not a maest config") \
            from error


def load_native(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Network:
    """Build the network (MAEST or EffNet) a native checkpoint describes and load its weights strictly."""
    description, weights_path = read_description(path)
    source = str(weights_path.parent / CONFIG_FILE) if Path(path).is_dir() else str(path)
    options = {"grid_pos_embed": bool(description.get("grid_pos_embed", False))} if description["type"] == "maest" else {}
    model = network_from_config(description["type"], description["config"], source, **options)
    load_state_dict_strict(model, load_safetensors(weights_path, map_location), str(path))
    return model


def load_state_dict_strict(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load weights, failing loudly (with the key names) on missing, unexpected or misshapen keys."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    misshapen = sorted(k for k in set(expected) & set(state) if tuple(expected[k].shape) != tuple(state[k].shape))
    if missing or unexpected or misshapen:
        details = []
        if missing:
            details.append(f"missing keys {missing[:8]}{' ...' if len(missing) > 8 else ''}")
        if unexpected:
            details.append(f"unexpected keys {unexpected[:8]}{' ...' if len(unexpected) > 8 else ''}")
        if misshapen:
            details.append(
                "shape mismatch " + ", ".join(f"{k}: {tuple(state[k].shape)} vs {tuple(expected[k].shape)}" for k in misshapen[:8])
            )
        raise CheckpointError(f"{source} does not match the model: " + "; ".join(details))
    model.load_state_dict(state, strict=True)
