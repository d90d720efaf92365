"""Reading an ``maest embed`` output (npy/npz tree or parquet table) as keys + one vector per track.

Per-segment outputs (``--per-segment``: ``(segments, dim)`` arrays) are averaged over segments,
which is exactly how ``maest embed`` makes a track embedding, so a per-segment folder and a
per-track folder made with the same settings give the same index.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SETTINGS_FILE = "maest-embed.json"  # written by maest.extraction next to its outputs
TABLE_FILE = "embeddings.parquet"
# Settings that change how vectors are stored, not what they mean: they may differ between builds.
STORAGE_SETTINGS = ("format", "per_segment")


class SimilarityIndexError(ValueError):
    """Base class of the similarity-index errors."""


class EmptySourceError(SimilarityIndexError):
    """The embeddings source holds no embeddings."""


class DimensionMismatchError(SimilarityIndexError):
    """Vectors of different sizes were mixed, or a query does not match the index."""


class SpecMismatchError(SimilarityIndexError):
    """Embeddings made with other settings (model, blocks, tokens...) than the index's."""


@dataclass
class EmbeddingSet:
    """Keys (the embed output's relative paths), their vectors ``(n, dim)`` and the embedding spec."""

    keys: list[str]
    vectors: np.ndarray
    spec: dict = field(default_factory=dict)
    origin: str = "<memory>"

    def __post_init__(self) -> None:
        vectors = np.asarray(self.vectors)
        if vectors.ndim != 2:
            raise DimensionMismatchError(f"{self.origin}: expected a (tracks, dim) array, got shape {vectors.shape}")
        if len(self.keys) != len(vectors):
            raise SimilarityIndexError(f"{self.origin}: {len(self.keys)} keys for {len(vectors)} vectors")
        if len(set(self.keys)) != len(self.keys):
            raise SimilarityIndexError(f"{self.origin}: duplicate keys; each track must appear once")
        bad = [k for k in self.keys if "\n" in k or "\r" in k]
        if bad:
            raise SimilarityIndexError(f"{self.origin}: keys with line breaks cannot be indexed (rename them): {bad[:3]}")
        if not np.isfinite(vectors).all():
            rows = np.flatnonzero(~np.isfinite(vectors).all(axis=1))
            raise SimilarityIndexError(f"{self.origin}: non-finite values in {[self.keys[i] for i in rows[:3]]}; re-embed them")
        self.vectors = vectors.astype(np.float32, copy=False)

    @property
    def dims(self) -> int:
        return self.vectors.shape[1]


def _track_vector(array: np.ndarray, origin: Path) -> np.ndarray:
    if array.ndim == 1:
        return array
    if array.ndim == 2 and len(array):  # per-segment output: the track embedding is the segment mean
        return array.mean(axis=0)
    raise DimensionMismatchError(f"{origin}: expected a (dim,) or (segments, dim) array, got shape {array.shape}")


def _read_array(path: Path) -> np.ndarray:
    """One ``.npy`` array or an ``.npz``'s ``embedding``, as float32; a damaged file is named in the error."""
    try:
        if path.suffix == ".npy":
            array = np.load(path)
        else:
            with np.load(path) as npz:
                if "embedding" not in npz:
                    raise SimilarityIndexError(f"{path}: an npz output must hold an 'embedding' array")
                array = npz["embedding"]
        return np.asarray(array, dtype=np.float32)
    except SimilarityIndexError:
        raise
    except (OSError, ValueError, TypeError, AttributeError, EOFError, zipfile.BadZipFile) as error:  # no file name
        raise SimilarityIndexError(f"{path}: not a readable embedding ({type(error).__name__}: {error}); "
                                   "embed that track again or remove the file") from error


