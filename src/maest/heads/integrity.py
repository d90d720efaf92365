"""Reading a head folder's two files defensively: every damage becomes one :class:`HeadFormatError` line.

A head is loaded by users from folders they copied around; a renamed pickle, a truncated download,
a hand-edited ``head.json`` or weights that went NaN during a fit must not surface as a
``SafetensorError``/``KeyError`` traceback or, worse, as ``nan`` probabilities with exit status 0.
Each check names the file and the problem, and says what to do (re-fit or restore the head).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from maest.heads.errors import HeadFormatError

REFIT = "re-fit the head (maest head fit) or restore the folder from a copy"
PICKLE_MAGIC = (b"\x80", b"PK\x03\x04")  # pickle protocol 2+, and torch.save's zip container
SPEC_KEYS = ("model_name", "dim")  # and the weights: "weights" (maest.spec), "model_fingerprint" before it


def read_meta(path: Path) -> dict[str, Any]:
    """``head.json`` as a dict with the keys a head needs, each of the right type."""
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise HeadFormatError(f"{path}: cannot be read ({error}); {REFIT}") from None
    except json.JSONDecodeError as error:
        raise HeadFormatError(f"{path}: not valid JSON ({error.msg} at line {error.lineno}); {REFIT}") from None
    if not isinstance(meta, dict):
        raise HeadFormatError(f"{path}: holds a JSON {type(meta).__name__}, not the head's description (an object); "
                              f"{REFIT}")
    return meta


def check_meta(meta: dict[str, Any], path: Path) -> None:
    """Labels, mode, classifier, embedding and thresholds present and well-formed (after the format check)."""
    labels = meta.get("labels")
    if not isinstance(labels, list) or not labels or not all(isinstance(x, str) for x in labels):
        raise HeadFormatError(f"{path}: 'labels' must be a non-empty list of names; {REFIT}")
    if meta.get("mode") not in ("multi", "single"):
        raise HeadFormatError(f"{path}: 'mode' must be multi or single, got {meta.get('mode')!r}; {REFIT}")
    classifier = meta.get("classifier")
    if not isinstance(classifier, dict) or classifier.get("kind") not in ("mlp", "logistic"):
        raise HeadFormatError(f"{path}: no 'classifier' with kind mlp or logistic; {REFIT}")
    embedding = meta.get("embedding")
    if (not isinstance(embedding, dict) or any(key not in embedding for key in SPEC_KEYS)
            or not ({"weights", "model_fingerprint"} & set(embedding))):
        raise HeadFormatError(f"{path}: no 'embedding' describing the model and embedding the head reads "
                              f"({', '.join(SPEC_KEYS)}, weights); {REFIT}")
    thresholds = meta.get("thresholds")
    if thresholds is not None:
        if not isinstance(thresholds, list) or len(thresholds) != len(labels):
            raise HeadFormatError(f"{path}: 'thresholds' must be a list of {len(labels)} numbers (one per label); "
                                  f"{REFIT}")
        if not all(isinstance(t, (int, float)) and not isinstance(t, bool) and math.isfinite(t) for t in thresholds):
            raise HeadFormatError(f"{path}: 'thresholds' holds NaN, infinity or a non-number; {REFIT}")


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """``head.safetensors`` as tensors; never unpickles (a pickle or ``torch.save`` file is refused by name)."""
    from safetensors.torch import load

    try:
        blob = path.read_bytes()
    except OSError as error:
        raise HeadFormatError(f"{path}: cannot be read ({error.strerror or error}); {REFIT}") from None
    if not blob:
        raise HeadFormatError(f"{path}: is empty (0 bytes); {REFIT}")
    try:
        tensors = load(blob)
    except Exception as error:  # safetensors raises its own SafetensorError (an Exception) for any damage
        if blob.startswith(PICKLE_MAGIC):  # checked only on failure: a header length may start with 0x80
            raise HeadFormatError(f"{path}: is a pickle or torch.save file, not safetensors; maest never unpickles "
                                  f"head weights: {REFIT}") from None
        detail = " ".join(str(error).split()) or type(error).__name__
        raise HeadFormatError(f"{path}: not a whole safetensors file, truncated or damaged ({detail}); "
                              f"{REFIT}") from None
    return tensors


def expected_shapes(kind: str, dim: int, n_labels: int, tensors: dict[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
    """The tensors a head of ``kind`` needs and their shapes (the MLP's hidden size read from its first layer)."""
    shapes: dict[str, tuple[int, ...]] = {"input_mean": (dim,), "input_std": (dim,)}
    if kind == "logistic":
        shapes.update(weight=(n_labels, dim), bias=(n_labels,))
        return shapes
    first = tensors.get("net.0.weight")
    hidden = int(first.shape[0]) if first is not None and first.ndim == 2 else -1
    shapes.update({"net.0.weight": (hidden, dim), "net.0.bias": (hidden,), "net.3.weight": (n_labels, hidden),
                   "net.3.bias": (n_labels,)})
    return shapes


def check_weights(tensors: dict[str, torch.Tensor], kind: str, n_labels: int, path: Path) -> None:
    """Every needed tensor present, of the right shape, finite; the standardisation's std positive."""
    mean = tensors.get("input_mean")
    if mean is None or mean.ndim != 1:
        raise HeadFormatError(f"{path}: no tensor 'input_mean' (the standardisation); {REFIT}")
    for name, shape in expected_shapes(kind, int(mean.shape[0]), n_labels, tensors).items():
        tensor = tensors.get(name)
        if tensor is None:
            raise HeadFormatError(f"{path}: no tensor {name!r} (a {kind} head needs it); {REFIT}")
        if tuple(tensor.shape) != shape:
            raise HeadFormatError(f"{path}: tensor {name!r} has shape {tuple(tensor.shape)}, expected {shape} "
                                  f"for {n_labels} labels; {REFIT}")
        if not bool(torch.isfinite(tensor).all()):
            raise HeadFormatError(f"{path}: tensor {name!r} holds NaN or infinity; {REFIT}")
    if not bool((tensors["input_std"] > 0).all()):
        raise HeadFormatError(f"{path}: tensor 'input_std' holds zero or negative values (standardising would "
                              f"divide by zero); {REFIT}")


def finite_thresholds(thresholds: Any) -> np.ndarray | None:
    """Thresholds as float64, refused unless every one is finite (a head built in memory is checked too)."""
    if thresholds is None:
        return None
    values = np.asarray(thresholds, dtype=np.float64)
    if not np.all(np.isfinite(values)):
        raise HeadFormatError(f"thresholds hold NaN or infinity ({values.tolist()}); {REFIT}")
    return values
