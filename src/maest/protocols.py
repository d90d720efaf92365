"""The two seams the app and the plots use: an own-label head and a similarity index.

Both are structural (any object with these members works), so the app and the plots do not depend
on how heads and indexes are built or stored; ``maest.index.load(...)`` objects and fitted heads
satisfy them. A bottom-layer module (``maest.app.protocols`` re-exports it): it imports neither
gradio nor torch nor any other maest module.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class LabelHead(Protocol):
    """A classifier over MAEST embeddings (block 7, cls+dist+avg unless the head says otherwise).

    ``labels``: the head's label names. ``predict(embeddings (n, dim)) -> (n, len(labels))``
    probabilities in [0, 1]. ``thresholds`` (optional attribute, ``(len(labels),)``): per-label
    decision thresholds; 0.5 is used where a head has none.
    """

    labels: Sequence[str]

    def predict(self, embeddings: np.ndarray) -> np.ndarray: ...


@runtime_checkable
class TrackIndex(Protocol):
    """A similarity index over a collection's track embeddings.

    ``keys``: every track key the index holds (the paths ``maest embed`` wrote, relative to the
    audio root or absolute). ``search(key_or_vector, k) -> [(key, cosine similarity), ...]``, most
    similar first; a key query may return the track itself.
    """

    keys: Sequence[str]

    def search(self, query: str | np.ndarray, k: int = 10) -> list[tuple[str, float]]: ...


def head_decisions(head: LabelHead, probabilities: np.ndarray) -> np.ndarray:
    """On/off per label: the head's own rule (``decide``: thresholds, or argmax for single-label
    heads) where it has one, else its ``thresholds`` attribute, else 0.5."""
    probabilities = np.asarray(probabilities)
    decide = getattr(head, "decide", None)
    if decide is not None:
        return np.asarray(decide(probabilities), dtype=bool)
    thresholds = getattr(head, "thresholds", None)
    if thresholds is None:
        thresholds = np.full(len(head.labels), 0.5, dtype=np.float32)
    return probabilities >= np.asarray(thresholds, dtype=np.float32).reshape(len(head.labels))


def head_embed_options(head: LabelHead | None, default_blocks: int | None) -> dict:
    """``pipeline.embed`` keywords giving the embeddings ``head`` reads: its recorded spec (a fitted
    :class:`maest.heads.Head`), else ``default_blocks`` with cls+dist+avg."""
    spec = getattr(head, "spec", None)
    if spec is not None and hasattr(spec, "embed_kwargs"):
        return spec.embed_kwargs()
    return {"blocks": default_blocks}
