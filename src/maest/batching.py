"""Segments of many tracks batched through any ``run_batch(mel_batch) -> array`` callable.

The core knows segmenting and batching, not models: "embed", "tag", a multi-block sweep or an
own-label head are each a callable (see :meth:`maest.inference.MaestPipeline.embedder`), and every
driver (the local extraction loop, a Ray actor) feeds tracks through the same :class:`SegmentBatcher`.

Segments are grouped by length (full-length ones together; each short track's length on its own),
so a batch never pads and a track's output does not depend on which other tracks share its batch
(up to float rounding of the matrix kernels, ~1e-6). Under the original segment rule every segment
is full-length: a partial one is padded on its own, as the original code does, never to fit a batch.
At most ``max_pending_tracks`` tracks wait for their segments; tracks are returned as soon as their
last segment ran.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from maest.segments import Segments, check_rule, gather_segments, original_segment_starts, segment_starts

RunBatch = Callable[[torch.Tensor], np.ndarray]
"""``(batch, n_mels, frames)`` segments -> ``(batch, dim)`` float32 outputs, one row per segment."""


@dataclass
class TrackResult:
    """Per-segment outputs of one track (embeddings or probabilities) and where segments start."""

    outputs: np.ndarray  # (segments, dim) float32
    start_seconds: np.ndarray  # (segments,) float64
    duration: float = 0.0

    @property
    def track(self) -> np.ndarray:
        """Track-level output: the mean over segments (the paper's protocol)."""
        return self.outputs.mean(axis=0, dtype=np.float64).astype(np.float32)


@dataclass
class _Track:
    key: Any
    mel: torch.Tensor | None
    segments: Segments
    duration: float
    outputs: np.ndarray | None = None
    remaining: int = 0


@dataclass
class _Piece:
    track: _Track
    lo: int
    hi: int


class SegmentBatcher:
    """Batches the segments of many tracks through ``run_batch``; returns tracks as they complete.

    ``segment_frames`` is the model's segment length and ``min_frames`` the shortest mel it takes;
    ``overlap``, ``crop`` and ``segments`` (the rule: "maest" or "original") follow
    :func:`maest.segments.track_segments`; ``pad_value`` fills the padding of the original rule's
    partial segments (:func:`maest.segments.padding_value` of the model's normalisation).
    """

    def __init__(self, run_batch: RunBatch, segment_frames: int, *, min_frames: int = 1, overlap: float = 0.5,
                 crop: str | None = None, batch_size: int = 8, max_pending_tracks: int | None = None,
                 segments: str = "maest", pad_value: float = 0.0):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        check_rule(segments, overlap, crop)
        self.run_batch = run_batch
        self.segment_frames = segment_frames
        self.min_frames = min_frames
        self.overlap = overlap
        self.crop = crop
        self.segments = segments
        self.pad_value = pad_value
        self.batch_size = batch_size
        self.max_pending_tracks = max_pending_tracks or max(16, 2 * batch_size)
        self.queues: OrderedDict[int, deque[_Piece]] = OrderedDict()
        self.queued: dict[int, int] = {}
        self.pending_tracks = 0
        self._done: list[tuple[Any, TrackResult]] = []

    def add(self, key: Any, mel: torch.Tensor, duration: float) -> list[tuple[Any, TrackResult]]:
        """Queue a track's mel ``(n_mels, frames)``; returns the tracks completed meanwhile."""
        if mel.shape[-1] < self.min_frames:
            raise ValueError(f"a track needs at least {self.min_frames} mel frames, got {mel.shape[-1]}")
        # the rule was checked once, when this batcher was made (not once per track)
        if self.segments == "original":
            segments = original_segment_starts(mel.shape[-1], self.segment_frames, self.overlap)
        else:
            segments = segment_starts(mel.shape[-1], self.segment_frames, self.overlap, self.crop)
        track = _Track(key, mel, segments, duration, remaining=len(segments))
        self.queues.setdefault(segments.frames, deque()).append(_Piece(track, 0, len(segments)))
        self.queued[segments.frames] = self.queued.get(segments.frames, 0) + len(segments)
        self.pending_tracks += 1
        while True:
            full = [length for length, count in self.queued.items() if count >= self.batch_size]
            if full:
                self._run(full[0])
            elif self.pending_tracks > self.max_pending_tracks:
                # Bound memory: run the queue holding the most segments even if its batch is short.
                self._run(max(self.queued, key=self.queued.__getitem__))
            else:
                break
        return self._take_done()

    def finish(self) -> list[tuple[Any, TrackResult]]:
        """Run every queued segment; returns the tracks completed."""
        while self.queued:
            self._run(next(iter(self.queued)))
        return self._take_done()

    def run(self, tracks: Iterable[tuple[Any, torch.Tensor, float]]) -> Iterator[tuple[Any, TrackResult]]:
        """``(key, mel, duration)`` tracks -> ``(key, result)`` as each completes, then the rest."""
        for key, mel, duration in tracks:
            yield from self.add(key, mel, duration)
        yield from self.finish()

    def _gather(self, piece: _Piece, length: int) -> torch.Tensor:
        segments = piece.track.segments
        valid = None if segments.valid is None else segments.valid[piece.lo : piece.hi]
        return gather_segments(piece.track.mel, segments.starts[piece.lo : piece.hi], length, valid, self.pad_value)

    def _take_done(self) -> list[tuple[Any, TrackResult]]:
        done, self._done = self._done, []
        return done

    def _run(self, length: int) -> None:
        queue = self.queues[length]
        pieces: list[_Piece] = []
        taken = 0
        while queue and taken < self.batch_size:
            piece = queue[0]
            count = min(piece.hi - piece.lo, self.batch_size - taken)
            pieces.append(_Piece(piece.track, piece.lo, piece.lo + count))
            piece.lo += count
            taken += count
            if piece.lo == piece.hi:
                queue.popleft()
        self.queued[length] -= taken
        if not queue:
            del self.queues[length], self.queued[length]
        mel = torch.cat([self._gather(p, length) for p in pieces])
        outputs = self.run_batch(mel)
        offset = 0
        for piece in pieces:
            track = piece.track
            if track.outputs is None:
                track.outputs = np.empty((len(track.segments), outputs.shape[1]), np.float32)
            track.outputs[piece.lo : piece.hi] = outputs[offset : offset + piece.hi - piece.lo]
            offset += piece.hi - piece.lo
            track.remaining -= piece.hi - piece.lo
            if track.remaining == 0:
                track.mel = None  # free the mel as soon as its last segment ran
                self.pending_tracks -= 1
                self._done.append((track.key, TrackResult(track.outputs, track.segments.start_seconds, track.duration)))
