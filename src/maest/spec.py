"""What makes two embeddings comparable: one :class:`EmbeddingSpec` from the command line to every file.

Weights (fingerprint) and model family, blocks, tokens, patchout, segment rule, overlap, crop,
precision and resampler: a vector made with one value of any of them must not be mixed with one
made with another. A command or API call builds the spec once (validating it once); the spec alone
gives the dict that settings files, caches and heads record (:meth:`EmbeddingSpec.to_dict`), the
suffix of cache folder names (:meth:`EmbeddingSpec.key`) and the comparison that refuses a resume,
a cache or a head made with another spec, naming the fields (:meth:`EmbeddingSpec.check_matches`).

:class:`EmbedOptions` is the part of the spec the model sees per segment; :class:`EmbeddingSpec` is
one, so the batching core takes either.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from maest.blocks import AUTO, Blocks
from maest.model import TOKEN_NAMES
from maest.segments import CROPS, check_rule, hop_frames

PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "fp16")
RESAMPLERS: tuple[str, ...] = ("essentia", "soxr")  # maest.resample.RESAMPLERS, spelled here without torch
DEFAULT_RESAMPLER = "essentia"  # the resampler of a spec that names none (the published models' training input)
DEFAULT_SEGMENTS = "maest"

# What a settings file written before a field existed was made with (``None``: unknown, not compared).
_HISTORIC = {"segments": "maest", "precision": "fp32", "resampler": DEFAULT_RESAMPLER, "weights": None, "family": None}


class SpecError(ValueError):
    """An embedding option that no run can use (bad token, precision, resampler...)."""


class SpecMismatchError(ValueError):
    """Embeddings, a cache or a head made with one spec meet a run with another."""


def token_letters(names: Sequence[str]) -> str:
    """``("cls", "dist", "avg")`` -> ``"cda"``: how cache folder names spell a token stack."""
    return "".join(n[0] for n in names)


@dataclass(frozen=True)
class EmbedOptions:
    """What to compute per segment. ``blocks`` counts blocks run: 7 = the paper's "block 7"; "auto"
    (:mod:`maest.blocks`): 7, or the last block of a shallower model (a spec tied to a model holds the number)."""

    blocks: Blocks = AUTO
    tokens: tuple[str, ...] = TOKEN_NAMES
    patchout_time: int = 1
    patchout_freq: tuple[int, ...] = ()
    overlap: float = 0.5
    crop: str | None = None
    segments: str = DEFAULT_SEGMENTS  # segment rule: "maest" or "original" (the paper's numbers; maest.segments)

    def __post_init__(self):
        tokens = (self.tokens,) if isinstance(self.tokens, str) else tuple(self.tokens)
        object.__setattr__(self, "tokens", tokens)
        object.__setattr__(self, "patchout_freq", tuple(int(r) for r in self.patchout_freq))
        bad = [t for t in tokens if t not in TOKEN_NAMES]
        if bad or not tokens:
            raise ValueError(f"tokens must be a non-empty selection of {TOKEN_NAMES}, got {tokens}")
        if self.patchout_time < 1:
            raise ValueError(f"patchout_time must be >= 1, got {self.patchout_time}")
        # Checked here, before any decoding or output folder is touched, not at the first track.
        hop_frames(1, self.overlap)
        if self.crop not in CROPS:
            raise ValueError(f"crop must be one of {CROPS}, got {self.crop!r}")
        check_rule(self.segments, self.overlap, self.crop)


@dataclass(frozen=True)
class EmbeddingSpec(EmbedOptions):
    """Everything that changes an embedding's numbers: the per-segment options plus the model's identity
    (``weights`` fingerprint, ``family``), the inference ``precision`` and the ``resampler`` audio is
    decoded with. ``weights``/``family`` may be None for a spec not yet tied to a model."""

    weights: str | None = None
    family: str | None = None
    precision: str = "fp32"
    resampler: str = DEFAULT_RESAMPLER

    def __post_init__(self):
        super().__post_init__()
        if self.precision not in PRECISIONS:
            raise SpecError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.resampler not in RESAMPLERS:
            raise SpecError(f"resampler must be one of {', '.join(RESAMPLERS)}, got {self.resampler!r}")
        # family: a maest.family.FAMILIES name (not checked here: this module stays free of torch).
        if self.family is not None and (not isinstance(self.family, str) or not self.family):
            raise SpecError(f"family must be a model family's name, got {self.family!r}")

    # -- building ---------------------------------------------------------------------------------
    @classmethod
    def for_pipeline(cls, pipeline: Any, **options: Any) -> EmbeddingSpec:
        """The spec of ``pipeline``'s embeddings with these options (its weights, family and precision),
        checked against the model (blocks in range, patchout rows...) before any audio is read."""
        options.setdefault("precision", pipeline.precision)
        if options.get("resampler") is None:
            options["resampler"] = DEFAULT_RESAMPLER
        family = pipeline.family.name
        spec = cls(weights=pipeline.fingerprint, family=family, **options)
        if spec.precision != pipeline.precision:
            raise SpecMismatchError(f"the pipeline given runs at {pipeline.precision}, not {spec.precision}: "
                                    "load it with load_model(..., precision=...) or leave precision out")
        return pipeline.resolved(spec)  # checked; blocks "auto" made the number outputs record

    def options(self) -> EmbedOptions:
        """The per-segment part alone."""
        return EmbedOptions(**{f.name: getattr(self, f.name) for f in dataclasses.fields(EmbedOptions)})

    def replace(self, **changes: Any) -> EmbeddingSpec:
        return dataclasses.replace(self, **changes)

    # -- recording --------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The dict every settings file, cache and head records (JSON types only)."""
        return {"weights": self.weights, "family": self.family, "blocks": self.blocks, "tokens": list(self.tokens),
                "patchout_time": self.patchout_time, "patchout_freq": list(self.patchout_freq),
                "overlap": self.overlap, "crop": self.crop, "segments": self.segments,
                "precision": self.precision, "resampler": self.resampler}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EmbeddingSpec:
        """The spec a recorded dict holds; a field recorded before it existed takes the value it then had
        (segments maest, precision fp32, resampler essentia; weights and family unknown)."""
        known = {f.name for f in dataclasses.fields(cls)}
        values = {**_HISTORIC, **{k: v for k, v in data.items() if k in known}}
        if values["weights"] is None and data.get("model_fingerprint") is not None:  # head.json before the spec
            values["weights"] = data["model_fingerprint"]
        return cls(**values)

    def key(self) -> str:
        """Cache folder name of this spec, weights aside: ``b7-cda-t1-fnone-o0.5`` plus ``-original``,
        ``-bf16``, ``-soxr`` where a field is not its default (so names of default specs stay as before)."""
        freq = "-".join(str(r) for r in self.patchout_freq) or "none"
        key = f"b{self.blocks}-{token_letters(self.tokens)}-t{self.patchout_time}-f{freq}-o{self.overlap}"
        return key + ("" if self.crop is None else f"-{self.crop}") + self.suffix()

    def suffix(self) -> str:
        """``-original`` / ``-bf16`` / ``-soxr`` for each of segment rule, precision and resampler off its default."""
        return "".join(f"-{value}" for value, default in ((self.segments, DEFAULT_SEGMENTS), (self.precision, "fp32"),
                                                          (self.resampler, DEFAULT_RESAMPLER)) if value != default)

    # -- comparing --------------------------------------------------------------------------------
    def differences(self, other: EmbeddingSpec) -> list[str]:
        """``["resampler (essentia vs soxr)", ...]``: the fields that differ, ``self``'s value first.
        Weights or family unknown on either side (None) are not compared."""
        out = []
        for field in dataclasses.fields(EmbeddingSpec):
            mine, theirs = getattr(self, field.name), getattr(other, field.name)
            if field.name in ("weights", "family") and (mine is None or theirs is None):
                continue
            if mine != theirs:
                out.append(f"{field.name} ({_show(mine)} vs {_show(theirs)})")
        return out

    def check_matches(self, other: EmbeddingSpec, what: str, hint: str = "",
                      error: type[SpecMismatchError] = SpecMismatchError) -> None:
        """Raise :class:`SpecMismatchError` naming every differing field unless ``other`` equals this spec.

        ``what`` says where ``self`` comes from ("OUT holds embeddings made with another spec"); ``hint``
        what to do instead.
        """
        differences = self.differences(other)
        if differences:
            raise error(f"{what} (differs in: {'; '.join(differences)})" + (f"; {hint}" if hint else ""))

    def describe(self) -> str:
        """``"block 7 cls+dist+avg"`` plus every field off its default."""
        text = f"block {self.blocks} {'+'.join(self.tokens)}"
        defaults = EmbeddingSpec()
        for name in ("patchout_time", "patchout_freq", "overlap", "crop", "segments", "precision", "resampler"):
            if getattr(self, name) != getattr(defaults, name):
                text += f" {name} {_show(getattr(self, name))}"
        return text


def _show(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        return ",".join(map(str, value)) or "none"
    if isinstance(value, str) and len(value) > 16:  # a fingerprint
        return value[:12]
    return str(value)

