"""The published MAEST weights, apart from the architecture (timm's ``default_cfgs``, open_clip's
``pretrained.py``): each release's name, segment length, classes, initialisation, hub id and labels.

How a model string (``--model``, ``load_model(...)``, ``load_checkpoint(...)``) is resolved:

1. ``local:PATH`` is a file or folder on disk, nothing else; ``hf-hub:OWNER/NAME`` is a Hugging Face
   repository, downloaded into ``cache_dir()/OWNER--NAME`` (even if a local path has that name).
2. Without a prefix: an existing local path wins; then a registry name (``discogs-maest-30s-pw-129e``),
   looked for in ``cache_dir()/<name>`` (or ``<name>.safetensors``/``.ckpt``/``.pt``/``.pth`` beside
   it) and downloaded from ``https://huggingface.co/mtg-upf/<name>`` when absent; then a string of the
   form ``OWNER/NAME`` is taken as a hub id.

``cache_dir()`` is ``$MAEST_HOME``, else ``~/.cache/maest``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Literal

from maest.configs import SEGMENT_FRAMES, TRAIN_PATCHOUT_TIME, MaestConfig

HUB_PREFIX = "hf-hub:"
LOCAL_PREFIX = "local:"
# What a cached name may be: a folder (native or Hugging Face AST) or one weights file beside it.
CACHED_FILE_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin")
FOLDER_WEIGHTS = ("model.safetensors", "pytorch_model.bin")
FOLDER_CONFIG = "config.json"

Source = Literal["local", "hub", "registry", "unknown"]


def cache_dir() -> Path:
    """Where published weights are looked for: ``$MAEST_HOME``, else ``~/.cache/maest``."""
    return Path(os.environ.get("MAEST_HOME") or Path.home() / ".cache" / "maest")


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


def cached_path(name: str) -> Path | None:
    """The cached checkpoint of registry name ``name`` that ``load_checkpoint`` would read, if complete.

    A folder counts when it holds ``config.json`` and a weights file (a half-finished download does not).
    """
    target = cache_dir() / name
    if target.is_dir():
        if (target / FOLDER_CONFIG).is_file() and any((target / w).is_file() for w in FOLDER_WEIGHTS):
            return target
    for suffix in CACHED_FILE_SUFFIXES:
        candidate = target.with_name(name + suffix)
        if candidate.is_file():
            return candidate
    return None


@dataclass(frozen=True)
class ModelInfo:
    """One row of :func:`list_models` (what ``maest models`` prints)."""

    name: str
    segment_seconds: int
    num_classes: int
    init: str
    hub_id: str
    cached: bool


def list_models() -> list[ModelInfo]:
    """The published models, in registry order, and whether each is already in ``cache_dir()``."""
    return [ModelInfo(m.name, m.segment_seconds, m.num_classes, m.init, m.hub_id, cached_path(m.name) is not None)
            for m in PUBLISHED.values()]


def parse_model_name(model: str | os.PathLike) -> tuple[Source, str]:
    """Which source a model string names (see the module docstring) and the part after any prefix."""
    text = os.fspath(model)
    if text.startswith(LOCAL_PREFIX):
        return "local", text[len(LOCAL_PREFIX):]
    if text.startswith(HUB_PREFIX):
        return "hub", text[len(HUB_PREFIX):]
    if Path(text).exists():
        return "local", text
    if text in PUBLISHED:
        return "registry", text
    if text.count("/") == 1 and not text.startswith((".", "/")):
        return "hub", text
    return "unknown", text
