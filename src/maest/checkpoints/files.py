"""Reading tensor files safely: safetensors, or ``torch.load(weights_only=True)``, never arbitrary pickles."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import torch

from maest.checkpoints.native import CheckpointError


def read_file(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The top-level dict stored in ``path`` (a state dict, or a Lightning/timm checkpoint dict)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint file at {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device=str(map_location))
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, AttributeError, TypeError) as error:
        raise CheckpointError(
            f"{path} cannot be read with torch.load(weights_only=True) ({error}). If you trust the file, "
            "re-save only its weights: torch.save(torch.load(path, weights_only=False)['state_dict'], 'weights.pt')"
        ) from error
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} holds a {type(data).__name__}, not a dict of tensors")
    return data


def unwrap(data: dict[str, Any]) -> dict[str, Any]:
    """The state dict inside common wrappers: Lightning (``state_dict``) and timm/DeiT (``model``)."""
    for key in ("state_dict", "model", "model_state_dict"):
        inner = data.get(key)
        if isinstance(inner, dict) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
            return inner
    return data


def only_tensors(state: dict[str, Any], source: str) -> dict[str, torch.Tensor]:
    """``state`` itself, after checking that every value is a tensor."""
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"{source}: entries {bad[:5]} are not tensors; is this a state dict?")
    return state
