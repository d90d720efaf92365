"""The training input's sample path: channel downmix and resampling as Essentia's MonoLoader does.

The published MAEST models were trained on mels of Essentia's loader, which averages the channels
and resamples with libsamplerate's "sinc_medium" converter. :func:`sinc_medium` is that converter
for a rational ratio ``to/from = up/down`` written as a polyphase FIR: output ``k`` sits at input
time ``k * down / up``; the tap of input sample ``n`` is libsamplerate's half-sinc table
(``resources/sinc_medium_coeffs.npy`` = its ``mid_qual_coeffs.h``, 491 entries per zero crossing)
read at ``|t - n| * 491 * min(1, up/down)`` in its 20.12 fixed point, linearly interpolated between
entries and scaled by ``min(1, up/down)``: the arithmetic of its ``calc_output_single``, so the
outputs equal ``samplerate.resample(x, up/down, "sinc_medium")`` to float32 rounding (zeros before
and after the signal, ``floor(n * up / down)`` outputs). The filter runs as ``torch`` conv1d with
stride ``down``, one output channel per phase, phases in groups so each kernel spans only its own
inputs; it runs on the waveform's device (CPU or GPU).

soxr's high-quality mode (maest's resampler before) stays available as ``resampler="soxr"``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from math import gcd
from pathlib import Path

import numpy as np
import torch

RESAMPLERS = ("essentia", "soxr")
# What ``maest.audio.load`` and ``maest.audio.resample`` use when no resampler is named.
DEFAULT_RESAMPLER = "essentia"

_TABLE_PATH = Path(__file__).parent / "resources" / "sinc_medium_coeffs.npy"
_INDEX_INC = 491  # table entries per zero crossing of the sinc (libsamplerate's ``increment``)
_SHIFT_BITS = 12  # libsamplerate's fixed point: 20 integer bits, 12 fraction bits
_FP_ONE = 1 << _SHIFT_BITS
# Blocks of outputs per conv1d step hold at least this many phases, so tiny ratios (1/3) still
# give the convolution enough output channels to run fast.
_MIN_PHASES = 64


class UnknownResamplerError(ValueError):
    """A resampler name that is not one of :data:`RESAMPLERS`."""

    def __init__(self, name: str):
        super().__init__(f"unknown resampler {name!r}: use one of {', '.join(RESAMPLERS)}")


@dataclass(frozen=True)
class PolyphaseFilter:
    """libsamplerate's sinc_medium taps for one ratio, laid out for a strided conv1d.

    ``up`` outputs per ``down`` inputs (after blocking); each group is ``(first_phase, offset,
    weight)``: ``weight`` is ``(phases, 1, span)`` and the group's outputs of block ``m`` read
    inputs ``down * m + offset + [0, span)``.
    """

    up: int
    down: int
    ratio_up: int
    ratio_down: int
    groups: tuple[tuple[int, int, torch.Tensor], ...]

    def output_length(self, samples: int) -> int:
        return samples * self.ratio_up // self.ratio_down


@lru_cache(maxsize=1)
def _table() -> np.ndarray:
    return np.load(_TABLE_PATH).astype(np.float64)


def _phase_taps(up: int, down: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per phase: base input index, data offsets ``d`` and taps ``(up, len(d))`` (zero outside)."""
    table = _table()
    max_index = (len(table) - 2) << _SHIFT_BITS  # libsamplerate's coeff_half_len in fixed point
    float_increment = _INDEX_INC * min(up / down, 1.0)
    increment = int(np.rint(float_increment * _FP_ONE))
    phases = np.arange(up, dtype=np.int64)
    base = phases * down // up
    fraction = (phases * down % up) / up
    start = np.rint(fraction * float_increment * _FP_ONE).astype(np.int64)
    reach = max_index // increment + 1
    offsets = np.arange(-reach, reach + 2, dtype=np.int64)
    # Left half (inputs at or before the output time): start + j * increment for input base - j;
    # right half (after it): j * increment - start for input base + j, j >= 1.
    index = np.where(offsets <= 0, start[:, None] - offsets * increment, offsets * increment - start[:, None])
    valid = (index <= max_index) & np.where(offsets <= 0, index >= 0, index > 0)
    index = np.clip(index, 0, max_index)
    whole, fine = index >> _SHIFT_BITS, (index & (_FP_ONE - 1)) / _FP_ONE
    taps = table[whole] + fine * (table[whole + 1] - table[whole])
    return base, offsets, np.where(valid, taps, 0.0) * (float_increment / _INDEX_INC)


