"""Saving and loading the EffNet-B0 baseline: the native format with ``"type": "effnet"``.

These are the native reader/writer restricted to EffNet; files written by older maest versions
(``"maest-effnet"`` safetensors metadata) load too.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from maest.checkpoints.errors import CheckpointError, EffNetCheckpointError
from maest.checkpoints.native import is_native, load_native, read_description, save_native
from maest.effnet import EffNet


def save_effnet(model: EffNet, path: str | os.PathLike) -> Path:
    """Write weights + config to a ``.safetensors`` file (config in its metadata) or a folder; nothing pickled."""
    if not isinstance(model, EffNet):
        raise EffNetCheckpointError(f"save_effnet saves an EffNet, got a {type(model).__name__}; use save_native")
    return save_native(model, path)


def is_effnet(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a maest checkpoint (file or folder) holding an EffNet."""
    if not is_native(path):
        return False
    try:
        return read_description(path)[0]["type"] == "effnet"
    except CheckpointError:
        return False


def load_effnet(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> EffNet:
    """Load an EffNet saved by :func:`save_effnet` (or by ``maest train``, or by older maest versions)."""
    if not is_native(path):
        raise EffNetCheckpointError(f"{path} is not an EffNet checkpoint written by maest")
    model = load_native(path, map_location)
    if not isinstance(model, EffNet):
        raise EffNetCheckpointError(f"{path} holds a {type(model).__name__}, not an EffNet; use load_checkpoint")
    return model
