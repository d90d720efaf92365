"""The index folder: build it from embeddings, load it, search it, add tracks to it.

The folder layout and its atomic commits are :mod:`maest.index.store`'s; writers (build, add) hold
the folder's lock (:mod:`maest.index.lock`), so two of them never interleave.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from maest.index import sources, store, vectors
from maest.index.lock import DEFAULT_WAIT_SECONDS, writer_lock
from maest.index.sources import (SETTINGS_FILE, DimensionMismatchError, EmbeddingSet, SimilarityIndexError,
                                 SpecMismatchError)
from maest.index.store import INFO_FILE, IndexFormatError

Kind = Literal["auto", "exact", "approximate"]
KINDS = ("auto", "exact", "approximate")
DTYPES = ("float32", "float16")
METRICS = ("cosine",)
# "auto" searches exactly while one query scans at most this many stored values (rows x dims):
# numpy took ~0.5 ms per 1000 2304-d vectors on an idle 2-core machine, so ~10 ms at 20,000
# (benchmarks/results/index.md); beyond it HNSW answers faster for a one-off build.
EXACT_MAX_VALUES = 20_000 * 2304
FORMAT_VERSION = 2  # 2: generation folders (maest.index.store); 1 (maest 0.2): files beside index.json


class IndexExistsError(SimilarityIndexError):
    """``build_index`` into a folder that already holds an index."""


class UnknownSpecError(SpecMismatchError):
    """The index or the added embeddings record no spec, so maest cannot tell whether they match."""


class UnknownKeyError(SimilarityIndexError, KeyError):
    """A query key that is not in the index."""

    def __str__(self) -> str:  # KeyError would print the message in quotes
        return str(self.args[0])


@dataclass
class IndexInfo:
    """What ``index.json`` records, and what a build or an add reports."""

    directory: str
    count: int
    dims: int  # stored dims (after PCA)
    source_dims: int  # dims of the embeddings (and of vector queries)
    kind: str  # "exact" or "approximate": what is stored now
    requested_kind: str  # what the build asked for; "auto" may switch to approximate as tracks are added
    dtype: str
    metric: str = "cosine"
    pca_dims: int | None = None
    pca_explained_variance: float | None = None
    ef_search: int = vectors.EF_SEARCH
    memory_bytes: int = 0  # size of vectors.npy/.faiss: the memory the loaded structure holds
    build_seconds: float = 0.0
    embedding_spec: dict = field(default_factory=dict)
    maest_version: str = ""
    format_version: int = FORMAT_VERSION

    def summary(self) -> str:
        pca = f", PCA {self.source_dims}->{self.dims} ({self.pca_explained_variance:.1%} variance)" if self.pca_dims else ""
        return (f"{self.count} tracks, {self.kind} {self.metric} index, {self.dtype}{pca}, "
                f"{self.memory_bytes / 2**20:.1f} MiB, built in {self.build_seconds:.1f} s")


@dataclass
class AddReport:
    """What :meth:`Index.add` did: keys added, keys skipped (already indexed), keys whose files are gone."""

    added: list[str]
    skipped: list[str]
    missing: list[str]
    kind: str
    seconds: float

    def summary(self) -> str:
        missing = f"; {len(self.missing)} indexed tracks no longer in the embeddings (kept)" if self.missing else ""
        return f"added {len(self.added)}, skipped {len(self.skipped)} already indexed ({self.kind} index){missing}"


def choose_kind(kind: Kind, count: int, dims: int) -> str:
    """``auto``: exact while a query scans at most :data:`EXACT_MAX_VALUES` values, else approximate."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if kind != "auto":
        return kind
    return "exact" if count * dims <= EXACT_MAX_VALUES else "approximate"


def _version() -> str:
    import maest

    return maest.__version__


