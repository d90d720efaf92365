"""Files -> results: decoding in worker processes feeds the batching core; failures come back in line.

Decoding (:func:`maest.decode.decode_all`) runs in DataLoader workers while the model runs in this
process; segments are batched across files by a :class:`maest.batching.SegmentBatcher`, so tracks
complete out of order and a bad file is reported as soon as the next track completes.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence

import torch

from maest.batching import SegmentBatcher, TrackResult
from maest.decode import DecodeFailure, Decoder, decode_all
from maest.extraction.files import AudioItem


def process(items: Sequence[AudioItem], batcher: SegmentBatcher, decoder: Decoder,
            workers: int = 0) -> Iterator[tuple[AudioItem, TrackResult | None, str | None]]:
    """``(item, result, None)`` or ``(item, None, reason)`` for every item, batching segments across files."""
    failures: deque[tuple[AudioItem, str]] = deque()

    def tracks() -> Iterator[tuple[int, torch.Tensor, float]]:
        for index, decoded in decode_all([item.path for item in items], decoder, workers):
            if isinstance(decoded, DecodeFailure):
                failures.append((items[index], decoded.reason))
            else:
                yield index, decoded.mel, decoded.duration

    def drain_failures():
        while failures:
            item, reason = failures.popleft()
            yield item, None, reason

    for index, result in batcher.run(tracks()):
        yield from drain_failures()
        yield items[index], result, None
    yield from drain_failures()
