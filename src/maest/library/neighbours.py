"""A similarity index over a library's cached embeddings, kept in step with the library.

The index (:mod:`maest.index`, keys = file paths) is rebuilt from the cache whenever the set of
tracks or any of their entries differs from what it was built from (a signature stored beside it),
so added, removed, moved and re-analysed items are followed without model work.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from maest.atomic import atomic_write_text
from maest.library.cache import CachedTrack

STATE_FILE = "library-state.json"


class LibraryIndexError(ValueError):
    """The library has too few analysed items to compare, or the item asked about is not analysed."""


def _signature(tracks: Mapping[str, CachedTrack], spec: str) -> str:
    digest = hashlib.sha1(spec.encode())
    for path in sorted(tracks):
        digest.update(path.encode("utf-8", "surrogateescape") + b"\0")
        digest.update(np.ascontiguousarray(tracks[path].embedding, dtype=np.float32).tobytes())
    return digest.hexdigest()


def sync_index(folder: str | os.PathLike, tracks: Mapping[str, CachedTrack], spec: str) -> bool:
    """Make the index in ``folder`` hold exactly ``tracks``; returns True when it was rebuilt."""
    from maest.index import EmbeddingSet, build_index

    folder = Path(folder)
    signature = _signature(tracks, spec)
    state = folder / STATE_FILE
    try:
        if json.loads(state.read_text()).get("signature") == signature:
            return False
    except (OSError, ValueError):
        pass
    if len(tracks) < 2:
        raise LibraryIndexError(f"only {len(tracks)} item(s) are analysed: run 'beet maest' on more of the library")
    keys = sorted(tracks)
    vectors = np.stack([tracks[k].embedding for k in keys])
    build_index(EmbeddingSet(keys, vectors, {"maest_library_spec": spec}), folder, kind="auto", overwrite=True)
    atomic_write_text(state, json.dumps({"signature": signature, "count": len(keys)}))
    return True


def nearest(folder: str | os.PathLike, path: str, k: int) -> list[tuple[str, float]]:
    """The ``k`` paths most similar to ``path`` (cosine, most similar first; ``path`` itself left out)."""
    from maest.index import UnknownKeyError, load

    index = load(folder)
    try:
        return index.search(path, k)
    except UnknownKeyError:
        raise LibraryIndexError(f"{path} is not analysed yet: run 'beet maest' on it first") from None
