"""maest: MAEST, the Music Audio Efficient Spectrogram Transformer, in PyTorch.

Public API (imports are lazy so ``import maest`` stays fast)."""

from __future__ import annotations

__version__ = "0.3.0"  # the one place the version is written (pyproject.toml reads it)

_LAZY = {
    "load_model": "maest.inference",
    "MaestPipeline": "maest.inference",
    "extract": "maest.extraction",
    "tag_files": "maest.extraction",
    "list_models": "maest.registry",
}


def __getattr__(name: str):
    """Import public names on first use, so ``import maest`` does not import torch."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'maest' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
