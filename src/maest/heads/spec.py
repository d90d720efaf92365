"""What embedding a head needs (model identity, blocks, tokens, patchout, overlap) and the check that refuses others.

A head maps one embedding space to labels; fed another model's or another block's embeddings it
returns confident garbage. The model is identified by a fingerprint of its weights and frontend
normalisation, so a head follows the weights, not the file name they were loaded from.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from maest.checkpoints.fingerprint import weights_fingerprint as model_fingerprint  # noqa: F401  (re-exported)



class HeadMismatchError(ValueError):
    """A head is applied to embeddings from another model or another embedding spec."""


@dataclass(frozen=True)
class EmbeddingSpec:
    """How the embeddings a head reads were made; ``model_fingerprint`` identifies the weights."""

    model_name: str
    model_fingerprint: str
    dim: int
    blocks: int | None = 7
    tokens: tuple[str, ...] = ("cls", "dist", "avg")
    patchout_time: int = 1
    patchout_freq: tuple[int, ...] = ()
    overlap: float = 0.5
    model_source: str | None = None

    def __post_init__(self):
        object.__setattr__(self, "tokens", tuple(self.tokens))
        object.__setattr__(self, "patchout_freq", tuple(int(r) for r in self.patchout_freq))

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["tokens"], out["patchout_freq"] = list(self.tokens), list(self.patchout_freq)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "EmbeddingSpec":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def describe(self) -> str:
        """``"tiny-0 (fingerprint 1a2b3c4d) block 7 cls+dist+avg"`` plus any non-default patchout/overlap."""
        text = f"{self.model_name} (weights {self.model_fingerprint[:12]}) block {self.blocks} {'+'.join(self.tokens)}"
        if self.patchout_time != 1:
            text += f" patchout_time {self.patchout_time}"
        if self.patchout_freq:
            text += f" patchout_freq {','.join(map(str, self.patchout_freq))}"
        if self.overlap != 0.5:
            text += f" overlap {self.overlap}"
        return text

    def embed_kwargs(self) -> dict:
        """Keyword arguments of :meth:`maest.inference.MaestPipeline.embed` that reproduce these embeddings."""
        return {"blocks": self.blocks, "tokens": self.tokens, "patchout_time": self.patchout_time,
                "patchout_freq": self.patchout_freq, "overlap": self.overlap}


def spec_for(pipeline: Any, blocks: int | None, tokens: Sequence[str], patchout_time: int = 1,
             patchout_freq: Sequence[int] = (), overlap: float = 0.5, source: str | None = None,
             dim: int | None = None) -> EmbeddingSpec:
    """The spec of ``pipeline``'s embeddings with these options (``dim`` measured by the caller when known)."""
    model = pipeline.model
    if dim is None:
        dim = pipeline.family.embedding_dim(pipeline.config, tokens)
    return EmbeddingSpec(str(getattr(pipeline.config, "name", type(model).__name__)), getattr(pipeline, "fingerprint", None) or model_fingerprint(model), int(dim),
                         blocks, tuple(tokens), patchout_time, tuple(patchout_freq), overlap, source)


def check_spec(expected: EmbeddingSpec, other: Any) -> None:
    """Raise :class:`HeadMismatchError` unless ``other`` (a pipeline or an :class:`EmbeddingSpec`) fits ``expected``.

    A pipeline is checked for its weights (its embeddings are then made with ``expected``'s options);
    a spec must match in weights and every embedding option.
    """
    if isinstance(other, EmbeddingSpec):
        problems = [f"{name} {getattr(other, name)!r} (head: {getattr(expected, name)!r})"
                    for name in ("model_fingerprint", "dim", "blocks", "tokens", "patchout_time", "patchout_freq", "overlap")
                    if getattr(other, name) != getattr(expected, name)]
        if problems:
            raise HeadMismatchError(
                f"this head was fitted on {expected.describe()}; the embeddings given are {other.describe()} "
                f"(differs in {'; '.join(problems)}). Embed with the head's spec (maest.heads.tag_with_head does) "
                "or fit a head on these embeddings")
        return
    model = getattr(other, "model", None)
    if model is None:
        raise TypeError(f"expected a MaestPipeline or an EmbeddingSpec, got {type(other).__name__}")
    name = str(getattr(getattr(other, "config", None), "name", type(model).__name__))
    fingerprint = getattr(other, "fingerprint", None) or model_fingerprint(model)
    if fingerprint != expected.model_fingerprint:
        raise HeadMismatchError(
            f"this head was fitted on {expected.describe()}; the loaded model is {name} (weights {fingerprint[:12]}). "
            f"Load the model the head was fitted on ({expected.model_source or expected.model_name}) or fit a new head")
    depth = other.family.depth(other.config)  # None: blocks do not apply to this family
    if depth is not None and expected.blocks is not None and expected.blocks > depth:
        raise HeadMismatchError(f"this head needs block {expected.blocks}; the loaded model has {depth}")