@lru_cache(maxsize=32)
def sinc_medium_filter(from_rate: int, to_rate: int) -> PolyphaseFilter:
    """The polyphase layout of libsamplerate's sinc_medium for ``from_rate -> to_rate`` (cached)."""
    if from_rate <= 0 or to_rate <= 0 or int(from_rate) != from_rate or int(to_rate) != to_rate:
        raise ValueError(f"sample rates must be positive integers, got {from_rate} -> {to_rate}")
    common = gcd(int(from_rate), int(to_rate))
    ratio_up, ratio_down = int(to_rate) // common, int(from_rate) // common
    base, offsets, taps = _phase_taps(ratio_up, ratio_down)
    blocks = -(-_MIN_PHASES // ratio_up)  # repeat the phases over several periods for tiny ``up``
    up, down = ratio_up * blocks, ratio_down * blocks
    base = (np.arange(blocks)[:, None] * ratio_down + base[None, :]).reshape(-1)
    taps = np.tile(taps, (blocks, 1))
    used = np.flatnonzero(np.any(taps != 0, axis=0))
    offsets, taps = offsets[used[0] : used[-1] + 1], taps[:, used[0] : used[-1] + 1]
    # Phases per group: the group's span (its inputs) is then about twice one phase's taps.
    per_group = int(min(up, max(8, round(len(offsets) * ratio_up / ratio_down))))
    groups = []
    for first in range(0, up, per_group):
        rows = slice(first, min(up, first + per_group))
        low = int(base[rows].min() + offsets[0])
        span = int(base[rows].max() + offsets[-1]) - low + 1
        weight = np.zeros((rows.stop - first, span), np.float32)
        for row, phase in enumerate(range(rows.start, rows.stop)):
            begin = base[phase] + offsets[0] - low
            weight[row, begin : begin + len(offsets)] = taps[phase]
        groups.append((first, low, torch.from_numpy(weight)[:, None, :]))
    return PolyphaseFilter(up, down, ratio_up, ratio_down, tuple(groups))


def sinc_medium(waveform: torch.Tensor, from_rate: int, to_rate: int) -> torch.Tensor:
    """Resample ``(samples,)`` or ``(batch, samples)`` float waveforms as libsamplerate's sinc_medium.

    float32 on the waveform's device; ``floor(samples * to_rate / from_rate)`` outputs.
    """
    if waveform.ndim not in (1, 2):
        raise ValueError(f"expected (samples,) or (batch, samples), got shape {tuple(waveform.shape)}")
    signal = waveform.to(torch.float32)[None] if waveform.ndim == 1 else waveform.to(torch.float32)
    if from_rate == to_rate:
        return signal[0] if waveform.ndim == 1 else signal
    filt = sinc_medium_filter(from_rate, to_rate)
    batch, samples = signal.shape
    outputs = filt.output_length(samples)
    blocks = -(-outputs // filt.up)
    if blocks == 0:
        result = signal.new_zeros(batch, 0)
        return result[0] if waveform.ndim == 1 else result
    left = -min(low for _, low, _ in filt.groups)
    needed = left + (blocks - 1) * filt.down + max(low + w.shape[2] for _, low, w in filt.groups)
    signal = signal[:, : needed - left]  # later inputs reach no output
    padded = torch.nn.functional.pad(signal, (left, needed - left - signal.shape[1]))[:, None, :]
    out = signal.new_empty(batch, filt.up, blocks)
    with torch.no_grad():
        for first, low, weight in filt.groups:
            start = left + low
            window = padded[:, :, start : start + (blocks - 1) * filt.down + weight.shape[2]]
            phases = torch.nn.functional.conv1d(window, weight.to(signal.device), stride=filt.down)
            out[:, first : first + weight.shape[0]] = phases
    result = out.transpose(1, 2).reshape(batch, -1)[:, :outputs]
    return result[0] if waveform.ndim == 1 else result


def downmix(frames: np.ndarray) -> np.ndarray:
    """``(frames, channels)`` -> float32 mono, the mean of the channels (Essentia's MonoMixer).

    A matrix-vector product reads the interleaved frames once; ``mean(axis=1)`` over the strided
    channel axis cost as much as decoding. For stereo it equals the mean bit for bit.
    """
    frames = np.asarray(frames, dtype=np.float32)
    if frames.ndim != 2:
        raise ValueError(f"expected (frames, channels), got shape {frames.shape}")
    if frames.shape[1] == 1:
        return frames[:, 0]
    weights = np.full(frames.shape[1], 1.0 / frames.shape[1], np.float32)
    return np.ascontiguousarray(frames) @ weights


def resample(audio: np.ndarray, from_rate: int, to_rate: int, resampler: str | None = None) -> np.ndarray:
    """Mono float32 resampling with ``resampler`` (default :data:`DEFAULT_RESAMPLER`).

    ``"essentia"``: libsamplerate's sinc_medium, the loader the published models were trained
    with; ``"soxr"``: soxr's high-quality mode. Identity when the rates match.
    """
    name = DEFAULT_RESAMPLER if resampler is None else resampler
    if name not in RESAMPLERS:
        raise UnknownResamplerError(name)
    audio = np.ascontiguousarray(audio, dtype=np.float32)
    if from_rate == to_rate:
        return audio
    if name == "soxr":
        import soxr

        return soxr.resample(audio, from_rate, to_rate, quality="HQ").astype(np.float32, copy=False)
    return sinc_medium(torch.from_numpy(audio), from_rate, to_rate).numpy()
