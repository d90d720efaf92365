"""``maest similar``: a query that is a key of the index, or an audio file embedded on the fly."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from maest.index.search import Index, load
from maest.index.sources import SimilarityIndexError


def embed_like_index(index: Index, audio_file: str | os.PathLike, model=None, device: str | None = None) -> np.ndarray:
    """Embed ``audio_file`` with the index's embedding spec (model, blocks, tokens, patchout, ...).

    ``model`` (a name, path or loaded ``MaestPipeline``) overrides the model the spec records.
    """
    from maest.inference import MaestPipeline, load_model  # lazy: imports torch

    spec = index.info.embedding_spec
    model = model if model is not None else spec.get("model")
    if model is None:
        raise SimilarityIndexError(f"the index at {index.directory} does not record the model its embeddings "
                                   "came from (no maest-embed.json when it was built); pass model=...")
    pipeline = model if isinstance(model, MaestPipeline) else load_model(model, device, precision=spec.get("precision"))
    recorded = spec.get("weights")
    if recorded is not None and recorded != pipeline.fingerprint:
        raise SimilarityIndexError(
            f"the index at {index.directory} holds embeddings of other weights ({recorded[:12]}) than the model "
            f"given ({pipeline.fingerprint[:12]}): its neighbours would be meaningless; pass the model it was "
            "built from")
    return pipeline.embed(
        audio_file, blocks=spec.get("blocks", "auto"), tokens=tuple(spec.get("tokens", ("cls", "dist", "avg"))),
        patchout_time=spec.get("patchout_time", 1), patchout_freq=tuple(spec.get("patchout_freq", ())),
        overlap=spec.get("overlap", 0.5), crop=spec.get("crop"), segments=spec.get("segments", "maest"),
    )


def similar(index_dir: str | os.PathLike | Index, query: str | os.PathLike, k: int = 10, *,
            model=None, device: str | None = None) -> list[tuple[str, float]]:
    """The ``k`` tracks most similar to ``query``: a key in the index (itself excluded) or an audio file.

    A query that is both an indexed key and an existing file is taken as the key (no embedding needed).
    """
    index = index_dir if isinstance(index_dir, Index) else load(index_dir)
    if os.fspath(query) in index:
        return index.search(os.fspath(query), k)
    if Path(query).is_file():
        return index.search(embed_like_index(index, query, model, device), k)
    return index.search(os.fspath(query), k)  # neither: the unknown-key error explains both options
