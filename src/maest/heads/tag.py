"""Tagging audio with a fitted head: embed with the head's spec through the public pipeline API, then predict."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from maest.heads.head import Head, load_head
from maest.heads.spec import HeadMismatchError, run_spec

TagList = list[tuple[str, float, bool]]


def _as_head(head: Head | str | os.PathLike) -> Head:
    return head if isinstance(head, Head) else load_head(head)


def check_head_options(overlap: float = 0.5, crop: str | None = None, segments: str | None = "maest") -> None:
    """Refuse segment options with a head (API and CLI alike): a head embeds tracks the way it was fitted."""
    if overlap != 0.5 or crop is not None or segments not in (None, "maest"):
        raise HeadMismatchError("--overlap, --crop and --segments (overlap=, crop=, segments=) do not apply with a "
                                "head: it embeds tracks the way it was fitted (see its head.json)")


def model_for_head(head: Head | str | os.PathLike, model: Any = None, device: str | None = None,
                   batch_size: int = 8, precision: str | None = None) -> Any:
    """The pipeline a head reads: ``model`` if given, else the one it was fitted with (checked either way);
    ``precision`` None: the head's."""
    from maest.inference import MaestPipeline, load_model

    head = _as_head(head)
    if model is None:
        model = head.spec.model_source
        if model is None:
            raise HeadMismatchError(f"this head was fitted on an in-memory model ({head.spec.describe()}); "
                                    "pass that model (--model)")
    if precision is None and not isinstance(model, MaestPipeline):
        precision = head.spec.precision
    pipeline = model if isinstance(model, MaestPipeline) else load_model(model, device, batch_size, precision)
    head.check_compatible(pipeline)
    return pipeline


def head_tags(head: Head, embedding: np.ndarray) -> TagList:
    """``(label, probability, on)`` for every label of ``head``, most probable first, from one embedding."""
    probabilities = head.predict(np.asarray(embedding)[None])[0]
    on = head.decide(probabilities[None])[0]
    order = np.argsort(-probabilities, kind="stable")
    return [(head.labels[j], float(probabilities[j]), bool(on[j])) for j in order]


def tag_with_head(pipeline: Any, audio: str | os.PathLike | np.ndarray, head: Head | str | os.PathLike,
                  sample_rate: int = 16000, resampler: str | None = None) -> TagList:
    """``(label, probability, on)`` for every head label, most probable first.

    Refuses (:class:`~maest.heads.spec.HeadMismatchError`) a pipeline whose weights or precision differ
    from the ones the head was fitted with, and a ``resampler`` other than the head's.
    """
    head = _as_head(head)
    head.check_compatible(pipeline)
    spec = run_spec(head.spec, resampler)
    return head_tags(head, pipeline.run_track(audio, "embed", spec, sample_rate).track)


def tag_files_with_head(inputs: Sequence[str | os.PathLike] | str | os.PathLike, head: Head | str | os.PathLike,
                        pipeline: Any, extensions: Sequence[str] | None = None, batch_size: int | None = None,
                        workers: int = 0, resampler: str | None = None) -> Iterator[tuple[str, TagList | None, str | None]]:
    """``(path, tags, None)`` or ``(path, None, reason)`` per audio file under ``inputs`` (folders recursively), in order.

    Segments are batched across files by the inference core (embeddings with the head's spec), the
    head reads each track's mean embedding. A file that cannot be decoded is reported, not raised; a
    head that does not fit ``pipeline`` raises before any file.
    """
    from maest.extraction import run_files

    head = _as_head(head)
    head.check_compatible(pipeline)
    results = run_files(inputs, pipeline, "embed", run_spec(head.spec, resampler), extensions, batch_size or pipeline.batch_size,
                        workers=workers)
    for path, result, reason in results:
        yield path, (head_tags(head, result.track) if result is not None else None), reason
