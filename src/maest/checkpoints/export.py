"""One entry point that writes a MAEST network in any supported format (what ``maest export`` calls)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from maest.checkpoints.hf import export_hf
from maest.checkpoints.native import save_native
from maest.checkpoints.official import save_official
from maest.checkpoints.onnx import export_onnx
from maest.model import Maest

Target = Literal["native", "hf", "official", "onnx"]
EXPORT_TARGETS: tuple[str, ...] = ("native", "hf", "official", "onnx")


def export(model: Maest, path: str | os.PathLike, to: Target = "native", **onnx_options: Any) -> Path:
    """Write ``model`` to ``path`` as ``to`` and return what was written.

    ``native``: maest safetensors + config.json (folder, or a ``.safetensors`` file); ``hf``: a
    transformers AST folder; ``official``: the original MAEST code's state dict (``.pt``); ``onnx``:
    a graph file, with ``onnx_options`` passed to :func:`maest.checkpoints.export_onnx` (``graph``,
    ``blocks``, ``tokens``, ...). Options are refused for the other targets rather than ignored.
    """
    if to not in EXPORT_TARGETS:
        raise ValueError(f"export target must be one of {', '.join(EXPORT_TARGETS)}, got {to!r}")
    if not isinstance(model, Maest):
        raise TypeError(f"only MAEST transformers convert to other formats, got a {type(model).__name__}")
    if onnx_options and to != "onnx":
        raise TypeError(f"{', '.join(sorted(onnx_options))}: options of the onnx target, not of {to!r}")
    if to == "native":
        return save_native(model, path)
    if to == "hf":
        return export_hf(model, path)
    if to == "official":
        return save_official(model, path)
    return export_onnx(model, path, **onnx_options)
