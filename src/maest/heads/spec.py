"""What embedding a head needs (the :class:`maest.spec.EmbeddingSpec` plus the model's name and the width)
and the check that refuses others.

A head maps one embedding space to labels; fed another model's or another block's embeddings it
returns confident garbage. The model is identified by a fingerprint of its weights and frontend
normalisation, so a head follows the weights, not the file name they were loaded from.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from maest.checkpoints.fingerprint import weights_fingerprint as model_fingerprint  # noqa: F401  (re-exported)
from maest.spec import EmbeddingSpec as _Spec
from maest.heads.errors import HeadError
from maest.spec import SpecMismatchError


class HeadMismatchError(SpecMismatchError, HeadError):
    """A head is applied to embeddings from another model or another embedding spec."""


@dataclass(frozen=True)
class HeadSpec(_Spec):
    """How the embeddings a head reads were made: the embedding spec (``weights`` identifies the weights),
    the model's name, where to load it again (``model_source``) and the embedding width ``dim``."""

    model_name: str = ""
    dim: int = 0
    model_source: str | None = None

    @property
    def model_fingerprint(self) -> str | None:
        """The weights' fingerprint (the name head.json used before the spec)."""
        return self.weights

    def embedding_spec(self) -> _Spec:
        """The plain :class:`maest.spec.EmbeddingSpec` (what settings files and caches record)."""
        return _Spec(**{f.name: getattr(self, f.name) for f in dataclasses.fields(_Spec)})

    def to_dict(self) -> dict:
        return {**super().to_dict(), "model_name": self.model_name, "dim": self.dim, "model_source": self.model_source}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HeadSpec:
        base = _Spec.from_dict(data)
        return cls(**{f.name: getattr(base, f.name) for f in dataclasses.fields(_Spec)},
                   model_name=str(data.get("model_name", "")), dim=int(data.get("dim", 0)),
                   model_source=data.get("model_source"))

    def describe(self) -> str:
        """``"tiny-0 (weights 1a2b3c4d) block 7 cls+dist+avg"`` plus any field off its default."""
        return f"{self.model_name} (weights {(self.weights or '?')[:12]}) {super().describe()}"

    def embed_kwargs(self) -> dict:
        """Keyword arguments of :meth:`maest.inference.MaestPipeline.embed` that reproduce these embeddings."""
        return {"blocks": self.blocks, "tokens": self.tokens, "patchout_time": self.patchout_time,
                "patchout_freq": self.patchout_freq, "overlap": self.overlap, "crop": self.crop,
                "segments": self.segments, "resampler": self.resampler}


EmbeddingSpec = HeadSpec  # the name maest.heads exported before maest.spec existed


def spec_for(pipeline: Any, spec: _Spec, source: str | None = None, dim: int | None = None) -> HeadSpec:
    """The head spec of ``pipeline``'s embeddings made with ``spec`` (``dim`` measured by the caller when known)."""
    if dim is None:
        dim = pipeline.family.embedding_dim(pipeline.config, spec.tokens)
    name = str(getattr(pipeline.config, "name", type(pipeline.model).__name__))
    return HeadSpec(**{f.name: getattr(spec, f.name) for f in dataclasses.fields(_Spec)},
                    model_name=name, dim=int(dim), model_source=source)


def run_spec(head_spec: HeadSpec, resampler: str | None = None) -> _Spec:
    """The spec a run embeds with for this head: the head's, with ``resampler`` refused if it differs."""
    wanted = head_spec.embedding_spec()
    if resampler is not None and resampler != wanted.resampler:
        wanted.check_matches(wanted.replace(resampler=resampler), f"this head was fitted on {head_spec.describe()}",
                             "leave --resampler out (the head's is used) or fit a head with that resampler",
                             HeadMismatchError)
    return wanted


def check_spec(expected: HeadSpec, other: Any) -> None:
    """Raise :class:`HeadMismatchError` unless ``other`` (a pipeline or a spec) fits ``expected``.

    A pipeline is checked for its weights and precision (its embeddings are then made with
    ``expected``'s options); a spec must match in every field.
    """
    if isinstance(other, _Spec):
        problems = expected.differences(other)
        if isinstance(other, HeadSpec) and other.dim and other.dim != expected.dim:
            problems.append(f"dim ({expected.dim} vs {other.dim})")
        if problems:
            other_text = other.describe()
            raise HeadMismatchError(
                f"this head was fitted on {expected.describe()}; the embeddings given are {other_text} "
                f"(differs in: {'; '.join(problems)}). Embed with the head's spec (maest.heads.tag_with_head does) "
                "or fit a head on these embeddings")
        return
    model = getattr(other, "model", None)
    if model is None:
        raise TypeError(f"expected a MaestPipeline or an EmbeddingSpec, got {type(other).__name__}")
    name = str(getattr(getattr(other, "config", None), "name", type(model).__name__))
    fingerprint = getattr(other, "fingerprint", None) or model_fingerprint(model)
    if expected.weights is not None and fingerprint != expected.weights:
        raise HeadMismatchError(
            f"this head was fitted on {expected.describe()}; the loaded model is {name} (weights {fingerprint[:12]}). "
            f"Load the model the head was fitted on ({expected.model_source or expected.model_name}) or fit a new head")
    precision = getattr(other, "precision", expected.precision)
    if precision != expected.precision:
        raise HeadMismatchError(
            f"this head was fitted on {expected.describe()}; the loaded model runs at {precision} "
            f"(differs in: precision ({expected.precision} vs {precision})). Load it with precision "
            f"{expected.precision} (--precision {expected.precision}) or fit a head at {precision}")
    depth = other.family.depth(other.config)  # None: blocks do not apply to this family
    if depth is not None and expected.blocks is not None and expected.blocks > depth:
        raise HeadMismatchError(f"this head needs block {expected.blocks}; the loaded model has {depth}")
