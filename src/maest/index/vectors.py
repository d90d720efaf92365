"""The vector side of the index: L2 normalisation, PCA, and the search structures.

Exact float32: :class:`NumpyFlat` (one BLAS matrix-vector product); exact float16: faiss
``IndexScalarQuantizer`` (fp16); approximate: faiss HNSW (float32 or fp16). faiss-cpu was chosen over
usearch by measurement (``benchmarks/results/index.md``): at the same M/ef on the same 2304-d
vectors its HNSW built faster and answered faster at equal recall@10.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from maest.atomic import atomic_write

# HNSW parameters (benchmarks/index.py): M=32 neighbours per node, efConstruction=80 and
# efSearch=64 gave recall@10 1.0 on clustered 2304-d data (20,000 vectors: 0.46 ms a query idle).
HNSW_M = 32
EF_CONSTRUCTION = 80
EF_SEARCH = 64
PCA_FIT_ROWS = 50_000  # PCA is fitted on at most this many rows (seeded sample): enough for 2304 dims


class MissingDependencyError(ImportError):
    """faiss is not installed."""


def faiss_module():
    try:
        import faiss
    except ImportError:
        raise MissingDependencyError("similarity search needs faiss: pip install 'maest[index]'") from None
    return faiss


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (inner product = cosine similarity); zero rows stay zero."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


@dataclass
class Pca:
    """A projection to ``components.shape[0]`` dims fitted on the collection: ``(x - mean) @ components.T``."""

    mean: np.ndarray
    components: np.ndarray
    explained_variance_ratio: np.ndarray

    @property
    def explained(self) -> float:
        return float(self.explained_variance_ratio.sum())

    def apply(self, vectors: np.ndarray) -> np.ndarray:
        return (np.asarray(vectors, dtype=np.float32) - self.mean) @ self.components.T

    @classmethod
    def fit(cls, vectors: np.ndarray, dims: int, seed: int = 0) -> Pca:
        """Principal axes of the (unit-normalised) collection via the covariance's eigenvectors."""
        n, d = vectors.shape
        if not 0 < dims <= min(n, d):
            raise ValueError(f"pca_dims must be between 1 and min(tracks, dim) = {min(n, d)}, got {dims}")
        rows = vectors
        if n > PCA_FIT_ROWS:
            rows = vectors[np.sort(np.random.default_rng(seed).choice(n, PCA_FIT_ROWS, replace=False))]
        rows = np.asarray(rows, dtype=np.float64)
        mean = rows.mean(axis=0)
        centred = rows - mean
        covariance = centred.T @ centred / max(len(rows) - 1, 1)
        values, vectors_ = np.linalg.eigh(covariance)
        order = np.argsort(values)[::-1][:dims]
        total = values.clip(min=0).sum()
        ratio = values[order].clip(min=0) / total if total > 0 else np.zeros(dims)
        components = vectors_[:, order].T
        # A deterministic sign per axis, so two fits on the same data give the same projection.
        components *= np.sign(components[np.arange(dims), np.abs(components).argmax(axis=1)])[:, None]
        return cls(mean.astype(np.float32), components.astype(np.float32), ratio.astype(np.float32))

    def save(self, path: Path) -> None:
        atomic_write(path, lambda f: np.savez(f, mean=self.mean, components=self.components,
                                              explained_variance_ratio=self.explained_variance_ratio))

    @classmethod
    def load(cls, path: Path) -> Pca:
        with np.load(path) as data:
            return cls(data["mean"], data["components"], data["explained_variance_ratio"])