def _read_tree(root: Path) -> tuple[list[str], list[np.ndarray]]:
    keys, vectors = [], []
    for folder, subfolders, files in os.walk(root):
        subfolders.sort()
        for name in sorted(files):
            path = Path(folder) / name
            if path.suffix not in (".npy", ".npz"):
                continue
            keys.append(path.relative_to(root).as_posix())
            vectors.append(_track_vector(_read_array(path), path))
    return keys, vectors


def _read_parquet(path: Path) -> tuple[list[str], np.ndarray]:
    from maest.extraction import read_table  # lazy: extraction imports torch

    return read_table(path)


def read_embeddings(source: str | os.PathLike | EmbeddingSet) -> EmbeddingSet:
    """An :class:`EmbeddingSet` from an embed output folder, an ``embeddings.parquet`` file or itself.

    Keys are the embed output's names: the relative ``.npy``/``.npz`` path in a tree, the ``path``
    column in a table. The folder's ``maest-embed.json`` (if any) becomes the embedding spec.
    """
    if isinstance(source, EmbeddingSet):
        return source
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"no embeddings at {path}: pass an 'maest embed' output folder or an {TABLE_FILE}")
    folder = path if path.is_dir() else path.parent
    spec = json.loads((folder / SETTINGS_FILE).read_text()) if (folder / SETTINGS_FILE).is_file() else {}
    if path.is_file() and path.suffix != ".parquet":
        raise SimilarityIndexError(f"{path}: expected a folder of .npy/.npz files or a .parquet table")
    # a folder: its table, or the tables of a sharded run (embeddings.shard-i-of-n.parquet)
    tables = [path] if path.is_file() else sorted(folder.glob("embeddings*.parquet"))
    if tables:
        keys, parts = [], []
        for table in tables:
            table_keys, table_vectors = _read_parquet(table)
            keys += table_keys
            parts.append(np.asarray(table_vectors, dtype=np.float32))
        if len({p.shape[1] for p in parts}) > 1:
            raise DimensionMismatchError(f"{folder}: its tables hold embeddings of different sizes "
                                         f"{sorted({p.shape[1] for p in parts})}; index them separately")
        vectors = np.concatenate(parts)
    else:
        keys, rows = _read_tree(folder)
        if not rows:
            raise EmptySourceError(f"{folder} holds no embeddings (.npy, .npz or {TABLE_FILE}); run 'maest embed' first")
        dims = {}
        for key, row in zip(keys, rows):
            dims.setdefault(row.shape[0], key)
        if len(dims) > 1:
            examples = ", ".join(f"{d} ({k})" for d, k in dims.items())
            raise DimensionMismatchError(f"{folder} mixes embedding sizes: {examples}; "
                                         "embed the collection with one setting per folder")
        vectors = np.stack(rows)
    if not len(keys):
        raise EmptySourceError(f"{path} holds no embeddings; run 'maest embed' first")
    return EmbeddingSet(list(keys), vectors, spec, str(path))


def semantic_spec(spec: dict) -> dict:
    """The settings that decide what an embedding means (without storage-only ones)."""
    return {k: v for k, v in spec.items() if k not in STORAGE_SETTINGS}


def check_spec(index_spec: dict, source_spec: dict, origin: str) -> None:
    """Refuse embeddings made with other settings than the index's; an unknown spec is accepted."""
    if not index_spec or not source_spec:
        return
    ours, theirs = semantic_spec(index_spec), semantic_spec(source_spec)
    changed = {k: (ours.get(k), theirs.get(k)) for k in ours.keys() | theirs.keys() if ours.get(k) != theirs.get(k)}
    if changed:
        details = ", ".join(f"{k}: {a!r} in the index, {b!r} in {origin}" for k, (a, b) in sorted(changed.items()))
        raise SpecMismatchError(f"the embeddings were made with other settings ({details}); "
                                "embed them with the index's settings or build a new index")


def missing_keys(index_keys: Sequence[str], source: EmbeddingSet) -> list[str]:
    """Keys of the index that the source no longer holds (their files were removed)."""
    present = set(source.keys)
    return [k for k in index_keys if k not in present]