class Index:
    """A loaded similarity index: :meth:`search` by key or vector, :meth:`add` tracks, :meth:`missing`."""

    def __init__(self, directory: Path, info: IndexInfo, structure, keys: list[str], pca: vectors.Pca | None,
                 generation: str | None = None):
        self.directory, self.info, self.structure, self.keys, self.pca = directory, info, structure, keys, pca
        self.generation = generation  # the committed state this object holds (None: a format-1 folder)
        self._rows = {key: row for row, key in enumerate(keys)}
        self._stems: dict[str, int | None] = {}
        for row, key in enumerate(keys):  # "a/b.npy" is also found as "a/b" and "a/b.wav" when unambiguous
            stem = _stem(key)
            self._stems[stem] = None if stem in self._stems else row
        vectors.set_ef_search(structure, info.ef_search)

    def __len__(self) -> int:
        return len(self.keys)

    def __contains__(self, key: str) -> bool:
        return self._find(key) is not None

    def _find(self, key: str) -> int | None:
        if key in self._rows:
            return self._rows[key]
        if key in self._stems:  # "a/01. intro" (whose "suffix" would be ". intro")
            return self._stems[key]
        return self._stems.get(_stem(key))

    def row(self, key: str) -> int:
        """The row of ``key`` (exact, or unique up to the file extension)."""
        row = self._find(key)
        if row is None:
            close = [k for k in self.keys if Path(k).name.startswith(Path(_stem(key)).name)][:3]
            hint = f"; similar keys: {close}" if close else ""
            raise UnknownKeyError(f"{key!r} is not in the index at {self.directory} ({len(self)} tracks){hint}; "
                                  "query by a key from its paths.txt, or by an embedding vector")
        return row

    def vector(self, key: str) -> np.ndarray:
        """The stored (normalised, projected) vector of ``key``."""
        return self.structure.reconstruct(self.row(key))

    def prepare(self, embeddings: np.ndarray) -> np.ndarray:
        """Embeddings ``(n, source_dims)`` as the index stores them: projected (PCA) and unit-length."""
        embeddings = np.asarray(embeddings, dtype=np.float32)
        if embeddings.ndim != 2 or embeddings.shape[1] != self.info.source_dims:
            raise DimensionMismatchError(
                f"the index holds {self.info.source_dims}-d embeddings, got shape {embeddings.shape}; "
                f"embed the query with the index's settings: {self.info.embedding_spec or 'see index.json'}")
        if self.pca is not None:
            embeddings = self.pca.apply(embeddings)
        return np.ascontiguousarray(vectors.normalise(embeddings))

    def search(self, query: str | np.ndarray, k: int = 10, exclude_self: bool = True) -> list[tuple[str, float]]:
        """The ``k`` most similar tracks ``[(key, cosine similarity)]``, most similar first.

        ``query``: a key in the index (``exclude_self`` drops that track from its own answer) or an
        embedding of the index's size (made with the same settings, see ``info.embedding_spec``).
        """
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        skip = None
        if isinstance(query, (str, os.PathLike)):
            skip = self.row(os.fspath(query)) if exclude_self else None
            point = self.vector(os.fspath(query))[None]
        else:
            query = np.asarray(query, dtype=np.float32)
            if query.ndim != 1:
                raise DimensionMismatchError(f"a query vector must be 1-D ({self.info.source_dims},), got {query.shape}")
            point = self.prepare(query[None])
        want = min(k + (skip is not None), len(self))
        scores, rows = vectors.search_one_thread(self.structure, point, want)
        found = [(self.keys[r], float(s)) for r, s in zip(rows[0], scores[0]) if r >= 0 and r != skip]
        return found[:k]

    def missing(self, source: str | os.PathLike | EmbeddingSet) -> list[str]:
        """Indexed keys that ``source`` (the embed output the index was built from) no longer holds."""
        return sources.missing_keys(self.keys, sources.read_embeddings(source))

    def add(self, source: str | os.PathLike | EmbeddingSet, *, assume_spec: bool = False,
            wait: float = DEFAULT_WAIT_SECONDS, on_wait: Callable[[str], None] | None = None) -> AddReport:
        """Add the tracks of ``source`` not yet indexed (PCA reused, no rebuild) and commit the folder.

        Holds the folder's writer lock (waiting up to ``wait`` seconds for another writer) and first
        catches up with what other writers committed since this index was loaded. ``assume_spec``:
        accept embeddings when the index or ``source`` records no embedding spec (see
        :func:`check_known_spec`); a spec that differs is refused all the same.
        """
        started = time.perf_counter()
        data = sources.read_embeddings(source)
        with writer_lock(self.directory, wait, on_wait):
            if store.current_generation(self.directory) != self.generation:
                self._reload()
            check_known_spec(self.info.embedding_spec, data, self.directory, assume_spec)
            sources.check_spec(self.info.embedding_spec, data.spec, data.origin)
            if data.dims != self.info.source_dims:
                raise DimensionMismatchError(f"{data.origin} holds {data.dims}-d embeddings, the index "
                                             f"{self.info.source_dims}-d; embed with the index's settings")
            new = [i for i, key in enumerate(data.keys) if key not in self._rows]
            skipped = [key for key in data.keys if key in self._rows]
            missing = sources.missing_keys(self.keys, data)
            added = [data.keys[i] for i in new]
            if new:
                try:
                    self._append(added, self.prepare(data.vectors[new]), data.spec)
                    self.generation = _commit(self.directory, self.info, self.structure, self.keys, self.pca)
                except BaseException:
                    with contextlib.suppress(Exception):  # the original error is the one to report
                        self._reload()  # the commit did not happen, or did: either way the disk says which
                    raise
            else:  # nothing to commit; what a writer killed while tidying left behind goes now
                store.remove_stale(self.directory, keep=self.generation)
        return AddReport(added, skipped, missing, self.info.kind, time.perf_counter() - started)

    def _append(self, added: list[str], points: np.ndarray, spec: dict) -> None:
        """Rows for ``added`` in memory (an "auto" index turns approximate at the threshold)."""
        kind = choose_kind(self.info.requested_kind, len(self) + len(added), self.info.dims)
        if kind != self.info.kind:  # "auto" crossed the threshold: move the stored vectors into HNSW
            stored = vectors.all_vectors(self.structure)
            self.structure = vectors.new_faiss_index(kind, self.info.dims, self.info.dtype)
            self.structure.add(stored)
            vectors.set_ef_search(self.structure, self.info.ef_search)
            self.info.kind = kind
        self.structure.add(points)
        self.keys = self.keys + added
        self._rows.update({key: len(self._rows) + j for j, key in enumerate(added)})
        for key in added:
            stem = _stem(key)
            self._stems[stem] = None if stem in self._stems else self._rows[key]
        self.info.count = len(self.keys)
        if not self.info.embedding_spec:  # only with assume_spec: the index now records the newcomer's
            self.info.embedding_spec = spec

    def _reload(self) -> None:
        """This object's state replaced by the folder's committed one."""
        fresh = load(self.directory, ef_search=self.info.ef_search)
        self.__init__(fresh.directory, fresh.info, fresh.structure, fresh.keys, fresh.pca, fresh.generation)


