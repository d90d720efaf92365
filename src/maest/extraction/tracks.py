"""Files -> results: decoding in worker processes feeds the batching core; failures come back in line.

Decoding (:func:`maest.decode.decode_all`) runs in DataLoader workers while the model runs in this
process; segments are batched across files by a :class:`maest.batching.SegmentBatcher`, so tracks
complete out of order and a bad file is reported as soon as the next track completes.

A track whose mel or outputs hold NaN or infinity (e.g. float samples of 1e20) fails with a reason.
Its segments never reach the model when the mel is the cause; when the model makes them, they do not
affect other tracks: batches never pad and every row (segment) is computed independently.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence

import numpy as np
import torch

from maest.batching import SegmentBatcher, TrackResult
from maest.decode import DecodeFailure, Decoder, decode_all
from maest.extraction.errors import NonFiniteOutputError
from maest.extraction.files import AudioItem

NONFINITE_MEL = "its mel spectrogram holds NaN or infinity (samples far outside [-1, 1]?)"
NONFINITE_OUTPUT = "the model's outputs hold NaN or infinity"


def nonfinite_reason(result: TrackResult) -> str | None:
    """Why ``result`` must not be saved (NaN/inf outputs), or None when every value is finite."""
    if not np.isfinite(result.outputs).all():
        bad = int((~np.isfinite(result.outputs).all(axis=1)).sum())
        return f"{NONFINITE_OUTPUT} ({bad} of {len(result.outputs)} segments)"
    return None


def ensure_finite(result: TrackResult) -> None:
    """Raise :class:`NonFiniteOutputError` for a result holding NaN or infinity (sinks call it)."""
    reason = nonfinite_reason(result)
    if reason is not None:
        raise NonFiniteOutputError(reason)


def process(items: Sequence[AudioItem], batcher: SegmentBatcher, decoder: Decoder,
            workers: int = 0) -> Iterator[tuple[AudioItem, TrackResult | None, str | None]]:
    """``(item, result, None)`` or ``(item, None, reason)`` for every item, batching segments across files."""
    failures: deque[tuple[AudioItem, str]] = deque()

    def tracks() -> Iterator[tuple[int, torch.Tensor, float]]:
        for index, decoded in decode_all([item.path for item in items], decoder, workers):
            if isinstance(decoded, DecodeFailure):
                failures.append((items[index], decoded.reason))
            elif not torch.isfinite(decoded.mel).all():
                failures.append((items[index], NONFINITE_MEL))
            else:
                yield index, decoded.mel, decoded.duration

    def drain_failures():
        while failures:
            item, reason = failures.popleft()
            yield item, None, reason

    for index, result in batcher.run(tracks()):
        yield from drain_failures()
        reason = nonfinite_reason(result)
        yield (items[index], result, None) if reason is None else (items[index], None, reason)
    yield from drain_failures()
