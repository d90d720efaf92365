"""Waveform -> MAEST input: the log-mel spectrogram of Essentia's TensorflowInputMusiCNN, in torch.

MAEST was trained on mel spectrograms made by Essentia's ``melspectrogram`` extractor; this module
reproduces that transform exactly (tested against Essentia) so published weights see the input they
were trained on, batched and on any torch device.

Frame conventions (those of the Essentia extractor):
  * frame ``i`` covers samples ``[i * 256 - 256, i * 256 + 256)``: the first frame is centred on
    sample 0 and its left half is zero padding; samples past the end are zeros;
  * an input of ``n`` samples yields ``ceil(n / 256) + 1`` frames (16000 -> 64, 480000 -> 1876).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

SAMPLE_RATE = 16000
FRAME_SIZE = 512
HOP_SIZE = 256
N_BANDS = 96
# Mean and standard deviation of the Discogs training mels. The original code divides by TWICE
# the standard deviation (training and inference alike); published weights expect exactly this.
DISCOGS_MEAN = 2.06755686098554
DISCOGS_STD = 1.268292820667291
FRONTEND_VERSION = "essentia-musicnn-v1"


def num_frames(num_samples: int) -> int:
    """Frames the frontend yields for ``num_samples`` samples: ``ceil(n / 256) + 1``."""
    if num_samples < 0:
        raise ValueError(f"num_samples must be >= 0, got {num_samples}")
    return math.ceil(num_samples / HOP_SIZE) + 1


def samples_for_frames(frames: int) -> int:
    """Fewest samples whose mel has at least ``frames`` frames (inverse of :func:`num_frames`)."""
    return max(0, (frames - 1) * HOP_SIZE)


def _slaney_hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Auditory-toolbox mel scale: linear below 1 kHz, logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    linear = hz / (200.0 / 3.0)
    log = 15.0 + np.log(np.maximum(hz, 1e-12) / 1000.0) / (np.log(6.4) / 27.0)
    return np.where(hz < 1000.0, linear, log)


def _slaney_mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    linear = mel * (200.0 / 3.0)
    log = 1000.0 * np.exp((np.log(6.4) / 27.0) * (mel - 15.0))
    return np.where(mel < 15.0, linear, log)


def mel_filterbank(
    n_bands: int = N_BANDS,
    frame_size: int = FRAME_SIZE,
    sample_rate: int = SAMPLE_RATE,
    low_hz: float = 0.0,
    high_hz: float = 8000.0,
) -> np.ndarray:
    """Essentia's MelBands weights (slaneyMel, linear weighting, unit_tri): ``(n_bands, bins)``.

    Band edges are evenly spaced in mel; each triangle is sampled at the FFT bin frequencies and
    scaled by ``2 / (upper - lower edge)`` (unit area in Hz), as Essentia's TriangularBands does.
    """
    n_bins = frame_size // 2 + 1
    # Essentia steps from the lowest to the highest mel edge by repeated float32 additions; the
    # drift this accumulates moves high band edges by ~1e-5 relative, which is visible (~1e-4) in
    # the log-mel, so the same float32 accumulation is reproduced here.
    low_mel = np.float32(_slaney_hz_to_mel(low_hz))
    step = np.float32((np.float32(_slaney_hz_to_mel(high_hz)) - low_mel) / np.float32(n_bands + 1))
    mel_edges = np.empty(n_bands + 2, dtype=np.float64)
    current = low_mel
    for i in range(n_bands + 2):
        mel_edges[i] = current
        current = np.float32(current + step)
    edges = _slaney_mel_to_hz(mel_edges)
    bin_hz = np.arange(n_bins) * (sample_rate / 2.0) / (n_bins - 1)
    weights = np.zeros((n_bands, n_bins), dtype=np.float64)
    for band in range(n_bands):
        lower, centre, upper = edges[band], edges[band + 1], edges[band + 2]
        rising = (bin_hz >= lower) & (bin_hz < centre)
        falling = (bin_hz >= centre) & (bin_hz < upper)
        weights[band, rising] = (bin_hz[rising] - lower) / (centre - lower)
        weights[band, falling] = (upper - bin_hz[falling]) / (upper - centre)
        weights[band] *= 2.0 / (upper - lower)
    return weights


def hann_window(size: int = FRAME_SIZE) -> np.ndarray:
    """Essentia's symmetric Hann window (denominator ``size - 1``), not normalised."""
    i = np.arange(size, dtype=np.float64)
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * i / (size - 1))


