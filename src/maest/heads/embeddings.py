"""Embedding a label set's tracks once, into a resumable cache, through the extraction loop.

Tracks go through :func:`maest.extraction.embed_cache.embed_tracks` (itself
:func:`maest.extraction.extract`: atomic per-track ``.npy`` files, finished tracks skipped on a
rerun, the folder's ``maest-embed.json`` holding the spec and refusing another). The cache folder is
named by the model's weights fingerprint, the spec's key and the audio root, so a cache shared
between heads never mixes embeddings of different origins.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from maest.extraction.embed_cache import embed_tracks, embedding_file, load_embeddings
from maest.heads.labels import LabelSet
from maest.heads.spec import HeadSpec


def cache_folder(base: str | os.PathLike, spec: HeadSpec, audio_root: Path) -> Path:
    """``base/<model>-<weights>/b7-cda-t1-fnone-o0.5-root<hash>`` (the spec's key: ``-bf16``, ``-soxr``...
    where a field is off its default): one folder per way of embedding a root."""
    model = re.sub(r"[^A-Za-z0-9._-]+", "_", spec.model_name) or "model"
    root = hashlib.sha256(str(audio_root.resolve()).encode()).hexdigest()[:8]
    return Path(base) / f"{model}-{(spec.weights or 'unknown')[:12]}" / f"{spec.key()}-root{root}"


def embed_label_set(labels: LabelSet, pipeline: Any, spec: HeadSpec, folder: Path, batch_size: int = 8,
                    workers: int = 0, progress: bool = True, engine: Any = None
                    ) -> tuple[np.ndarray, list[int], list[tuple[str, str]]]:
    """``(embeddings (kept, dim), kept row indices, [(path, reason)] skipped)``: missing and unreadable audio is skipped."""
    root = labels.audio_root
    skipped: list[tuple[str, str]] = []
    present = []
    for i, rel in enumerate(labels.paths):
        if (root / rel).is_file():
            present.append(i)
        else:
            skipped.append((rel, "missing: no such file under the audio root"))
    failures: dict[str, str] = {}
    if present:
        failures = embed_tracks([labels.paths[i] for i in present], root, pipeline, folder, spec.embedding_spec(),
                                batch_size, workers, progress, engine)
    view = folder.parent / (folder.name + ".audio-links")  # made by embed_tracks (audio_view)
    kept = []
    for i in present:
        rel = labels.paths[i]
        if rel in failures:  # the reason names the symlink extraction read; name the user's file instead
            reason = failures[rel].replace(str(view / rel), str(root / rel))
            skipped.append((rel, f"unreadable: {reason}"))
        elif not embedding_file(folder, rel).is_file():
            skipped.append((rel, "no embedding was written (unsupported file type?)"))
        else:
            kept.append(i)
    x = load_embeddings(folder, [labels.paths[i] for i in kept]) if kept else np.zeros((0, spec.dim), np.float32)
    return x, kept, skipped
