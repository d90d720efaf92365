"""Each library file's tag probabilities and embedding, computed once and cached (:mod:`.cache`).

The spec that names a cache entry is built from the settings alone (model source, and for a local
checkpoint or head its file sizes and mtimes; the embedding options), so finding out that nothing
needs computing loads no model. The model is loaded on the first file that needs it.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from maest.library.cache import CachedTrack, TrackCache


@dataclass(frozen=True)
class AnalysisSettings:
    """What makes the cached numbers: the model, the embedding (ignored with a head: its own), the run."""

    model: str
    head: str | None = None
    blocks: int = 7
    tokens: tuple[str, ...] = ("cls", "dist", "avg")
    overlap: float = 0.5
    device: str | None = None
    batch_size: int = 8


def _files_stat(source: str) -> list | None:
    """Sizes and mtimes of a local model or head (file or folder), so new weights at one path are a new spec."""
    path = Path(source)
    if not path.exists():
        return None
    files = sorted(p for p in ([path] if path.is_file() else path.rglob("*")) if p.is_file())
    return [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in files]


class TrackAnalyzer:
    """Results per file path through a :class:`TrackCache` in ``cache_folder``; the model loads lazily."""

    def __init__(self, settings: AnalysisSettings, cache_folder: str | os.PathLike):
        self.settings = settings
        self.head = None
        if settings.head:
            from maest.heads import load_head

            self.head = load_head(settings.head)
        self._pipeline = None
        model = str(Path(settings.model).resolve()) if Path(settings.model).exists() else settings.model
        spec = {"model": model, "model_files": _files_stat(settings.model), "overlap": settings.overlap}
        if self.head is not None:
            spec.update(head=str(Path(settings.head).resolve()), head_files=_files_stat(settings.head),
                        embedding=self.head.spec.embed_kwargs())
        else:
            spec.update(blocks=settings.blocks, tokens=list(settings.tokens))
        self.spec = json.dumps(spec, sort_keys=True, default=str)
        self.cache = TrackCache(cache_folder, self.spec)

    @property
    def pipeline(self) -> Any:
        """The loaded model (loaded on first use: the head's checks included)."""
        if self._pipeline is None:
            if self.head is not None:
                from maest.heads import model_for_head

                self._pipeline = model_for_head(self.head, self.settings.model, self.settings.device,
                                                self.settings.batch_size)
            else:
                from maest.inference import load_model

                self._pipeline = load_model(self.settings.model, self.settings.device, self.settings.batch_size)
        return self._pipeline

    @property
    def labels(self) -> list[str]:
        """The model's label names: saved beside the cache, so cached results need no model loaded."""
        labels = self.cache.labels()
        if labels is None:
            labels = self.pipeline.labels
            self.cache.save_labels(labels)
        return labels

    @functools.cached_property
    def _specs(self) -> tuple[Any, Any]:
        """The tagging and embedding specs (a head's own, resampler included), checked against the model
        once (they depend on the settings and the model alone, not on the track)."""
        pipeline = self.pipeline
        if self.head is not None:
            from maest.heads.spec import run_spec

            embed = run_spec(self.head.spec)
        else:
            embed = pipeline.spec(blocks=self.settings.blocks, tokens=self.settings.tokens,
                                  overlap=self.settings.overlap)
        tag = pipeline.spec(blocks=None, overlap=self.settings.overlap, resampler=embed.resampler)
        return tag, embed

    def compute(self, path: str) -> CachedTrack:
        """Decode ``path`` once, run the tagger and the embedder, cache and return the results."""
        pipeline = self.pipeline
        stat = TrackCache.stat(path)
        tag_options, embed_options = self._specs
        mel, duration = pipeline.mel(path, resampler=embed_options.resampler)
        (_, tagged), = pipeline.run_tracks([(0, mel, duration)], "tag", tag_options)
        (_, embedded), = pipeline.run_tracks([(0, mel, duration)], "embed", embed_options)
        self.cache.save_labels(pipeline.labels)
        self.cache.put(path, embedded.track, tagged.track, stat)
        return CachedTrack(path, embedded.track, tagged.track)

    def analyze(self, paths: Iterable[str], force: bool = False,
                on_failure: Callable[[str, str], None] | None = None) -> dict[str, CachedTrack]:
        """``{path: results}`` from the cache, computing the missing (all with ``force``); failures reported, not raised."""
        out: dict[str, CachedTrack] = {}
        for path in paths:
            track = None if force else self.cache.get(path)
            if track is None:
                try:
                    track = self.compute(path)
                except (OSError, ValueError, RuntimeError) as error:  # undecodable audio and the like
                    if on_failure is not None:
                        on_failure(path, f"{type(error).__name__}: {error}")
                    continue
            out[path] = track
        return out
