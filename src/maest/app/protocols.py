"""The two seams the app and the plots use: an own-label head and a similarity index.

Both are structural (any object with these members works), so the app does not depend on how
heads and indexes are built or stored; ``maest.index.load(...)`` objects and fitted heads satisfy them.
This module imports neither gradio nor torch.
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


def head_thresholds(head: LabelHead) -> np.ndarray:
    """The head's per-label thresholds, 0.5 for a head that has none."""
    thresholds = getattr(head, "thresholds", None)
    if thresholds is None:
        return np.full(len(head.labels), 0.5, dtype=np.float32)
    return np.asarray(thresholds, dtype=np.float32).reshape(len(head.labels))
