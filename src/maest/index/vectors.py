"""The vector side of the index: L2 normalisation, PCA, and the faiss structures (exact or HNSW).

faiss-cpu was chosen over usearch by measurement (``benchmarks/results/index.md``): on the same
2304-d vectors its HNSW builds several times faster at equal recall and query latency, and its
flat/scalar-quantizer indexes give exact search in float32 or float16 with one file format.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from maest.atomic import atomic_write

# HNSW parameters (benchmarks/index.py): M=32 neighbours per node, efConstruction=80 and
# efSearch=64 gave recall@10 >= 0.98 on clustered 2304-d data at < 2 ms a query.
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


def new_faiss_index(kind: str, dims: int, dtype: str, m: int = HNSW_M, ef_construction: int = EF_CONSTRUCTION):
    """An empty inner-product faiss index: flat (exact) or HNSW (approximate), float32 or float16."""
    faiss = faiss_module()
    ip = faiss.METRIC_INNER_PRODUCT
    fp16 = faiss.ScalarQuantizer.QT_fp16
    if kind == "exact":
        index = faiss.IndexFlatIP(dims) if dtype == "float32" else faiss.IndexScalarQuantizer(dims, fp16, ip)
    elif kind == "approximate":
        index = faiss.IndexHNSWFlat(dims, m, ip) if dtype == "float32" else faiss.IndexHNSWSQ(dims, fp16, m, ip)
        index.hnsw.efConstruction = ef_construction
    else:
        raise ValueError(f"kind must be 'exact' or 'approximate', got {kind!r}")
    if not index.is_trained:  # the fp16 quantizer has nothing to learn, but faiss wants train() called
        index.train(np.zeros((1, dims), dtype=np.float32))
    return index


def set_ef_search(index, ef_search: int) -> None:
    if hasattr(index, "hnsw"):
        index.hnsw.efSearch = ef_search


def write_faiss(index, path: Path) -> None:
    faiss = faiss_module()
    data = faiss.serialize_index(index)
    atomic_write(path, lambda f: f.write(data.tobytes()))


def read_faiss(path: Path):
    faiss = faiss_module()
    return faiss.read_index(os.fspath(path))


def all_vectors(index) -> np.ndarray:
    """Every stored vector (float32), in row order; float16 storage gives back its rounded values."""
    return index.reconstruct_n(0, index.ntotal) if index.ntotal else np.zeros((0, index.d), np.float32)