def check_known_spec(index_spec: dict, data: EmbeddingSet, directory: Path, assume_spec: bool) -> None:
    """Refuse to add embeddings when the index or ``data`` records no spec, unless ``assume_spec``.

    Without both specs maest cannot tell whether the vectors come from the same model and settings;
    mixing models gives neighbours that look plausible and mean nothing, so guessing is the user's call.
    """
    if assume_spec or (index_spec and data.spec):
        return
    if not data.spec and not index_spec:
        problem = (f"neither the index at {directory} nor {data.origin} records an embedding spec "
                   f"(no {SETTINGS_FILE})")
        fix = "build the index from 'maest embed' outputs and add those"
    elif not data.spec:
        problem = f"{data.origin} records no embedding spec (no {SETTINGS_FILE})"
        fix = "add an 'maest embed' output folder (it writes the file)"
    else:
        problem = f"the index at {directory} records no embedding spec (built without {SETTINGS_FILE})"
        fix = f"rebuild it from 'maest embed' outputs (with --assume-spec it adopts the settings of {data.origin})"
    raise UnknownSpecError(f"{problem}, so maest cannot check that both were made with the same model and "
                           f"settings; {fix}, or pass --assume-spec (assume_spec=True) if you know they match")


def _stem(key: str) -> str:
    return Path(key).with_suffix("").as_posix() if Path(key).suffix else key


