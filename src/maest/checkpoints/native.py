"""maest's own format: ``model.safetensors`` + ``config.json`` in a folder (or one .safetensors file
whose metadata holds the config). Round-trips exactly; nothing is unpickled."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from maest import frontend
from maest.configs import MaestConfig
from maest.model import Maest

FORMAT_NAME = "maest"
FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"


class CheckpointError(RuntimeError):
    """A checkpoint is missing, malformed, or does not match the architecture it claims."""


def _describe(model: Maest) -> dict:
    return {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "config": model.config.to_dict(),
        "grid_pos_embed": model.has_grid_pos_embed,
        "frontend": {
            "version": frontend.FRONTEND_VERSION,
            "sample_rate": frontend.SAMPLE_RATE,
            "frame_size": frontend.FRAME_SIZE,
            "hop_size": frontend.HOP_SIZE,
            "n_bands": frontend.N_BANDS,
            "mean": model.config.norm_mean,
            "std": model.config.norm_std,
        },
    }


def save_native(model: Maest, path: str | os.PathLike) -> Path:
    """Write ``model`` to ``path``: a folder (weights + config.json) or a ``.safetensors`` file."""
    from safetensors.torch import save_file

    path = Path(path)
    description = _describe(model)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if path.suffix == ".safetensors":
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file(tensors, str(path), metadata={"maest": json.dumps(description)})
        return path
    path.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path / WEIGHTS_FILE), metadata={"format": FORMAT_NAME})
    (path / CONFIG_FILE).write_text(json.dumps(description, indent=2))
    return path


def is_native(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a maest-native folder or single file."""
    path = Path(path)
    if path.is_dir():
        config = path / CONFIG_FILE
        if not config.is_file() or not (path / WEIGHTS_FILE).is_file():
            return False
        try:
            return json.loads(config.read_text()).get("format") == FORMAT_NAME
        except (json.JSONDecodeError, AttributeError):
            return False
    if path.suffix == ".safetensors" and path.is_file():
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            return "maest" in (f.metadata() or {})
    return False


def load_native(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Maest:
    """Build the model a native checkpoint describes and load its weights strictly."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(path)
    if path.is_dir():
        config_path, weights_path = path / CONFIG_FILE, path / WEIGHTS_FILE
        if not config_path.is_file() or not weights_path.is_file():
            raise CheckpointError(f"{path} is not a maest checkpoint folder (needs {CONFIG_FILE} and {WEIGHTS_FILE})")
        description = json.loads(config_path.read_text())
    else:
        if not path.is_file():
            raise CheckpointError(f"no checkpoint at {path}")
        weights_path = path
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
        if "maest" not in metadata:
            raise CheckpointError(f"{path} has no maest config in its safetensors metadata")
        description = json.loads(metadata["maest"])
    if description.get("format") != FORMAT_NAME:
        raise CheckpointError(f"{path}: not a maest-format checkpoint")
    if description.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(f"{path}: format version {description['format_version']} is newer than this maest")
    model = Maest(MaestConfig.from_dict(description["config"]), grid_pos_embed=description.get("grid_pos_embed", False))
    state = load_file(str(weights_path), device=str(map_location))
    load_state_dict_strict(model, state, str(path))
    return model


def load_state_dict_strict(model: Maest, state: dict[str, torch.Tensor], source: str) -> None:
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
