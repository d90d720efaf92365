"""The training input's sample path: channel downmix and resampling as Essentia's MonoLoader does.

The published MAEST models were trained on mels of Essentia's loader, which averages the channels
and resamples with libsamplerate's "sinc_medium" converter. :func:`sinc_medium` is that converter
for a rational ratio ``to/from = up/down`` written as a polyphase FIR: output ``k`` sits at input
time ``k * down / up``; the tap of input sample ``n`` is libsamplerate's half-sinc table
(``resources/sinc_medium_coeffs.npy`` = its ``mid_qual_coeffs.h``, 491 entries per zero crossing)
read at ``|t - n| * 491 * min(1, up/down)`` in its 20.12 fixed point, linearly interpolated between
entries and scaled by ``min(1, up/down)``: the arithmetic of its ``calc_output_single``, so the
outputs equal ``samplerate.resample(x, up/down, "sinc_medium")`` to float32 rounding (zeros before
and after the signal, ``floor(n * up / down)`` outputs). The filter runs as ``torch`` matrix
products on the input viewed as rows of ``down`` samples (no copy), one column per phase, phases in
groups so each matrix spans only its own inputs; on the waveform's device (CPU or GPU).

Essentia hands libsamplerate ``to/from`` rounded to float32 (:func:`essentia_ratio`), so its output
times drift from the rational grid by ~1e-7 input samples per output, enough to move the top mel
bands after seconds. That drift is followed: taps shifted to a grid of 1/64 sample (cached) plus a
first-order correction (the taps' derivative, one more column per phase) for the rest. Against
libsamplerate at that ratio this leaves at most 4e-4 on full-band noise, ~5e-4 on the mel.

soxr's high-quality mode (maest's resampler before) stays available as ``resampler="soxr"``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from fractions import Fraction
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
# Blocks of outputs hold at least this many phases, so tiny ratios (1/3) still give the matrix
# products enough columns to run fast.
_MIN_PHASES = 64
# Rates whose ratio needs more phases than this (44101 -> 16000: 16000 phases) use a nearby
# fraction as the grid: the tap tables stay small.
_MAX_PHASES = 1024
# Output-time shifts (the drift of Essentia's float32 ratio) are taken from a grid of this many
# steps per input sample; the first-order correction covers the rest (at most 1/64 sample).
_SHIFT_STEPS = 64
# Phases per group, in units of the phases one filter length spans: wider groups waste
# multiplications on zeros, narrower ones give the matrix products fewer columns.
_GROUP_WIDTH = 0.4


class UnknownResamplerError(ValueError):
    """A resampler name that is not one of :data:`RESAMPLERS`."""

    def __init__(self, name: str):
        super().__init__(f"unknown resampler {name!r}: use one of {', '.join(RESAMPLERS)}")


@dataclass(frozen=True)
class PolyphaseFilter:
    """libsamplerate's sinc_medium taps for ``up`` outputs per ``down`` inputs, as matrices.

    Each group is ``(first_phase, offset, matrix)``: the outputs of block ``m`` for the group's
    phases are ``inputs[down * m + offset + i] @ matrix[i, :phases]`` over ``i``, and the same
    product with ``matrix[:, phases:]`` is their derivative with respect to the output time.
    """

    up: int
    down: int
    groups: tuple[tuple[int, int, torch.Tensor], ...]


@lru_cache(maxsize=1)
def _table() -> np.ndarray:
    return np.load(_TABLE_PATH).astype(np.float64)


def _phase_taps(up: int, down: int, ratio: float, shift: float, offsets: np.ndarray) -> np.ndarray:
    """Taps ``(up, len(offsets))`` of output phase ``p`` at input time ``p * down / up + shift``.

    ``offsets`` are input positions relative to ``floor(p * down / up)``; taps are zero outside
    the filter. ``ratio`` (output/input) sets the filter's scale, as libsamplerate's src_ratio.
    """
    table = _table()
    max_index = (len(table) - 2) << _SHIFT_BITS  # libsamplerate's coeff_half_len in fixed point
    float_increment = _INDEX_INC * min(ratio, 1.0)
    increment = int(np.rint(float_increment * _FP_ONE))
    phases = np.arange(up, dtype=np.int64)
    position = (phases * down % up) / up + shift  # output time past floor(p * down / up)
    whole = np.floor(position).astype(np.int64)
    start = np.rint((position - whole) * float_increment * _FP_ONE).astype(np.int64)
    data = offsets[None, :] - whole[:, None]  # input relative to the sample at or before the output
    # Left half (inputs at or before the output time): start + j * increment for input -j;
    # right half (after it): j * increment - start for input j >= 1.
    index = np.where(data <= 0, start[:, None] - data * increment, data * increment - start[:, None])
    valid = (index <= max_index) & np.where(data <= 0, index >= 0, index > 0)
    index = np.clip(index, 0, max_index)
    entry, fine = index >> _SHIFT_BITS, (index & (_FP_ONE - 1)) / _FP_ONE
    taps = table[entry] + fine * (table[entry + 1] - table[entry])
    return np.where(valid, taps, 0.0) * (float_increment / _INDEX_INC)


def _layout(up: int, down: int, taps: np.ndarray, offsets: np.ndarray, per_group: int) -> list[tuple[int, int, np.ndarray]]:
    """Cut phases into groups of ``per_group``, each a dense ``(phases, span)`` kernel."""
    base = np.arange(up, dtype=np.int64) * down // up
    groups = []
    for first in range(0, up, per_group):
        rows = np.arange(first, min(up, first + per_group))
        low = int(base[rows].min() + offsets[0])
        span = int(base[rows].max() + offsets[-1]) - low + 1
        weight = np.zeros((len(rows), span), np.float32)
        columns = (base[rows] + offsets[0] - low)[:, None] + np.arange(len(offsets))[None, :]
        weight[np.arange(len(rows))[:, None], columns] = taps[rows]
        groups.append((first, low, weight))
    return groups


@lru_cache(maxsize=128)  # at most _SHIFT_STEPS shifts per ratio, ~0.5 MB each
def sinc_medium_filter(from_rate: int, to_rate: int, ratio: float, shift: float = 0.0) -> PolyphaseFilter:
    """The polyphase layout of sinc_medium for ``from_rate -> to_rate`` at ``ratio``, output times
    moved by ``shift`` input samples (cached: shifts come from a grid of ``_SHIFT_STEPS``)."""
    # The rational grid: to/from in lowest terms, or for odd rates (44101 Hz) the nearest fraction
    # with at most _MAX_PHASES phases; the drift machinery follows the difference like Essentia's.
    grid = Fraction(from_rate, to_rate).limit_denominator(_MAX_PHASES)
    ratio_up, ratio_down = grid.denominator, grid.numerator
    blocks = -(-_MIN_PHASES // ratio_up)  # repeat the phases over several periods for tiny ``up``
    up, down = ratio_up * blocks, ratio_down * blocks
    half = (len(_table()) - 2) / (_INDEX_INC * min(ratio, 1.0))  # filter half-length in inputs
    offsets = np.arange(-int(half) - 2, int(half) + 4, dtype=np.int64)
    taps = _phase_taps(up, down, ratio, shift, offsets)
    # Derivative of the taps with respect to the output time, by a central difference over a
    # small step (many table entries wide, so it follows the smooth windowed sinc).
    step = 1.0 / 256
    slope = (_phase_taps(up, down, ratio, shift + step, offsets) - _phase_taps(up, down, ratio, shift - step, offsets)) / (2 * step)
    used = np.flatnonzero(np.any(taps != 0, axis=0) | np.any(slope != 0, axis=0))
    offsets, taps, slope = offsets[used[0] : used[-1] + 1], taps[:, used[0] : used[-1] + 1], slope[:, used[0] : used[-1] + 1]
    # Phases per group: the group's span (its inputs) is then about twice one phase's taps.
    per_group = int(min(up, max(8, round(_GROUP_WIDTH * len(offsets) * ratio_up / ratio_down))))
    groups = _layout(up, down, taps, offsets, per_group)
    slopes = _layout(up, down, slope, offsets, per_group)
    matrices = tuple(
        (first, low, torch.from_numpy(np.ascontiguousarray(np.concatenate([w, v]).T)))
        for (first, low, w), (_, _, v) in zip(groups, slopes)
    )
    return PolyphaseFilter(up, down, matrices)


def essentia_ratio(from_rate: int, to_rate: int) -> float:
    """The ratio Essentia's Resample hands libsamplerate: ``to/from`` divided in float32.

    Its output times drift from the exact ``k * from / to`` by about 1e-7 input samples per output
    (0.015 samples after 20 s at 22.05 kHz): large enough to move the top mel bands.
    """
    return float(np.float32(to_rate) / np.float32(from_rate))


def _run(out: torch.Tensor, padded: torch.Tensor, start: int, filt: PolyphaseFilter, with_slope: bool) -> torch.Tensor | None:
    """Fill ``out`` ``(batch, blocks, up)`` with outputs whose first block reads ``padded[:, start + offset:]``.

    Inputs are viewed as rows of ``down`` samples (no copy), so each group is a few matrix
    products ``(blocks, down) @ (down, phases)``; with ``with_slope`` the derivative rides along
    and is returned.
    """
    batch, blocks = out.shape[:2]
    out_slope = padded.new_empty(batch, blocks, filt.up) if with_slope else None
    for first, low, matrix in filt.groups:
        phases = matrix.shape[1] // 2
        matrix = matrix.to(padded.device)
        if not with_slope:
            matrix = matrix[:, :phases]
        span = matrix.shape[0]
        slabs = -(-span // filt.down)
        begin = start + low
        rows = padded[:, begin : begin + (blocks + slabs) * filt.down].reshape(batch, blocks + slabs, filt.down)
        result = None
        for slab in range(slabs):
            width = min(filt.down, span - slab * filt.down)
            part = rows[:, slab : slab + blocks, :width] @ matrix[slab * filt.down : slab * filt.down + width]
            result = part if result is None else result.add_(part)
        out[:, :, first : first + phases] = result[:, :, :phases]
        if out_slope is not None:
            out_slope[:, :, first : first + phases] = result[:, :, phases:]
    return out_slope


def sinc_medium(
    waveform: torch.Tensor, from_rate: int, to_rate: int, ratio: float | None = None, start_sample: int = 0
) -> torch.Tensor:
    """Resample ``(samples,)`` or ``(batch, samples)`` float waveforms as libsamplerate's sinc_medium.

    ``ratio`` is the src_ratio handed to libsamplerate (default: Essentia's, :func:`essentia_ratio`);
    output ``k`` sits at input time ``k / ratio`` and there are ``floor(samples * ratio)`` outputs.
    The rational ratio ``to/from`` runs as a polyphase FIR; the drift of ``1/ratio`` from it is
    followed in chunks: each chunk uses the taps shifted to a grid point near its drift plus a
    first-order correction (the taps' derivative) for the rest, so every output sits at its own time.
    ``start_sample``: where the waveform starts in its file; a window then gets the outputs (and
    output times) of a whole-file pass. float32 on the waveform's device.
    """
    if waveform.ndim not in (1, 2):
        raise ValueError(f"expected (samples,) or (batch, samples), got shape {tuple(waveform.shape)}")
    if from_rate <= 0 or to_rate <= 0 or int(from_rate) != from_rate or int(to_rate) != to_rate:
        raise ValueError(f"sample rates must be positive integers, got {from_rate} -> {to_rate}")
    from_rate, to_rate = int(from_rate), int(to_rate)
    signal = waveform.to(torch.float32)[None] if waveform.ndim == 1 else waveform.to(torch.float32)
    if from_rate == to_rate:
        return signal[0] if waveform.ndim == 1 else signal
    ratio = essentia_ratio(from_rate, to_rate) if ratio is None else float(ratio)
    batch, samples = signal.shape
    filt = sinc_medium_filter(from_rate, to_rate, ratio, 0.0)
    # Whole-file output j sits at input time j / ratio; the window's first output is the first
    # rational-grid output at or after its start, ``offset`` input samples past the start.
    first_output = -(-start_sample * filt.up // filt.down)
    offset = first_output * filt.down / filt.up - start_sample
    outputs = max(0, int(np.floor((start_sample + samples) * ratio + 1e-9)) - first_output)
    blocks = -(-outputs // filt.up)
    if blocks == 0:
        result = signal.new_zeros(batch, 0)
        return result[0] if waveform.ndim == 1 else result
    # Drift of the output times from the rational grid, in input samples per output.
    drift = 1.0 / ratio - filt.down / filt.up
    total = abs(drift) * (first_output + blocks * filt.up) + offset
    # Chunks of whole-file outputs over which the drift moves by at most one grid step; they are
    # counted from the file's start, so a window gets the taps a whole-file pass gives it.
    chunk = filt.up * max(1, int(1.0 / (_SHIFT_STEPS * abs(drift) * filt.up))) if drift else None
    reach = int(np.ceil(total)) + 2
    left = -min(low for _, low, _ in filt.groups) + reach
    slabs = max(-(-m.shape[0] // filt.down) for _, _, m in filt.groups)
    right = max(low for _, low, _ in filt.groups) + (slabs + 1) * filt.down + reach + 1
    needed = left + blocks * filt.down + right
    signal = signal[:, : needed - left]  # later inputs reach no output
    padded = torch.nn.functional.pad(signal, (left, needed - left - signal.shape[1]))
    result = padded.new_empty(batch, blocks * filt.up)
    first_block = 0
    with torch.no_grad():
        while first_block < blocks:
            index = first_output + first_block * filt.up  # whole-file index of the block's first output
            if chunk is None:
                count, centre = blocks, offset
            else:
                number = index // chunk
                count = min(blocks - first_block, max(1, -(-((number + 1) * chunk - index) // filt.up)))
                centre = (number + 0.5) * chunk * drift + offset
            grid = round(centre * _SHIFT_STEPS)
            moved, step = divmod(grid, _SHIFT_STEPS)
            chunk_filt = sinc_medium_filter(from_rate, to_rate, ratio, step / _SHIFT_STEPS)
            start = left + moved + first_block * filt.down
            out = result[:, first_block * filt.up : (first_block + count) * filt.up].view(batch, count, filt.up)
            slope = _run(out, padded, start, chunk_filt, drift != 0 or offset != 0)
            if slope is not None:  # out += (each output's time past the grid point) * slope
                past = index * drift + offset - grid / _SHIFT_STEPS  # at the chunk's first output
                rest = torch.arange(count * filt.up, dtype=torch.float32, device=signal.device) * drift + past
                out.addcmul_(rest.view(count, filt.up), slope)
            first_block += count
    result = result[:, :outputs]
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


def resample(
    audio: np.ndarray, from_rate: int, to_rate: int, resampler: str | None = None, start_sample: int = 0
) -> np.ndarray:
    """Mono float32 resampling with ``resampler`` (default :data:`DEFAULT_RESAMPLER`).

    ``"essentia"``: libsamplerate's sinc_medium, the loader the published models were trained
    with (``start_sample``: see :func:`sinc_medium`); ``"soxr"``: soxr's high-quality mode.
    Identity when the rates match.
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
    return sinc_medium(torch.from_numpy(audio), from_rate, to_rate, start_sample=start_sample).numpy()
