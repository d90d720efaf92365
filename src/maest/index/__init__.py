"""Similarity search over a collection's embeddings ("sounds like this").

Build an index from an ``maest embed`` output, then ask for the tracks nearest to a track of the
collection or to any embedding; similarity is cosine (vectors are L2-normalised, inner product).

**Exact vs approximate.** An *exact* index (a numpy float32 matrix, or faiss fp16) compares the
query with every stored vector: the true top k, at a cost linear in rows x dims (~0.5 ms per 1000
2304-d vectors on an idle 2-core machine). An *approximate* index (faiss HNSW, M=32,
efConstruction=80, efSearch=64) walks a neighbour graph: well under a millisecond a query idle,
nearly flat in the collection size, recall@10 ~1.0 on clustered data and ~0.7 on structureless
random vectors (whose "neighbours" are noise); the price is a build (idle: 20,000 2304-d vectors in
~4 s) and ~2 % more memory. ``load(..., ef_search=256)`` trades speed for recall.
``kind="auto"`` stays exact while a query scans at most :data:`EXACT_MAX_VALUES` = 20,000 x 2304
stored values: there exact search reached ~10 ms a query (idle, 2 cores), beyond it latency keeps
growing linearly while HNSW's does not (``benchmarks/results/index.md``). ``pca_dims`` (fitted on
the collection, explained variance reported) and ``dtype="float16"`` shrink the stored vectors,
and so move the threshold, which counts stored values.

**Writing.** One writer at a time per folder (a lock file; others wait, bounded, then
:class:`IndexBusyError`), and each write commits a new generation with one rename, so a killed
writer leaves the old or the new index (:mod:`maest.index.store`). Adding embeddings whose spec is
unknown on either side needs ``assume_spec=True``.

Per-segment embeddings (``--per-segment``) are averaged to one vector per track, as ``maest embed``
does for its track embeddings.
"""

from maest.index.lock import IndexBusyError
from maest.index.query import embed_like_index, similar
from maest.index.search import (EXACT_MAX_VALUES, AddReport, Index, IndexExistsError, IndexFormatError,
                                IndexInfo, UnknownKeyError, UnknownSpecError, add_to_index, build_index, choose_kind,
                                load)
from maest.index.sources import (DimensionMismatchError, EmbeddingSet, EmptySourceError, SimilarityIndexError,
                                 SpecMismatchError, read_embeddings)

__all__ = [
    "EXACT_MAX_VALUES", "AddReport", "DimensionMismatchError", "EmbeddingSet", "EmptySourceError", "Index",
    "IndexBusyError", "IndexExistsError", "IndexFormatError", "IndexInfo", "SimilarityIndexError", "SpecMismatchError",
    "UnknownKeyError", "UnknownSpecError", "add_to_index", "build_index", "choose_kind", "embed_like_index", "load",
    "read_embeddings", "similar",
]
