"""Validation on whole tracks (``data.validation_protocol: segments``): the paper's protocol.

Each stored track is cut into half-overlapping segments of the model's length with the rule
``maest.inference`` uses (``maest.segments.segment_starts``), every segment runs through the
network and the per-segment sigmoid outputs are averaged per track. With a store built with
``--crop full`` this validates on whole tracks instead of one centre crop.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from maest import frontend
from maest.segments import gather_segments, segment_starts
from maest.train.crops import MelCrops

OVERLAP = 0.5  # half-overlapping segments, as in the paper and maest.inference
MIN_FRAMES = 16  # one patch: shorter tracks are padded with silence, as inference does


class TrackSegments(MelCrops):
    """Validation tracks as segments: ``index -> (segments (n, n_mels, frames), targets, index)``.

    Tracks longer than ``segment_frames`` give full-length segments; a shorter track is one segment
    of its own length (the network crops its time encodings), as at inference.
    """

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        if isinstance(index, tuple):
            raise TypeError(f"TrackSegments is indexed by track (validation), not by (epoch, track): {index!r}")
        mel = self.store.read(int(self.rows[index]))
        if mel.shape[1] < MIN_FRAMES:
            mel = np.pad(mel, ((0, 0), (0, MIN_FRAMES - mel.shape[1])))
        mel = frontend.normalize_mel(torch.from_numpy(mel.astype(np.float32)), self.mean, self.std)
        segments = segment_starts(mel.shape[1], self.segment_frames, OVERLAP)
        return gather_segments(mel, segments.starts, segments.frames), self.targets[index].float(), index


def collate_tracks(items: list[tuple[torch.Tensor, torch.Tensor, int]]) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
    """Batch tracks whose segment counts differ: ``(list of segment stacks, targets (B, C), index (B,))``."""
    segments, targets, index = zip(*items)
    return list(segments), torch.stack(targets), torch.as_tensor(index)


def track_probabilities(net: nn.Module, tracks: list[torch.Tensor], batch_size: int) -> torch.Tensor:
    """``(len(tracks), classes)``: per track, the mean over its segments of ``sigmoid(net(segment))``.

    Segments of equal length are batched across tracks, ``batch_size`` at a time, so a batch never
    needs padding (a short track's single segment runs on its own length).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if not tracks:
        raise ValueError("no tracks to validate")
    counts = torch.tensor([len(t) for t in tracks], device=tracks[0].device)
    owner = torch.repeat_interleave(torch.arange(len(tracks), device=counts.device), counts)
    by_length: dict[int, list[int]] = {}
    flat: list[torch.Tensor] = []
    for stack in tracks:
        for segment in stack:
            by_length.setdefault(segment.shape[-1], []).append(len(flat))
            flat.append(segment)
    sums: torch.Tensor | None = None
    for positions in by_length.values():
        for lo in range(0, len(positions), batch_size):
            chunk = positions[lo : lo + batch_size]
            probs = torch.sigmoid(net(torch.stack([flat[i] for i in chunk])).float())
            if sums is None:
                sums = probs.new_zeros(len(tracks), probs.shape[1])
            sums.index_add_(0, owner[chunk], probs)
    return sums / counts[:, None].to(sums.dtype)


def probability_bce(probs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of averaged probabilities (logs clamped at -100, as ``F.binary_cross_entropy``),
    written out because ``F.binary_cross_entropy`` refuses to run under mixed-precision autocast."""
    probs, targets = probs.float(), targets.float()
    log_p, log_not_p = torch.log(probs).clamp(min=-100), torch.log1p(-probs).clamp(min=-100)
    return -(targets * log_p + (1 - targets) * log_not_p).mean()
