"""Reading tensor files safely: safetensors, or ``torch.load(weights_only=True)``, never arbitrary pickles.

Whatever goes wrong (a truncated or bogus file, a pickle renamed ``.safetensors``, an empty or text
``.pt``), the caller gets one CheckpointError naming the file and saying what is wrong with it.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import torch

from maest.checkpoints.errors import CheckpointError, one_line

ZIP_MAGIC = b"PK\x03\x04"  # torch.save's default container
PICKLE_MAGIC = b"\x80"  # pickle protocol 2+ (torch.save(..., _use_new_zipfile_serialization=False))
# Errors about reaching the file, not its bytes (torch reports a cut zip as OSError EINVAL).
UNREADABLE = (PermissionError, IsADirectoryError, FileNotFoundError)


def _not_safetensors(path: Path, error: BaseException) -> CheckpointError:
    """The error for a ``.safetensors`` file that safetensors cannot parse, with a guess at what it is."""
    head = _head(path)
    if not head:
        return CheckpointError(f"{path} is empty (0 bytes); download or save it again")
    if head.startswith((ZIP_MAGIC, PICKLE_MAGIC)):
        return CheckpointError(f"{path} is a torch.save (pickle) file named .safetensors; rename it to .pt "
                               "(it is then read with torch.load(weights_only=True))")
    return CheckpointError(f"{path} is not a valid safetensors file, truncated or corrupt ({one_line(error)}); "
                           "download or save it again")


def _head(path: Path, size: int = 8) -> bytes:
    with open(path, "rb") as f:
        return f.read(size)


def safetensors_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The string metadata of a ``.safetensors`` file's header ({} when it has none)."""
    from safetensors import safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except UNREADABLE as error:
        raise CheckpointError(f"cannot read {path}: {one_line(error)}") from error
    except Exception as error:  # safetensors raises its own SafetensorError and plain Exceptions
        raise _not_safetensors(path, error) from error


def load_safetensors(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Every tensor of a ``.safetensors`` file (a header that promises more bytes than the file has fails)."""
    from safetensors.torch import load_file

    path = Path(path)
    try:
        return load_file(str(path), device=str(map_location))
    except UNREADABLE as error:
        raise CheckpointError(f"cannot read {path}: {one_line(error)}") from error
    except Exception as error:
        raise _not_safetensors(path, error) from error


def read_file(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The top-level dict stored in ``path`` (a state dict, or a Lightning/timm checkpoint dict)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint file at {path}")
    if path.suffix == ".safetensors":
        return load_safetensors(path, map_location)
    head = _head(path)
    if not head:
        raise CheckpointError(f"{path} is empty (0 bytes); download or save it again")
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except UNREADABLE as error:
        raise CheckpointError(f"cannot read {path}: {one_line(error)}") from error
    except Exception as error:
        raise _unreadable_torch_file(path, head, error) from error
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} holds a {type(data).__name__}, not a dict of tensors")
    return data


def _unreadable_torch_file(path: Path, head: bytes, error: BaseException) -> CheckpointError:
    """Why ``torch.load`` failed, in words: not a torch file at all, refused code, or cut short."""
    if not head.startswith((ZIP_MAGIC, PICKLE_MAGIC)):
        return CheckpointError(
            f"{path} is not a torch checkpoint: it starts with {head!r}, neither a torch.save zip nor a pickle "
            "(a text file, or an HTML error page saved by a failed download?)")
    if isinstance(error, (pickle.UnpicklingError, AttributeError, TypeError)):  # weights_only refused a global
        return CheckpointError(
            f"{path} cannot be read with torch.load(weights_only=True) ({one_line(error)}). If you trust the file, "
            "re-save only its weights: torch.save(torch.load(path, weights_only=False)['state_dict'], 'weights.pt')"
        )
    # EOFError, RuntimeError ("failed finding central directory"), KeyError ...: a file cut short
    return CheckpointError(f"{path} is a truncated or corrupt torch checkpoint ({one_line(error)}); "
                           "download or save it again")


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
