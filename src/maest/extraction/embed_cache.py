"""A folder of per-track embeddings for a list of tracks under an audio root, made with one spec.

What ``maest eval`` and ``maest head fit`` embed with: :func:`maest.extraction.extract` over a folder
of symbolic links mirroring only the listed tracks (so the output tree mirrors their relative paths),
with everything that makes the folder safe to reuse: the settings file holds the spec and refuses
another, finished tracks are skipped, a non-finite output never enters it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from maest.spec import EmbeddingSpec


def audio_view(rel_paths: Sequence[str], audio_root: Path, view_dir: Path) -> Path:
    """A folder of symlinks ``view_dir/<rel path>`` -> ``audio_root/<rel path>`` for these tracks."""
    for rel in rel_paths:
        link, target = view_dir / rel, (audio_root / rel).resolve()
        if link.is_symlink():
            if Path(os.readlink(link)) == target:
                continue
            link.unlink()  # made for another audio root
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, link)
    return view_dir


def embedding_file(directory: Path, rel: str) -> Path:
    """Where :func:`maest.extraction.extract` writes a track's ``.npy`` (suffix replaced)."""
    return directory / Path(rel).with_suffix(".npy")


def embed_tracks(rel_paths: Sequence[str], audio_root: str | os.PathLike, pipeline: Any, embeddings_dir: str | os.PathLike,
                 spec: EmbeddingSpec, batch_size: int = 8, workers: int = 0, progress: bool = True,
                 engine: Any = None) -> dict[str, str]:
    """Embed the tracks ``audio_root/<rel>`` into ``embeddings_dir/<rel>.npy`` with ``spec`` through
    :func:`maest.extraction.extract` (resumable, the folder's settings checked, non-finite outputs refused);
    returns failures by rel path. What ``maest eval`` and ``maest head fit`` embed with; ``engine``: an
    :class:`~maest.extraction.engines.Engine` (default: local, ``workers`` decode processes)."""
    from maest.extraction import extract

    embeddings_dir = Path(embeddings_dir)
    rel_paths = list(dict.fromkeys(rel_paths))
    view = audio_view(rel_paths, Path(audio_root), embeddings_dir.parent / (embeddings_dir.name + ".audio-links"))
    summary = extract([view], embeddings_dir, pipeline, blocks=spec.blocks, tokens=spec.tokens,
                      patchout_time=spec.patchout_time, patchout_freq=spec.patchout_freq, overlap=spec.overlap,
                      crop=spec.crop, segments=spec.segments, precision=spec.precision, resampler=spec.resampler,
                      output_format="npy", extensions=sorted({Path(p).suffix for p in rel_paths if Path(p).suffix}),
                      batch_size=batch_size, workers=workers, progress=progress, engine=engine)
    failures = {}
    for path, reason in summary.failures:
        try:
            failures[Path(path).relative_to(view).as_posix()] = reason
        except ValueError:
            failures[path] = reason
    return failures


def load_embeddings(directory: Path, rel_paths: Sequence[str]) -> np.ndarray:
    """Stack the per-track ``.npy`` embeddings of ``rel_paths`` into ``(N, dim)``."""
    return np.stack([np.load(embedding_file(directory, rel)) for rel in rel_paths]).astype(np.float32)