def _commit(directory: Path, info: IndexInfo, structure, keys: list[str], pca: vectors.Pca | None) -> str:
    """Commit ``info``, ``structure``, ``keys`` and ``pca`` as the folder's new generation; returns its name."""
    info.maest_version, info.format_version = _version(), FORMAT_VERSION
    fields = {k: v for k, v in asdict(info).items() if k != "directory"}
    generation, info.memory_bytes = store.commit(directory, fields, structure, keys, pca)
    return generation


def build_index(
    embeddings_source: str | os.PathLike | EmbeddingSet,
    output_dir: str | os.PathLike,
    *,
    metric: str = "cosine",
    kind: Kind = "auto",
    pca_dims: int | None = None,
    dtype: str = "float32",
    ef_search: int = vectors.EF_SEARCH,
    overwrite: bool = False,
    wait: float = DEFAULT_WAIT_SECONDS,
    on_wait: Callable[[str], None] | None = None,
) -> IndexInfo:
    """Index an ``maest embed`` output (npy/npz tree or parquet table) into ``output_dir``.

    ``kind="auto"`` searches exactly up to :data:`EXACT_MAX_VALUES` stored values and builds an HNSW
    graph beyond; ``pca_dims`` projects to that many dims (fitted here) and ``dtype="float16"``
    halves the stored vectors, both to bound memory. The commit holds the folder's writer lock
    (waiting up to ``wait`` seconds for another writer).
    """
    started = time.perf_counter()
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    output_dir = Path(output_dir)
    _refuse_existing(output_dir, overwrite)  # before the work; again under the lock
    data = sources.read_embeddings(embeddings_source)
    points = vectors.normalise(data.vectors)  # cosine: the direction only, before and after PCA
    pca = None
    if pca_dims is not None:
        pca = vectors.Pca.fit(points, pca_dims)
        points = vectors.normalise(pca.apply(points))
    dims = points.shape[1]
    chosen = choose_kind(kind, len(points), dims)
    structure = vectors.new_faiss_index(chosen, dims, dtype)
    structure.add(np.ascontiguousarray(points))
    info = IndexInfo(
        directory=str(output_dir), count=len(points), dims=dims, source_dims=data.dims, kind=chosen,
        requested_kind=kind, dtype=dtype, metric=metric, pca_dims=pca_dims,
        pca_explained_variance=pca.explained if pca else None, ef_search=ef_search,
        embedding_spec=data.spec,
    )
    info.build_seconds = time.perf_counter() - started
    with writer_lock(output_dir, wait, on_wait):
        _refuse_existing(output_dir, overwrite)
        _commit(output_dir, info, structure, data.keys, pca)
    return info


def _refuse_existing(output_dir: Path, overwrite: bool) -> None:
    if (output_dir / INFO_FILE).exists() and not overwrite:
        raise IndexExistsError(f"{output_dir} already holds an index: add tracks with add_to_index "
                               "('maest index add'), or pass overwrite=True to rebuild it")


def load(index_dir: str | os.PathLike, ef_search: int | None = None) -> Index:
    """Open an index folder; ``ef_search`` overrides the HNSW search breadth (more: better recall, slower).

    Reads the state last committed, also while a writer is adding tracks; indexes written by maest
    0.2 (format 1) load as they are.
    """
    directory = Path(index_dir)
    snapshot = store.read(directory, FORMAT_VERSION)
    fields = snapshot.fields
    info = IndexInfo(directory=str(directory), **{k: v for k, v in fields.items() if k in IndexInfo.__dataclass_fields__})
    if ef_search is not None:
        info.ef_search = ef_search
    return Index(directory, info, snapshot.structure, snapshot.keys, snapshot.pca, snapshot.generation)


def add_to_index(index_dir: str | os.PathLike, source: str | os.PathLike | EmbeddingSet, *,
                 assume_spec: bool = False, wait: float = DEFAULT_WAIT_SECONDS,
                 on_wait: Callable[[str], None] | None = None) -> AddReport:
    """Add the tracks of ``source`` that ``index_dir`` lacks; report those whose files were removed.

    One writer at a time: waits up to ``wait`` seconds for another (then :class:`IndexBusyError`).
    ``assume_spec``: see :meth:`Index.add`.
    """
    return load(index_dir).add(source, assume_spec=assume_spec, wait=wait, on_wait=on_wait)
