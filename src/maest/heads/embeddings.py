"""Embedding a label set's tracks once, into a resumable cache, with ``maest eval``'s machinery.

Tracks go through :func:`maest.evaluate.runner.extract_dataset_embeddings` (itself
:func:`maest.extraction.extract`: atomic per-track ``.npy`` files, finished tracks skipped on a
rerun). The cache folder is keyed by the model's weights fingerprint, the embedding options and
the audio root, so a cache shared between heads never mixes embeddings of different origins.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from maest.evaluate.datasets import Dataset, Split
from maest.evaluate.features import precision_key, token_letters
from maest.evaluate.runner import embedding_file, extract_dataset_embeddings, load_embeddings
from maest.heads.labels import LabelSet
from maest.heads.spec import EmbeddingSpec


def cache_folder(base: str | os.PathLike, spec: EmbeddingSpec, audio_root: Path, precision: str = "fp32") -> Path:
    """``base/<model>-<weights>/b7-cda-t1-fnone-o0.5-root<hash>`` (``-bf16``... for another precision):
    one folder per way of embedding a root."""
    model = re.sub(r"[^A-Za-z0-9._-]+", "_", spec.model_name) or "model"
    letters = token_letters(spec.tokens)
    freq = "-".join(str(r) for r in spec.patchout_freq) or "none"
    root = hashlib.sha256(str(audio_root.resolve()).encode()).hexdigest()[:8]
    return (Path(base) / f"{model}-{spec.model_fingerprint[:12]}"
            / f"b{spec.blocks}-{letters}-t{spec.patchout_time}-f{freq}-o{spec.overlap}-root{root}{precision_key(precision)}")


def embed_label_set(labels: LabelSet, pipeline: Any, spec: EmbeddingSpec, folder: Path, batch_size: int = 8,
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
        paths = [labels.paths[i] for i in present]
        dataset = Dataset("heads", [], {"all": Split("all", paths, np.zeros((len(paths), 0), bool), paths)})
        failures = extract_dataset_embeddings(dataset, root, pipeline, folder, spec.blocks, spec.tokens, spec.patchout_time,
                                              spec.patchout_freq, spec.overlap, batch_size, workers, progress,
                                              engine=engine)
    view = folder.parent / (folder.name + ".audio-links")  # made by extract_dataset_embeddings (audio_view)
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
