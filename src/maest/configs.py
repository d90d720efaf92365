"""Model configuration and the registry of the published MAEST architectures."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources

from maest import frontend

# Frames of one segment per segment length (``frontend.md``): the models' ``input_t``.
SEGMENT_FRAMES = {5: 312, 10: 625, 20: 1250, 30: 1875}
# Structured training patchout (paper): time columns dropped per segment length.
TRAIN_PATCHOUT_TIME = {5: 15, 10: 30, 20: 60, 30: 90}


@dataclass
class MaestConfig:
    """Every size, length and patchout knob of a MAEST transformer."""

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
    labels: list[str] | None = None
    # Normalisation applied by the frontend before the model (part of the checkpoint contract).
    norm_mean: float = frontend.DISCOGS_MEAN
    norm_std: float = frontend.DISCOGS_STD
    name: str = "maest"

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

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "MaestConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown MaestConfig fields: {sorted(unknown)}")
        return cls(**values)


@lru_cache(maxsize=None)
def discogs_labels(num_classes: int) -> tuple[str, ...]:
    """The Discogs "Genre---Style" names, in the output order of the published 400/519-class models."""
    if num_classes not in (400, 519):
        raise ValueError(f"no shipped Discogs label list has {num_classes} classes (400 or 519)")
    text = resources.files("maest").joinpath(f"resources/discogs-{num_classes}-styles.json").read_text()
    return tuple(json.loads(text))


@dataclass(frozen=True)
class PublishedModel:
    """A released MAEST checkpoint: where its weights live and what architecture they need."""

    name: str
    segment_seconds: int
    num_classes: int
    init: str
    hub_id: str = field(init=False)

    def __post_init__(self):
        object.__setattr__(self, "hub_id", f"mtg-upf/{self.name}")

    def config(self) -> MaestConfig:
        frames = SEGMENT_FRAMES[self.segment_seconds]
        return MaestConfig(
            segment_frames=frames,
            num_classes=self.num_classes,
            train_patchout_time=TRAIN_PATCHOUT_TIME[self.segment_seconds],
            labels=list(discogs_labels(self.num_classes)),
            name=self.name,
        )


PUBLISHED: dict[str, PublishedModel] = {
    m.name: m
    for m in [
        PublishedModel("discogs-maest-5s-pw-129e", 5, 400, "passt"),
        PublishedModel("discogs-maest-10s-fs-129e", 10, 400, "random"),
        PublishedModel("discogs-maest-10s-pw-129e", 10, 400, "passt"),
        PublishedModel("discogs-maest-10s-dw-75e", 10, 400, "deit"),
        PublishedModel("discogs-maest-20s-pw-129e", 20, 400, "passt"),
        PublishedModel("discogs-maest-30s-pw-129e", 30, 400, "passt"),
        PublishedModel("discogs-maest-30s-pw-73e-ts", 30, 400, "passt"),
        PublishedModel("discogs-maest-30s-pw-129e-519l", 30, 519, "passt"),
    ]
}


def architecture(name: str) -> MaestConfig:
    """Config of a published architecture by name (e.g. ``discogs-maest-30s-pw-129e``)."""
    if name not in PUBLISHED:
        raise KeyError(f"unknown MAEST architecture {name!r}; known: {', '.join(PUBLISHED)}")
    return PUBLISHED[name].config()


def for_segment(seconds: int, num_classes: int = 400, **overrides) -> MaestConfig:
    """A full-size config for a segment length in seconds (5, 10, 20 or 30)."""
    if seconds not in SEGMENT_FRAMES:
        raise ValueError(f"segment length must be one of {sorted(SEGMENT_FRAMES)} s, got {seconds}")
    values = dict(segment_frames=SEGMENT_FRAMES[seconds], num_classes=num_classes,
                  train_patchout_time=TRAIN_PATCHOUT_TIME[seconds])
    values.update(overrides)
    return MaestConfig(**values)
