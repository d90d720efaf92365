"""Similarity search over a collection's embeddings ("sounds like this").

Build an index from an ``maest embed`` output, then ask for the tracks nearest to a track of the
collection or to any embedding; similarity is cosine (vectors are L2-normalised, inner product).

**Exact vs approximate.** An *exact* index (a numpy matrix, or faiss fp16) compares the query with every
stored vector: the true top k, at a cost linear in rows x dims. An *approximate* index (faiss HNSW,
M=32, efConstruction=80, efSearch=64) walks a neighbour graph: ~1-2 ms a query whatever the size,
recall@10 ~0.97-1.0 on clustered data (lower on structureless random vectors), for a build of
~1-2 ms a vector (2304-d, 2 cores). ``kind="auto"`` stays exact while a query scans at most
:data:`EXACT_MAX_VALUES` = 20,000 x 2304 values, where exact search took ~10 ms a query on 2 shared
cores (``benchmarks/results/index.md``): below that, exact search is fast enough and needs no build;
above it, its latency grows linearly while HNSW's stays flat. ``pca_dims`` (fitted on the
collection, explained variance reported) and ``dtype="float16"`` shrink the stored vectors (and so
move the threshold: it counts stored values).

Per-segment embeddings (``--per-segment``) are averaged to one vector per track, as ``maest embed``
does for its track embeddings.
"""

from maest.index.query import embed_like_index, similar
from maest.index.search import (EXACT_MAX_VALUES, AddReport, Index, IndexExistsError, IndexFormatError,
                                IndexInfo, UnknownKeyError, add_to_index, build_index, choose_kind, load)
from maest.index.sources import (DimensionMismatchError, EmbeddingSet, EmptySourceError, SimilarityIndexError,
                                 SpecMismatchError, read_embeddings)

__all__ = [
    "EXACT_MAX_VALUES", "AddReport", "DimensionMismatchError", "EmbeddingSet", "EmptySourceError", "Index",
    "IndexExistsError", "IndexFormatError", "IndexInfo", "SimilarityIndexError", "SpecMismatchError",
    "UnknownKeyError", "add_to_index", "build_index", "choose_kind", "embed_like_index", "load",
    "read_embeddings", "similar",
]