class MelFrontend(nn.Module):
    """``(batch, samples)`` float waveform at 16 kHz -> ``(batch, 96, frames)`` log-mel.

    ``normalize=True`` applies the Discogs normalisation ``(mel - mean) / (2 * std)`` that the
    published checkpoints expect; ``False`` returns Essentia's raw ``log10(1 + 10000 x)`` values.
    """

    # Frames per block on CPU: small enough that a block's spectrum (1 MB) stays in cache.
    FRAMES_PER_BLOCK = 512

    def __init__(self, normalize: bool = True, mean: float = DISCOGS_MEAN, std: float = DISCOGS_STD):
        super().__init__()
        self.normalize = normalize
        self.mean = float(mean)
        self.std = float(std)
        self.register_buffer("window", torch.from_numpy(hann_window()).float(), persistent=False)
        filterbank = torch.from_numpy(mel_filterbank()).float()
        self.register_buffer("filterbank", filterbank, persistent=False)
        # The filterbank with every column repeated, to apply it to interleaved (re, im) squares:
        # sum_j w_j (re_j^2 + im_j^2) in one matmul, without materialising |X|^2 separately.
        self.register_buffer("_interleaved_filterbank", filterbank.repeat_interleave(2, dim=1).contiguous(),
                             persistent=False)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        if waveform.ndim != 2:
            raise ValueError(f"expected a (batch, samples) waveform, got shape {tuple(waveform.shape)}")
        waveform = waveform.float()
        batch, n = waveform.shape
        frames = num_frames(n)
        mel = torch.empty(batch, N_BANDS, frames, dtype=torch.float32, device=waveform.device)
        # On CPU every step is memory-bound: a whole 10-minute track's spectrum (77 MB) would send
        # each pass through main memory, so frames go in cache-sized blocks. GPUs take them at once.
        block = frames if waveform.device.type == "cuda" else self.FRAMES_PER_BLOCK
        for first in range(0, frames, block):
            last = min(frames, first + block)
            mel[:, :, first:last] = self._mel_power(self._frames(waveform, first, last))
        mel = mel.mul_(10000.0).add_(1.0).log10_()
        if self.normalize:
            mel = normalize_mel(mel, self.mean, self.std)
        return mel

    @staticmethod
    def _frames(waveform: torch.Tensor, first: int, last: int) -> torch.Tensor:
        """Frames ``first..last-1`` as a ``(batch, frames, 512)`` view, zero-padded at the edges.

        Frame ``i`` covers samples ``[256 i - 256, 256 i + 256)``: the first frame is centred on
        sample 0 and samples outside the signal are zeros.
        """
        n = waveform.shape[-1]
        start, stop = first * HOP_SIZE - HOP_SIZE, (last - 1) * HOP_SIZE + FRAME_SIZE - HOP_SIZE
        piece = waveform[:, max(start, 0) : min(stop, n)]
        if start < 0 or stop > n:
            piece = torch.nn.functional.pad(piece, (max(0, -start), max(0, stop - max(n, start))))
        return piece.unfold(-1, FRAME_SIZE, HOP_SIZE)

    def _mel_power(self, frames: torch.Tensor) -> torch.Tensor:
        """Mel band energies ``(batch, 96, frames)`` of windowed frames: ``sum_j w_j |X_j|^2``."""
        spectrum = torch.view_as_real(torch.fft.rfft(frames * self.window, dim=-1)).flatten(-2)
        return torch.matmul(self._interleaved_filterbank, spectrum.square_().transpose(1, 2))


def normalize_mel(mel: torch.Tensor, mean: float = DISCOGS_MEAN, std: float = DISCOGS_STD) -> torch.Tensor:
    """MAEST's input normalisation: ``(mel - mean) / (2 * std)`` (twice the std, as trained)."""
    return (mel - mean) / (2.0 * std)
