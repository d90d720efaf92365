"""Per-track results kept beside a library: each file's embedding and tag probabilities, computed once.

An entry is keyed by the file's path and the model spec (what made the numbers) and is valid while
the file's size and mtime are the ones it was computed from, so a rerun on an unchanged library does
no model work. Writing tags changes mtime and size but not the audio: a caller that knows an entry
was valid just before (the beets plugin, around beets' writes and moves) stores it again with
:meth:`TrackCache.put` for the new stat or path. Entries are single ``.npz`` files written atomically; a broken one is recomputed.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from maest.atomic import atomic_write


@dataclass
class CachedTrack:
    """One file's results: ``embedding`` (dim,), ``probabilities`` (labels,) or None (a head's spec has none)."""

    path: str
    embedding: np.ndarray
    probabilities: np.ndarray | None


def _stat(path: str) -> tuple[int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_size, info.st_mtime_ns


class TrackCache:
    """Entries for one ``spec`` (a string naming the model and the embedding options) in ``folder``."""

    def __init__(self, folder: str | os.PathLike, spec: str):
        self.folder = Path(folder)
        self.spec = spec

    def _file(self, path: str) -> Path:
        digest = hashlib.sha1(f"{self.spec}\0{os.path.abspath(path)}".encode("utf-8", "surrogateescape")).hexdigest()
        return self.folder / digest[:2] / f"{digest}.npz"

    def _read(self, path: str) -> tuple[dict, CachedTrack] | None:
        try:
            with np.load(self._file(path), allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                probabilities = data["probabilities"] if data["probabilities"].size else None
                track = CachedTrack(path, data["embedding"], probabilities)
        except (OSError, ValueError, KeyError):
            return None
        if meta.get("spec") != self.spec or meta.get("path") != os.path.abspath(path):
            return None
        return meta, track

    def get(self, path: str) -> CachedTrack | None:
        """The valid entry of ``path`` (same spec, size and mtime), else None."""
        found = self._read(path)
        if found is None or found[0].get("stat") != list(_stat(path) or ()):
            return None
        return found[1]

    def put(self, path: str, embedding: np.ndarray, probabilities: np.ndarray | None,
            stat: tuple[int, int] | None = None) -> None:
        """Store ``path``'s results, valid for its current size and mtime (or ``stat``)."""
        stat = stat or _stat(path)
        if stat is None:
            return
        meta = json.dumps({"path": os.path.abspath(path), "spec": self.spec, "stat": list(stat)})
        arrays = {"meta": np.array(meta), "embedding": np.asarray(embedding, dtype=np.float32),
                  "probabilities": np.asarray(probabilities if probabilities is not None else [], dtype=np.float32)}
        atomic_write(self._file(path), lambda f: np.savez(f, **arrays), shared=True)

    def _labels_file(self) -> Path:
        return self.folder / f"labels-{hashlib.sha1(self.spec.encode()).hexdigest()[:16]}.json"

    def save_labels(self, labels: list[str]) -> None:
        """The label names of the cached probabilities (one file per spec)."""
        if self.labels() != list(labels):
            atomic_write(self._labels_file(), lambda f: f.write(json.dumps(list(labels)).encode()), shared=True)

    def labels(self) -> list[str] | None:
        """The label names saved by :meth:`save_labels` (None: none yet)."""
        try:
            return json.loads(self._labels_file().read_text())
        except (OSError, ValueError):
            return None

    def forget(self, path: str) -> None:
        """Drop ``path``'s entry (the file was moved away or removed)."""
        self._file(path).unlink(missing_ok=True)

    @staticmethod
    def stat(path: str) -> tuple[int, int] | None:
        """``(size, mtime_ns)`` of ``path`` (None: gone), as entries record it."""
        return _stat(path)
