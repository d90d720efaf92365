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
    pipeline = model if isinstance(model, MaestPipeline) else load_model(model, device, precision=spec.get("precision", "fp32"))
    recorded = spec.get("weights")
    if recorded is not None and recorded != pipeline.fingerprint:
        raise SimilarityIndexError(
            f"the index at {index.directory} holds embeddings of other weights ({recorded[:12]}) than the model "
            f"given ({pipeline.fingerprint[:12]}): its neighbours would be meaningless; pass the model it was "
            "built from")
    from maest.spec import EmbeddingSpec, SpecMismatchError

    wanted = EmbeddingSpec.from_dict(spec)  # the spec maest-embed.json recorded (resampler included)
    try:
        made = pipeline.spec(**{name: getattr(wanted, name) for name in ("blocks", "tokens", "patchout_time",
                                "patchout_freq", "overlap", "crop", "segments", "resampler")})
        wanted.check_matches(made, f"the index at {index.directory} holds embeddings made with another spec",
                             "pass the model (and --precision) it was built with")
    except SpecMismatchError as error:
        raise SimilarityIndexError(str(error)) from None
    return pipeline.run_track(audio_file, "embed", made).track


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
