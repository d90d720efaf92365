"""A fitted head: standardisation + classifier weights (``head.safetensors``) and what it means (``head.json``).

The JSON says which labels the outputs are, how to decide on/off (per-label thresholds, or argmax
for single-label heads), which embeddings the head reads (:class:`EmbeddingSpec`) and how well it
did on validation. Weights are safetensors so loading a head never runs pickled code.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from maest.atomic import atomic_write, atomic_write_text
from maest.probe import MlpProbe
from maest.heads.errors import HeadFormatError
from maest.heads.integrity import check_meta, check_weights, finite_thresholds, read_meta, read_weights
from maest.heads.labels import Mode
from maest.heads.spec import EmbeddingSpec, HeadMismatchError, check_spec

WEIGHTS_FILE = "head.safetensors"
META_FILE = "head.json"
FORMAT = "maest-head"
FORMAT_VERSION = 1


@dataclass
class Head:
    """Maps embeddings ``(n, dim)`` to label probabilities and on/off decisions.

    ``kind`` is "mlp" (the paper's probe: Linear-ReLU-Dropout-Linear, sigmoid outputs) or
    "logistic" (one linear layer; sigmoid per label for multi-label, softmax for single-label).
    """

    labels: list[str]
    mode: Mode
    spec: EmbeddingSpec
    kind: str
    tensors: dict[str, torch.Tensor]
    thresholds: np.ndarray | None = None  # (labels,) for multi-label heads; None: argmax
    architecture: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        if self.kind not in ("mlp", "logistic"):
            raise HeadFormatError(f"unknown head kind {self.kind!r} (mlp or logistic)")
        self.thresholds = finite_thresholds(self.thresholds)
        self._mlp: MlpProbe | None = None
        if self.kind == "mlp":
            weight = self.tensors["net.0.weight"]
            self._mlp = MlpProbe(weight.shape[1], len(self.labels), weight.shape[0])
            self._mlp.load_state_dict({k: v for k, v in self.tensors.items() if k.startswith("net.")})
            self._mlp.eval()

    @property
    def dim(self) -> int:
        return int(self.tensors["input_mean"].shape[0])

    @property
    def activation(self) -> str:
        return "softmax" if self.kind == "logistic" and self.mode == "single" else "sigmoid"

    def predict(self, embeddings: np.ndarray) -> np.ndarray:
        """Probabilities ``(n, labels)`` for embeddings ``(n, dim)`` (or one embedding ``(dim,)`` -> ``(labels,)``)."""
        x = np.asarray(embeddings, dtype=np.float32)
        single = x.ndim == 1
        x = x[None] if single else x
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise HeadMismatchError(f"this head reads {self.dim}-dim embeddings ({self.spec.describe()}); got shape "
                                    f"{np.asarray(embeddings).shape}. Embed with the head's spec: maest.heads.tag_with_head")
        with torch.no_grad():
            z = (torch.from_numpy(x) - self.tensors["input_mean"]) / self.tensors["input_std"]
            if self._mlp is not None:
                logits = self._mlp(z)
            else:
                logits = z @ self.tensors["weight"].T + self.tensors["bias"]
            probabilities = torch.softmax(logits, dim=1) if self.activation == "softmax" else torch.sigmoid(logits)
        out = probabilities.double().numpy()
        return out[0] if single else out

    def decide(self, probabilities: np.ndarray) -> np.ndarray:
        """On/off per label: probability >= the label's threshold (multi-label) or the argmax (single-label)."""
        p = np.asarray(probabilities, dtype=np.float64)
        if p.shape[-1] != len(self.labels):
            raise ValueError(f"expected {len(self.labels)} probabilities per row, got shape {p.shape}")
        if self.mode == "single" or self.thresholds is None:
            return np.eye(len(self.labels), dtype=bool)[np.argmax(p, axis=-1)]
        return p >= self.thresholds

    def check_compatible(self, pipeline_or_spec: Any) -> None:
        """Raise :class:`HeadMismatchError` unless the pipeline's weights (or the spec) are the ones the head was fitted on."""
        check_spec(self.spec, pipeline_or_spec)

    def save(self, directory: str | os.PathLike) -> Path:
        """Write ``head.safetensors`` and ``head.json`` into ``directory`` (atomically each)."""
        from safetensors.torch import save

        import maest

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        blob = save({k: v.contiguous() for k, v in self.tensors.items()})
        atomic_write(directory / WEIGHTS_FILE, lambda f: f.write(blob))
        meta = {
            "format": FORMAT, "format_version": FORMAT_VERSION, "maest_version": maest.__version__,
            "labels": self.labels, "mode": self.mode,
            "decision": "argmax" if self.mode == "single" else "threshold",
            "thresholds": None if self.thresholds is None else [float(t) for t in self.thresholds],
            "classifier": {"kind": self.kind, "activation": self.activation, "in_features": self.dim, **self.architecture},
            "embedding": self.spec.to_dict(),
            **self.metadata,
        }
        atomic_write_text(directory / META_FILE, json.dumps(meta, indent=2) + "\n")
        return directory


def load_head(path: str | os.PathLike) -> Head:
    """Read a head folder written by :func:`maest.heads.fit_head` (or :meth:`Head.save`)."""
    directory = Path(path)
    if directory.is_file():
        directory = directory.parent
    meta_path, weights_path = directory / META_FILE, directory / WEIGHTS_FILE
    if not meta_path.is_file() or not weights_path.is_file():
        raise HeadFormatError(f"{directory} is not a head folder: it needs {META_FILE} and {WEIGHTS_FILE} "
                              "(written by `maest head fit`)")
    meta = read_meta(meta_path)
    if meta.get("format") != FORMAT or not isinstance(meta.get("format_version"), int) \
            or meta["format_version"] > FORMAT_VERSION:
        raise HeadFormatError(f"{meta_path} is format {meta.get('format')!r} version {meta.get('format_version')!r}; "
                              f"this maest reads {FORMAT} up to version {FORMAT_VERSION} (upgrade maest)")
    check_meta(meta, meta_path)
    tensors = read_weights(weights_path)
    check_weights(tensors, meta["classifier"]["kind"], len(meta["labels"]), weights_path)
    try:
        spec = EmbeddingSpec.from_dict(meta["embedding"])
    except (TypeError, ValueError) as error:
        raise HeadFormatError(f"{meta_path}: 'embedding' is not readable ({error})") from None
    if spec.dim != int(tensors["input_mean"].shape[0]):
        raise HeadFormatError(f"{meta_path} says the head reads {spec.dim}-dim embeddings; {weights_path} holds "
                              f"{int(tensors['input_mean'].shape[0])}-dim weights")
    classifier = dict(meta["classifier"])
    kind = classifier.pop("kind")
    for key in ("activation", "in_features"):
        classifier.pop(key, None)
    thresholds = None if meta.get("thresholds") is None else np.asarray(meta["thresholds"], dtype=np.float64)
    known = {"format", "format_version", "labels", "mode", "decision", "thresholds", "classifier", "embedding"}
    return Head(list(meta["labels"]), meta["mode"], spec, kind, tensors,
                thresholds, classifier, {k: v for k, v in meta.items() if k not in known})


def head_from_parts(labels: list[str], mode: Mode, spec: EmbeddingSpec, kind: str, mean: np.ndarray, std: np.ndarray,
                    weights: Mapping[str, np.ndarray | torch.Tensor], thresholds: np.ndarray | None,
                    architecture: Mapping[str, Any], metadata: Mapping[str, Any]) -> Head:
    """Assemble a :class:`Head` from a trained classifier's weights and the training split's standardisation."""
    tensors = {"input_mean": torch.as_tensor(np.asarray(mean, dtype=np.float32)),
               "input_std": torch.as_tensor(np.asarray(std, dtype=np.float32))}
    tensors.update({k: torch.as_tensor(np.asarray(v, dtype=np.float32)) if not isinstance(v, torch.Tensor)
                    else v.detach().float().cpu() for k, v in weights.items()})
    return Head(list(labels), mode, spec, kind, tensors, thresholds, dict(architecture), dict(metadata))
