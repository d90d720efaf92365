"""Whole-track mel spectrograms in bounded memory: decode in windows, compute the mel in chunks.

Decoding: windows of ``chunk_seconds`` whole seconds, each decoded with ``margin_seconds`` of extra
audio on both sides and cropped, so resampler and decoder edge effects fall in the discarded
margins. Window starts are whole seconds, which are whole sample positions both at the file's rate
and at 16 kHz, so the 16 kHz samples of consecutive windows line up with those of a whole-file
decode (equal up to float rounding of the resampler).

Mel: frames are computed as soon as their 512 samples are available, using the frontend's own
convention (frame ``i`` covers samples ``[256 i - 256, 256 i + 256)``, zeros outside the track,
``ceil(n / 256) + 1`` frames), so the stitched mel equals :class:`MelFrontend` on the whole
waveform frame for frame. Peak memory is one decode window plus the track's mel (86 MB per hour).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
import torch

from maest import audio, frontend

SAMPLE_RATE = frontend.SAMPLE_RATE
HOP = frontend.HOP_SIZE
FRAME = frontend.FRAME_SIZE


def stream_audio(
    path: str | os.PathLike, chunk_seconds: int = 60, margin_seconds: int = 1, resampler: str | None = None
) -> Iterator[np.ndarray]:
    """Consecutive 16 kHz mono blocks of ``chunk_seconds`` (the last shorter) of a whole file, resampled
    with ``resampler`` (None: :func:`maest.audio.load`'s default)."""
    if chunk_seconds < 1 or int(chunk_seconds) != chunk_seconds:
        raise ValueError(f"chunk_seconds must be a whole number >= 1, got {chunk_seconds}")
    if margin_seconds < 0 or int(margin_seconds) != margin_seconds:
        raise ValueError(f"margin_seconds must be a whole number >= 0, got {margin_seconds}")
    chunk, margin = int(chunk_seconds), int(margin_seconds)
    # Audio past the block tells whether the file goes on: at least one second, even without margin.
    lookahead = max(margin, 1)
    block = chunk * SAMPLE_RATE
    start = 0  # seconds
    while True:
        window_start = max(0, start - margin)
        skip = (start - window_start) * SAMPLE_RATE
        samples = audio.load(path, SAMPLE_RATE, offset=window_start or None, duration=chunk + start - window_start + lookahead,
                             resampler=resampler)
        if len(samples) >= skip + block + lookahead * SAMPLE_RATE:
            yield samples[skip : skip + block]
            start += chunk
            continue
        # The file ends inside this window (its right margin is incomplete): last block.
        if len(samples) > skip:
            yield samples[skip:]
        return


class MelStream:
    """Feed consecutive 16 kHz blocks; get the mel frames that are complete, then the rest on close."""

    def __init__(self, mel_frontend: frontend.MelFrontend, min_frames: int = 0):
        self.frontend = mel_frontend
        # Tracks shorter than ``min_frames`` frames are padded with silence up to it (one patch).
        self.min_samples = frontend.samples_for_frames(min_frames) if min_frames else 0
        self.pending = np.zeros(HOP, np.float32)  # the left half of frame 0 is zero padding
        self.samples = 0
        self.frames_out = 0

    def _frames(self, count: int) -> torch.Tensor:
        # ``count`` frames need (count + 1) * 256 samples of pending (which starts at the first
        # frame's left edge). The frontend pads 256 zeros on the left, so its frames 1..count are ours.
        window = torch.from_numpy(np.ascontiguousarray(self.pending[: (count + 1) * HOP]))
        mel = self.frontend(window[None])[0, :, 1 : count + 1]
        self.pending = self.pending[count * HOP :]
        self.frames_out += count
        return mel

    def feed(self, block: np.ndarray) -> torch.Tensor | None:
        """Append samples; returns the newly complete frames ``(96, k)`` or None."""
        if block.size == 0:
            return None
        self.pending = np.concatenate([self.pending, np.asarray(block, np.float32)])
        self.samples += block.size
        count = (len(self.pending) - FRAME) // HOP + 1 if len(self.pending) >= FRAME else 0
        return self._frames(count) if count > 0 else None

    def close(self) -> torch.Tensor:
        """The remaining frames, the last ones zero padded as the frontend pads the track's end."""
        if self.samples < self.min_samples:
            self.pending = np.concatenate([self.pending, np.zeros(self.min_samples - self.samples, np.float32)])
            self.samples = self.min_samples
        if self.samples == 0:
            raise ValueError("no audio samples were fed")
        remaining = frontend.num_frames(self.samples) - self.frames_out
        needed = (remaining + 1) * HOP
        self.pending = np.concatenate([self.pending, np.zeros(max(0, needed - len(self.pending)), np.float32)])
        return self._frames(remaining)


def waveform_blocks(waveform: np.ndarray, chunk_seconds: int = 60) -> Iterator[np.ndarray]:
    """Blocks of an in-memory waveform, so its mel is computed in bounded memory too."""
    block = int(chunk_seconds * SAMPLE_RATE)
    for start in range(0, len(waveform), block):
        yield waveform[start : start + block]


class _FrameBuffer:
    """Growable ``(96, frames)`` buffer: avoids holding the pieces and their concatenation at once."""

    def __init__(self, capacity: int):
        self.data = torch.empty(frontend.N_BANDS, max(1, capacity))
        self.size = 0

    def append(self, piece: torch.Tensor) -> None:
        needed = self.size + piece.shape[1]
        if needed > self.data.shape[1]:  # the length hint was short (e.g. VBR mp3): grow by half
            grown = torch.empty(self.data.shape[0], max(needed, self.data.shape[1] * 3 // 2))
            grown[:, : self.size] = self.data[:, : self.size]
            self.data = grown
        self.data[:, self.size : needed] = piece
        self.size = needed

    def result(self) -> torch.Tensor:
        if self.size < self.data.shape[1] // 2:
            return self.data[:, : self.size].clone()
        return self.data[:, : self.size]


def track_mel(
    blocks: Iterator[np.ndarray], mel_frontend: frontend.MelFrontend, min_frames: int = 0, expected_samples: int = 0
) -> tuple[torch.Tensor, int]:
    """Stitch the mel of a stream of blocks: ``((96, frames) float32, number of samples)``.

    ``expected_samples`` (a length hint, e.g. from the file header) sizes the output buffer once.
    """
    stream = MelStream(mel_frontend, min_frames)
    frames = _FrameBuffer(frontend.num_frames(max(expected_samples, frontend.samples_for_frames(min_frames))))
    samples = 0
    with torch.inference_mode():
        for block in blocks:
            samples += block.size
            piece = stream.feed(block)
            if piece is not None:
                frames.append(piece)
        if samples == 0:
            raise ValueError("the audio holds no samples")
        frames.append(stream.close())
    return frames.result(), samples


def file_mel(
    path: str | os.PathLike, mel_frontend: frontend.MelFrontend, min_frames: int = 0, chunk_seconds: int = 60,
    resampler: str | None = None,
) -> tuple[torch.Tensor, float]:
    """Mel of a whole file in bounded memory, and its duration in seconds (before any padding)."""
    try:
        header = audio.info(path)
        expected = round(header.frames * SAMPLE_RATE / header.sample_rate) if header.sample_rate else 0
    except audio.AudioDecodeError:
        expected = 0  # load() below raises the specific error
    mel, samples = track_mel(stream_audio(path, chunk_seconds, resampler=resampler), mel_frontend, min_frames, expected)
    return mel, samples / SAMPLE_RATE


