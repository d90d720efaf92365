"""Where a track's segments start: half-overlapping windows of the model's length over its mel.

Rule (frames are mel frames, 16 ms apart; ``L`` = ``config.segment_frames``):
  * a track of ``F <= L`` frames is one segment of its own length ``F`` (the model crops its time
    encodings to fit);
  * otherwise segments of ``L`` frames start every ``hop_frames = max(1, round(L * (1 - overlap)))``
    frames from frame 0 while they fit; when the last one does not end on the last frame, one more
    segment ``[F - L, F)`` is added, so every frame is covered and all segments have length ``L``;
  * ``crop="center"`` keeps one segment ``[(F - L) // 2, (F - L) // 2 + L)``: the paper's
    training input (the central 30 s of each track).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from maest import frontend

CROPS = (None, "center")


@dataclass(frozen=True)
class Segments:
    """Start frames of a track's segments; every segment is ``frames`` long."""

    starts: np.ndarray  # int64, ascending
    frames: int

    def __len__(self) -> int:
        return len(self.starts)

    @property
    def start_seconds(self) -> np.ndarray:
        """Start times in seconds: frame ``i`` is centred on sample ``i * 256``, i.e. ``i * 0.016`` s."""
        return self.starts * (frontend.HOP_SIZE / frontend.SAMPLE_RATE)


def hop_frames(segment_frames: int, overlap: float) -> int:
    """Frames between segment starts for a fractional ``overlap`` in ``[0, 1)``."""
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    return max(1, round(segment_frames * (1.0 - overlap)))


def segment_starts(total_frames: int, segment_frames: int, overlap: float = 0.5, crop: str | None = None) -> Segments:
    """Segments covering ``total_frames`` mel frames (module docstring gives the rule)."""
    if total_frames < 1:
        raise ValueError(f"a track needs at least one frame, got {total_frames}")
    if segment_frames < 1:
        raise ValueError(f"segment_frames must be >= 1, got {segment_frames}")
    if crop not in CROPS:
        raise ValueError(f"crop must be one of {CROPS}, got {crop!r}")
    hop = hop_frames(segment_frames, overlap)
    if total_frames <= segment_frames:
        return Segments(np.zeros(1, np.int64), total_frames)
    last = total_frames - segment_frames
    if crop == "center":
        return Segments(np.array([last // 2], np.int64), segment_frames)
    starts = np.arange(0, last + 1, hop, dtype=np.int64)
    if starts[-1] != last:
        starts = np.append(starts, np.int64(last))
    return Segments(starts, segment_frames)


def gather_segments(mel: torch.Tensor, starts: np.ndarray | torch.Tensor, frames: int) -> torch.Tensor:
    """``(n_mels, F)`` mel -> ``(len(starts), n_mels, frames)`` slices, in one indexing operation."""
    starts = torch.as_tensor(starts, dtype=torch.long, device=mel.device)
    index = starts[:, None] + torch.arange(frames, device=mel.device)  # (segments, frames)
    return mel[:, index].permute(1, 0, 2).contiguous()
