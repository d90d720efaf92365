"""Tagging audio with a fitted head: embed with the head's spec through the public pipeline API, then predict."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from maest.heads.head import Head, load_head


def tag_with_head(pipeline: Any, audio: str | os.PathLike | np.ndarray, head: Head | str | os.PathLike,
                  sample_rate: int = 16000) -> list[tuple[str, float, bool]]:
    """``(label, probability, on)`` for every head label, most probable first.

    Refuses (:class:`~maest.heads.spec.HeadMismatchError`) a pipeline whose weights differ from the
    ones the head was fitted on.
    """
    head = head if isinstance(head, Head) else load_head(head)
    head.check_compatible(pipeline)
    embedding = pipeline.embed(audio, sample_rate=sample_rate, **head.spec.embed_kwargs())
    probabilities = head.predict(embedding[None])[0]
    on = head.decide(probabilities[None])[0]
    order = np.argsort(-probabilities, kind="stable")
    return [(head.labels[j], float(probabilities[j]), bool(on[j])) for j in order]
