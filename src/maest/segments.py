"""Where a track's segments start: half-overlapping windows of the model's length over its mel.

Two rules (frames are mel frames, 16 ms apart; ``L`` = ``config.segment_frames``).

``"maest"`` (the default of ``maest embed`` / ``maest tag``):
  * a track of ``F <= L`` frames is one segment of its own length ``F`` (the model crops its time
    encodings to fit);
  * otherwise segments of ``L`` frames start every ``hop_frames = max(1, round(L * (1 - overlap)))``
    frames from frame 0 while they fit; when the last one does not end on the last frame, one more
    segment ``[F - L, F)`` is added, so every frame is covered and all segments have length ``L``;
  * ``crop="center"`` keeps one segment ``[(F - L) // 2, (F - L) // 2 + L)``: the paper's
    training input (the central 30 s of each track).

``"original"`` (how the paper's downstream numbers were made: the original code's "exhaustive"
dataset, ``DiscogsDatasetExhaustive`` in half-overlap mode; ``maest eval`` and the experiments):
  * ``hop = L // 2``; segments start at ``i * hop`` for ``i < int(1.1 * (F - hop) / hop)`` (the
    "10 % margin"); with ``overlap=0`` (its non-overlapping mode) ``hop = L`` and
    ``i < int(1.1 * F / hop)``;
  * a segment reads the ``min(L, F - start)`` frames there; one that reads fewer than ``L`` is
    zero-padded to ``L`` with the padding centred (``np.roll`` by half the padding: ``pad // 2``
    zeros before, the rest after). "Zero" is the RAW log-mel's zero, i.e. silence: the original
    pads the stored (un-normalised) mel and normalises afterwards, so in maest's normalised mel the
    padding value is ``normalize_mel(0) = -mean / (2 * std)`` (see :func:`padding_value`);
  * where the original's margin yields no segment (tracks shorter than ``1.909 * hop``, about
    95 % of ``L``) the track is one centred-padded segment from frame 0, which is what the
    original does with a short whole-file (``.npy``) input; segments that would start at or past
    the last frame (very long tracks under short models, where the margin outgrows the tail and
    the original reads an empty or out-of-range window) are left out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from maest import frontend

CROPS = (None, "center")
SEGMENT_RULES = ("maest", "original")
ORIGINAL_OVERLAPS = (0.5, 0.0)  # the original code's half-overlapped and non-overlapped modes


@dataclass(frozen=True)
class Segments:
    """Start frames of a track's segments; every segment is ``frames`` long.

    ``valid`` (original rule only) holds the frames each segment reads from the track; a segment
    with ``valid < frames`` is padded, centred, to ``frames`` (:func:`gather_segments`).
    """

    starts: np.ndarray  # int64, ascending
    frames: int
    valid: np.ndarray | None = None  # int64 per segment, or None: every segment reads ``frames``

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


def _check_frames(total_frames: int, segment_frames: int, least_segment: int) -> None:
    """Refuse an empty track, or a segment length the rule cannot cut (below ``least_segment``)."""
    if total_frames < 1:
        raise ValueError(f"a track needs at least one frame, got {total_frames}")
    if segment_frames < least_segment:
        raise ValueError(f"segment_frames must be >= {least_segment}, got {segment_frames}")


def segment_starts(total_frames: int, segment_frames: int, overlap: float = 0.5, crop: str | None = None) -> Segments:
    """Segments covering ``total_frames`` mel frames (module docstring gives the rule)."""
    _check_frames(total_frames, segment_frames, 1)
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


def original_segment_starts(total_frames: int, segment_frames: int, overlap: float = 0.5) -> Segments:
    """The original code's exhaustive segments (module docstring gives the rule): all ``segment_frames`` long."""
    _check_frames(total_frames, segment_frames, 2)
    if overlap not in ORIGINAL_OVERLAPS:
        raise ValueError(f"the original segment rule has two modes, overlap 0.5 (half-overlapping) or 0; got {overlap}")
    hop = segment_frames // 2 if overlap else segment_frames
    margin_frames = total_frames - hop if overlap else total_frames
    # Floor division as in the original ``int((frames_num * 1.1) // hop_size)``; negative -> no segment.
    count = max(0, int((margin_frames * 1.1) // hop))
    starts = np.arange(count, dtype=np.int64) * hop
    starts = starts[starts < total_frames]
    if len(starts) == 0:
        starts = np.zeros(1, np.int64)
    valid = np.minimum(segment_frames, total_frames - starts)
    return Segments(starts, segment_frames, valid)


def track_segments(total_frames: int, segment_frames: int, overlap: float = 0.5, crop: str | None = None,
                   rule: str = "maest") -> Segments:
    """A track's segments under ``rule`` ("maest": :func:`segment_starts`; "original": :func:`original_segment_starts`)."""
    check_rule(rule, overlap, crop)
    if rule == "original":
        return original_segment_starts(total_frames, segment_frames, overlap)
    return segment_starts(total_frames, segment_frames, overlap, crop)


def check_rule(rule: str, overlap: float, crop: str | None) -> None:
    """Refuse a segment rule, overlap and crop that do not go together (before any audio is read)."""
    if rule not in SEGMENT_RULES:
        raise ValueError(f"segments must be one of {SEGMENT_RULES}, got {rule!r}")
    if rule == "original":
        if crop is not None:
            raise ValueError("crop applies to the maest segment rule only, not to segments='original'")
        if overlap not in ORIGINAL_OVERLAPS:
            raise ValueError(f"the original segment rule has two modes, overlap 0.5 (half-overlapping) or 0; got {overlap}")


def padding_value(mean: float, std: float) -> float:
    """The normalised value of a raw zero (silent) mel bin: what the original rule pads with.

    The original pads its stored raw log-mel (``log10(1 + 10000 x)``, 0 for silence) and only then
    normalises, so in maest's normalised mel the padding is ``(0 - mean) / (2 * std)``.
    """
    return float(frontend.normalize_mel(torch.zeros(1), mean, std)[0])


def gather_segments(mel: torch.Tensor, starts: np.ndarray | torch.Tensor, frames: int,
                    valid: np.ndarray | torch.Tensor | None = None, pad_value: float = 0.0) -> torch.Tensor:
    """``(n_mels, F)`` mel -> ``(len(starts), n_mels, frames)`` slices, in one indexing operation.

    With ``valid``, segment ``s`` holds its ``valid[s]`` frames from ``starts[s]`` centred in
    ``frames`` (``(frames - valid[s]) // 2`` padding frames before), the rest ``pad_value``.
    """
    starts = torch.as_tensor(starts, dtype=torch.long, device=mel.device)
    positions = torch.arange(frames, device=mel.device)
    if valid is not None:
        valid = torch.as_tensor(valid, dtype=torch.long, device=mel.device)
    if valid is None or bool((valid == frames).all()):  # nothing to pad
        index = starts[:, None] + positions  # (segments, frames)
        return mel[:, index].permute(1, 0, 2).contiguous()
    before = (frames - valid) // 2
    offsets = positions - before[:, None]  # (segments, frames): frame of the track read at each position
    inside = (offsets >= 0) & (offsets < valid[:, None])
    index = (starts[:, None] + offsets).clamp(0, mel.shape[-1] - 1)
    out = mel[:, index].permute(1, 0, 2)
    return torch.where(inside[:, None, :], out, torch.full((), pad_value, dtype=mel.dtype, device=mel.device)).contiguous()
