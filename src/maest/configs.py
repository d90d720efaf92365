"""Model configuration: the architecture dataclasses' shared identity fields and ``MaestConfig``.

The published weights (names, hub ids, labels) are in :mod:`maest.registry`, which builds on this module.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, ClassVar

from maest import frontend

# Frames of one segment per segment length (``frontend.md``): the models' ``input_t``.
SEGMENT_FRAMES = {5: 312, 10: 625, 20: 1250, 30: 1875}
# Structured training patchout (paper): time columns dropped per segment length.
TRAIN_PATCHOUT_TIME = {5: 15, 10: 30, 20: 60, 30: 90}


class ConfigValueError(ValueError):
    """A config field has the wrong type or an impossible value (e.g. ``"width": "64"`` or ``depth: 0``)."""


def _check_type(owner: str, name: str, value: Any, kind: type) -> None:
    """``value`` is a ``kind`` (ints pass as floats; bools pass only as bools)."""
    if kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    elif kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, kind)
    if not ok:
        wanted = "a finite number" if kind is float else ("an int" if kind is int else f"a {kind.__name__}")
        raise ConfigValueError(f"{owner}.{name} must be {wanted}, got {value!r} ({type(value).__name__})")


def _check_range(owner: str, name: str, value: float, low: float, high: float | None, low_open: bool) -> None:
    if (value <= low if low_open else value < low) or (high is not None and value >= high):
        bound = f"> {low}" if low_open else f">= {low}"
        raise ConfigValueError(f"{owner}.{name} must be {bound}{f' and < {high}' if high is not None else ''}, "
                               f"got {value!r}")


@dataclass(kw_only=True)
class ModelIdentity:
    """What every network config carries besides its sizes: output labels, the frontend's
    normalisation (part of the checkpoint contract) and a name. Shared by MaestConfig and EffNetConfig.

    Subclasses list their typed fields in ``_TYPES`` and ranges in ``_POSITIVE``/``_NON_NEGATIVE``/
    ``_FRACTIONS``; ``__post_init__`` checks them, so a bogus config.json fails when it is read.
    """

    labels: list[str] | None = None
    norm_mean: float = frontend.DISCOGS_MEAN
    norm_std: float = frontend.DISCOGS_STD
    name: str = "maest"

    IDENTITY_FIELDS: ClassVar[tuple[str, ...]] = ("labels", "norm_mean", "norm_std", "name")
    _TYPES: ClassVar[dict[str, type]] = {}
    _POSITIVE: ClassVar[tuple[str, ...]] = ()
    _NON_NEGATIVE: ClassVar[tuple[str, ...]] = ()
    _FRACTIONS: ClassVar[tuple[str, ...]] = ()  # in [0, 1): dropout-like rates

    def __post_init__(self) -> None:
        owner = type(self).__name__
        types = {**self._TYPES, "norm_mean": float, "norm_std": float, "name": str}
        for name, kind in types.items():
            _check_type(owner, name, getattr(self, name), kind)
        for name in self._POSITIVE + ("norm_std",):
            _check_range(owner, name, getattr(self, name), 0, None, low_open=True)
        for name in self._NON_NEGATIVE:
            _check_range(owner, name, getattr(self, name), 0, None, low_open=False)
        for name in self._FRACTIONS:
            _check_range(owner, name, getattr(self, name), 0, 1, low_open=False)
        labels = self.labels
        if labels is not None:
            if not isinstance(labels, (list, tuple)) or not all(isinstance(label, str) for label in labels):
                raise ConfigValueError(f"{owner}.labels must be a list of strings or null")
            classes = getattr(self, "num_classes", len(labels))
            if len(labels) != classes:
                raise ConfigValueError(f"{owner} has {len(labels)} labels but num_classes = {classes}")

    def to_dict(self) -> dict:
        """Plain values, identity fields last (the key order of files written before the shared base)."""
        values = dataclasses.asdict(self)
        identity = {name: values.pop(name) for name in self.IDENTITY_FIELDS}
        return {**values, **identity}

    @classmethod
    def from_dict(cls, values: dict):
        """The config a ``to_dict`` wrote; unknown fields, wrong types and impossible sizes are refused."""
        if not isinstance(values, dict):
            raise ConfigValueError(f"a {cls.__name__} must be a JSON object, got {type(values).__name__}")
        unknown = set(values) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ConfigValueError(f"unknown {cls.__name__} fields: {sorted(unknown)}")
        return cls(**values)


@dataclass
class MaestConfig(ModelIdentity):
    """Every size, length and patchout knob of a MAEST transformer."""

    _TYPES: ClassVar[dict[str, type]] = {
        "depth": int, "width": int, "heads": int, "mlp_ratio": float, "qkv_bias": bool, "layer_norm_eps": float,
        "head_norm_eps": float, "n_mels": int, "segment_frames": int, "patch_size": int, "freq_stride": int,
        "time_stride": int, "num_classes": int, "train_patchout_freq": int, "train_patchout_time": int,
        "drop_rate": float, "attn_drop_rate": float, "drop_path_rate": float,
    }
    _POSITIVE: ClassVar[tuple[str, ...]] = (
        "depth", "width", "heads", "mlp_ratio", "layer_norm_eps", "head_norm_eps", "n_mels", "segment_frames",
        "patch_size", "freq_stride", "time_stride", "num_classes",
    )
    _NON_NEGATIVE: ClassVar[tuple[str, ...]] = ("train_patchout_freq", "train_patchout_time")
    _FRACTIONS: ClassVar[tuple[str, ...]] = ("drop_rate", "attn_drop_rate", "drop_path_rate")

    depth: int = 12
    width: int = 768
    heads: int = 12
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    layer_norm_eps: float = 1e-6
    # The head's LayerNorm: 1e-5 (torch default) in the original code; AST uses layer_norm_eps.
    head_norm_eps: float = 1e-5
    n_mels: int = 96
    segment_frames: int = 1875
    patch_size: int = 16
    freq_stride: int = 10
    time_stride: int = 10
    num_classes: int = 400
    # Training patchout: rows/columns of the patch grid dropped per batch (0 disables).
    train_patchout_freq: int = 3
    train_patchout_time: int = 90
    drop_rate: float = 0.0
    attn_drop_rate: float = 0.0
    drop_path_rate: float = 0.0
    # labels, norm_mean, norm_std, name: from ModelIdentity (keyword-only)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.width % self.heads:
            raise ConfigValueError(f"MaestConfig.width ({self.width}) must be a multiple of heads ({self.heads})")

    @property
    def freq_grid(self) -> int:
        """Frequency encodings stored: ``n_mels // freq_stride`` (9); equals the conv's rows."""
        return self.n_mels // self.freq_stride

    @property
    def time_grid(self) -> int:
        """Time encodings stored: ``segment_frames // time_stride`` (187 for 1875 frames)."""
        return self.segment_frames // self.time_stride

    @property
    def segment_seconds(self) -> float:
        return self.segment_frames * frontend.HOP_SIZE / frontend.SAMPLE_RATE

    def conv_freq_rows(self) -> int:
        return (self.n_mels - self.patch_size) // self.freq_stride + 1

    def conv_time_columns(self, frames: int) -> int:
        """Patch columns the conv yields for ``frames`` input frames."""
        return (frames - self.patch_size) // self.time_stride + 1



def for_segment(seconds: int, num_classes: int = 400, **overrides) -> MaestConfig:
    """A full-size config for a segment length in seconds (5, 10, 20 or 30)."""
    if seconds not in SEGMENT_FRAMES:
        raise ValueError(f"segment length must be one of {sorted(SEGMENT_FRAMES)} s, got {seconds}")
    values = dict(segment_frames=SEGMENT_FRAMES[seconds], num_classes=num_classes,
                  train_patchout_time=TRAIN_PATCHOUT_TIME[seconds])
    values.update(overrides)
    return MaestConfig(**values)