class NumpyFlat:
    """Exact float32 search as one matrix-vector product (faiss's interface, the subset used here).

    For one query at a time numpy's BLAS gemv (all cores) beat faiss ``IndexFlatIP`` (which
    parallelises over queries, so one query runs on one core) 2-3x on 2 cores: see the benchmark.
    """

    def __init__(self, dims: int, data: np.ndarray | None = None):
        self.d = dims
        self.data = np.zeros((0, dims), np.float32) if data is None else np.ascontiguousarray(data, np.float32)

    @property
    def ntotal(self) -> int:
        return len(self.data)

    def add(self, points: np.ndarray) -> None:
        self.data = np.concatenate([self.data, np.asarray(points, np.float32)])

    def reconstruct(self, row: int) -> np.ndarray:
        return self.data[row].copy()

    def reconstruct_n(self, start: int, count: int) -> np.ndarray:
        return self.data[start:start + count].copy()

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` inner products per query, highest first (ties: lower row first)."""
        scores, rows = np.full((len(queries), k), -np.inf, np.float32), np.full((len(queries), k), -1)
        k = min(k, self.ntotal)
        for i, query in enumerate(queries):
            all_scores = self.data @ query
            top = np.argpartition(-all_scores, k - 1)[:k] if k < self.ntotal else np.arange(self.ntotal)
            top = top[np.lexsort((top, -all_scores[top]))]
            scores[i, :k], rows[i, :k] = all_scores[top], top
        return scores, rows


def new_faiss_index(kind: str, dims: int, dtype: str, m: int = HNSW_M, ef_construction: int = EF_CONSTRUCTION):
    """An empty inner-product index: exact (numpy float32, faiss float16) or faiss HNSW (approximate)."""
    if kind == "exact" and dtype == "float32":
        return NumpyFlat(dims)
    faiss = faiss_module()
    ip = faiss.METRIC_INNER_PRODUCT
    fp16 = faiss.ScalarQuantizer.QT_fp16
    if kind == "exact":
        index = faiss.IndexScalarQuantizer(dims, fp16, ip)
    elif kind == "approximate":
        index = faiss.IndexHNSWFlat(dims, m, ip) if dtype == "float32" else faiss.IndexHNSWSQ(dims, fp16, m, ip)
        index.hnsw.efConstruction = ef_construction
    else:
        raise ValueError(f"kind must be 'exact' or 'approximate', got {kind!r}")
    if not index.is_trained:  # the fp16 quantizer has nothing to learn, but faiss wants train() called
        index.train(np.zeros((1, dims), dtype=np.float32))
    return index


def search_one_thread(structure, points: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``structure.search`` with faiss on one OpenMP thread (a single query uses one anyway).

    faiss's idle OpenMP threads spin after a parallel region and starve numpy's BLAS threads (the
    PCA projection of the next query): measured 2.6 -> 1.3 ms a query on 2 loaded cores.
    """
    if isinstance(structure, NumpyFlat):
        return structure.search(points, k)
    faiss = faiss_module()
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        return structure.search(points, k)
    finally:
        faiss.omp_set_num_threads(threads)


def set_ef_search(index, ef_search: int) -> None:
    if hasattr(index, "hnsw"):
        index.hnsw.efSearch = ef_search


def structure_file(structure) -> str:
    return "vectors.npy" if isinstance(structure, NumpyFlat) else "vectors.faiss"


def write_structure(structure, directory: Path) -> Path:
    """Save to ``vectors.npy`` (exact float32) or ``vectors.faiss``; returns the path written."""
    path = directory / structure_file(structure)
    if isinstance(structure, NumpyFlat):
        atomic_write(path, lambda f: np.save(f, structure.data))
    else:
        data = faiss_module().serialize_index(structure)
        atomic_write(path, lambda f: f.write(data.tobytes()))
    return path


def read_structure(directory: Path, kind: str, dtype: str):
    if kind == "exact" and dtype == "float32":
        data = np.load(directory / "vectors.npy")
        return NumpyFlat(data.shape[1], data)
    return faiss_module().read_index(os.fspath(directory / "vectors.faiss"))


def all_vectors(index) -> np.ndarray:
    """Every stored vector (float32), in row order; float16 storage gives back its rounded values."""
    return index.reconstruct_n(0, index.ntotal) if index.ntotal else np.zeros((0, index.d), np.float32)

