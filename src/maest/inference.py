"""Whole tracks -> embeddings and Discogs style tags: segmenting, batching, token pooling.

A track's mel is computed once (in chunks, see :mod:`maest.streaming`) and its segments are sliced
from it (:mod:`maest.segments` gives the rule). Slicing the whole-track mel is the training input
convention: the training mels were computed over whole tracks and the segments cut from them, so
a segment's first frame sees the audio before it, not zero padding.

Segments of equal length from any number of tracks run together in batches; batches never pad, so
a track's output does not depend on which other tracks share its batch (up to float rounding of
the matrix kernels, ~1e-6).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Literal

import numpy as np
import torch

from maest import audio as audio_io
from maest import frontend, streaming
from maest.batching import RunBatch, SegmentBatcher, TrackResult
from maest.blocks import resolve_blocks
from maest.checkpoints.fingerprint import weights_fingerprint
from maest.configs import MaestConfig
from maest.decode import TrackMel
from maest.family import ModelFamily, family_of, model_labels
from maest.model import TOKEN_NAMES
from maest.precision import AUTO, PrecisionChoice, PrecisionError, auto_precision, matmul_weights_cast
from maest.segments import padding_value
from maest.spec import DEFAULT_RESAMPLER, PRECISIONS, EmbeddingSpec, EmbedOptions

__all__ = ["PRECISIONS", "DeviceUnavailableError", "EmbedOptions", "InputAudioError", "MaestPipeline", "PrecisionError",
           "TrackResult", "choose_precision", "load_model", "model_labels", "resolve_device", "resolve_precision",
           "top_labels"]

Mode = Literal["embed", "tag"]
Precision = Literal["fp32", "bf16", "fp16"]
# No int8: measured at 0.62x the fp32 block-7 path on this project's CPUs (benchmarks/results/int8.md).
_AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class InputAudioError(ValueError):
    """A waveform passed to the API is not a 1-D float array of samples."""


class DeviceUnavailableError(ValueError):
    """The requested device does not exist in this torch build or on this machine."""


def resolve_precision(precision: str | None, device: str | torch.device) -> str:
    """The precision to run at (see :func:`choose_precision`)."""
    return choose_precision(precision, device).precision


def choose_precision(precision: str | None, device: str | torch.device) -> PrecisionChoice:
    """The precision to run at and why: ``None`` or "auto" is bf16 where the device computes it
    natively, fp16 on GPUs without bf16, else fp32 (:mod:`maest.precision`).

    bf16/fp16 run the model under autocast.
    An impossible pair fails here, in one line, before any checkpoint is read.
    """
    device = torch.device(device)
    if precision is None or precision == AUTO:
        return auto_precision(device)
    if precision not in PRECISIONS:
        raise PrecisionError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r} "
                             f"(or {AUTO}, the default)")
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise PrecisionError("this GPU has no bf16 (it needs compute capability 8.0+); use --precision fp16 or fp32")
    if precision in _AUTOCAST_DTYPES and device.type not in ("cpu", "cuda"):
        raise PrecisionError(f"{precision} autocast is supported on cpu and cuda, not on {device.type}; use fp32")
    return PrecisionChoice(precision, "asked")


class MaestPipeline:
    """A loaded model on a device, with the frontend: call :meth:`embed` or :meth:`tag` on tracks.

    The model is a MAEST transformer or the EffNet-B0 baseline (:mod:`maest.family` says what each
    provides); for EffNet the embedding is its penultimate layer (1280 dims) and ``blocks``/``tokens``
    do not apply.
    """

    def __init__(self, model: torch.nn.Module, device: str | torch.device | None = None, batch_size: int = 8,
                 chunk_seconds: int = 60, precision: str | None = None):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.device = resolve_device(device)
        choice = choose_precision(precision, self.device)
        self.precision: str = choice.precision
        self.precision_reason: str = choice.reason  # "asked", or why auto chose it (summary lines say it)
        self.model = model = model.eval().to(self.device)
        self.config: MaestConfig = model.config
        self.family: ModelFamily = family_of(model)
        # Shortest input the model takes: one patch for MAEST; EffNet pools any size, 16 for symmetry.
        self.min_frames = self.family.min_frames(self.config)
        # The file decoder (picklable: extraction hands it to worker processes); its frontend is ours.
        self.decoder = TrackMel(self.config.norm_mean, self.config.norm_std, self.min_frames, chunk_seconds)
        self.frontend = self.decoder.frontend
        self.batch_size = batch_size
        self.labels = self.family.labels(self.config)
        # The weights' identity (maest.checkpoints.fingerprint): output folders and heads check it.
        self.fingerprint: str = weights_fingerprint(self.model)
        # What the batches run: under bf16/fp16, a copy with the matmul weights cast once (maest.precision).
        self._matmul_model = matmul_weights_cast(model, self.precision) if self.family.casts_weights else model

    @property
    def chunk_seconds(self) -> int:
        """Seconds of audio decoded at a time (memory bound of the whole-track mel)."""
        return self.decoder.chunk_seconds

    @chunk_seconds.setter
    def chunk_seconds(self, value: int) -> None:
        self.decoder.chunk_seconds = value

    def decoder_for(self, resampler: str | None) -> TrackMel:
        """This model's file decoder resampling with ``resampler`` (a copy: the spec's resampler travels with
        the decoder to worker processes and Ray tasks); None: its own decoder."""
        if resampler is None or resampler == self.decoder.resampler:
            return self.decoder
        return dataclasses.replace(self.decoder, resampler=resampler)

    def spec(self, **options: Any) -> EmbeddingSpec:
        """The :class:`~maest.spec.EmbeddingSpec` of this model's embeddings with these options, checked."""
        return EmbeddingSpec.for_pipeline(self, **options)

    def check_options(self, options: EmbedOptions) -> None:
        """Fail before any decoding when the options do not fit this model."""
        blocks = resolve_blocks(options.blocks, self.family.depth(self.config))  # BlocksError: says what to pass
        self.family.check_options(self.config, blocks, options.patchout_time, options.patchout_freq)

    # -- audio -> mel -----------------------------------------------------------------------
    def mel(self, audio: str | os.PathLike | np.ndarray, sample_rate: int = frontend.SAMPLE_RATE,
            resampler: str | None = None) -> tuple[torch.Tensor, float]:
        """Whole-track normalised mel ``(96, frames)`` on the CPU and the duration in seconds.

        ``audio`` is a file path or a 1-D float waveform (mono) at ``sample_rate`` Hz (16 kHz by
        default; other rates are resampled with ``resampler``, default :data:`maest.spec.DEFAULT_RESAMPLER`).
        Audio shorter than one patch (16 frames, 0.24 s) is padded with silence to one patch.
        """
        resampler = DEFAULT_RESAMPLER if resampler is None else resampler
        if isinstance(audio, (str, os.PathLike)):
            return tuple(self.decoder_for(resampler)(audio))  # type: ignore[return-value]
        waveform = np.asarray(audio)
        if waveform.ndim != 1 or not np.issubdtype(waveform.dtype, np.floating):
            raise InputAudioError(
                f"expected a 1-D float mono waveform at {sample_rate} Hz, got dtype {waveform.dtype} "
                f"and shape {waveform.shape} (average the channels first)"
            )
        if waveform.size == 0:
            raise InputAudioError("the waveform holds no samples")
        if not np.all(np.isfinite(waveform)):
            raise InputAudioError("the waveform contains NaN or infinity")
        waveform = audio_io.resample(waveform, sample_rate, frontend.SAMPLE_RATE, resampler)
        if waveform.size == 0:  # e.g. one sample at 44.1 kHz
            raise InputAudioError(f"the waveform is shorter than one sample at {frontend.SAMPLE_RATE} Hz")
        blocks = streaming.waveform_blocks(waveform, self.chunk_seconds)
        mel, _ = streaming.track_mel(blocks, self.frontend, self.min_frames, expected_samples=len(waveform))
        return mel, len(waveform) / frontend.SAMPLE_RATE

    # -- segments -> outputs: each job is a ``run_batch`` callable for :class:`SegmentBatcher` --
    def resolved(self, options: EmbedOptions) -> EmbedOptions:
        """``options`` checked, with ``blocks="auto"`` made the block it means for this model (what outputs record)."""
        self.check_options(options)
        return dataclasses.replace(options, blocks=resolve_blocks(options.blocks, self.family.depth(self.config)))

    def embedder(self, options: EmbedOptions) -> RunBatch:
        """Segments -> embeddings: ``options.tokens`` pooled after ``options.blocks`` blocks (early exit)."""
        return functools.partial(self._embed_batch, self.resolved(options))

    def tagger(self, options: EmbedOptions) -> RunBatch:
        """Segments -> class probabilities (all blocks, the head, sigmoid)."""
        self.check_options(options)
        return functools.partial(self._tag_batch, options)

    def block_features(self, blocks: Sequence[int], options: EmbedOptions) -> RunBatch:
        """Segments -> cls, dist, avg after each of ``blocks`` (sorted, 0: the embedding), from one pass.

        Output ``(batch, len(blocks) * 3 * width)``: block-major, then the tokens in :data:`TOKEN_NAMES` order.
        """
        self.family.check_block_features(self.config, blocks)
        self.check_options(options)
        return functools.partial(self._block_batch, sorted(set(int(b) for b in blocks)), options)

    def runner(self, mode: Mode, options: EmbedOptions) -> RunBatch:
        """:meth:`embedder` or :meth:`tagger` by name."""
        if mode == "embed":
            return self.embedder(options)
        if mode == "tag":
            return self.tagger(options)
        raise ValueError(f"mode must be 'embed' or 'tag', got {mode!r}")

    def batcher(self, run_batch: RunBatch, options: EmbedOptions, batch_size: int | None = None) -> SegmentBatcher:
        """A :class:`SegmentBatcher` cutting this model's segments (length, overlap, crop, rule) for ``run_batch``."""
        return SegmentBatcher(run_batch, self.config.segment_frames, min_frames=self.min_frames, overlap=options.overlap,
                              crop=options.crop, batch_size=batch_size or self.batch_size, segments=options.segments,
                              pad_value=padding_value(self.config.norm_mean, self.config.norm_std))

    def _embed_batch(self, options: EmbedOptions, mel: torch.Tensor) -> np.ndarray:
        mel = self._to_device(mel)
        with torch.inference_mode(), self.autocast():
            out = self.family.embed(self._matmul_model, mel, options.blocks, options.tokens, options.patchout_time,
                                    options.patchout_freq)
        return out.float().cpu().numpy()

    def _tag_batch(self, options: EmbedOptions, mel: torch.Tensor) -> np.ndarray:
        mel = self._to_device(mel)
        with torch.inference_mode(), self.autocast():
            out = torch.sigmoid(self.family.logits(self._matmul_model, mel, options.patchout_time,
                                                   options.patchout_freq).float())
        return out.float().cpu().numpy()

    def _block_batch(self, blocks: list[int], options: EmbedOptions, mel: torch.Tensor) -> np.ndarray:
        mel = self._to_device(mel)
        with torch.inference_mode(), self.autocast():
            pooled = self.family.block_features(self._matmul_model, mel, blocks, options.patchout_time,
                                                options.patchout_freq)
        return pooled.flatten(1).cpu().numpy()

    def _to_device(self, mel: torch.Tensor) -> torch.Tensor:
        """The batch on the model's device; on CUDA through pinned memory, so the copy overlaps compute."""
        mel = mel.contiguous()
        if self.device.type == "cuda":
            return mel.pin_memory().to(self.device, non_blocking=True)
        return mel.to(self.device)

    def autocast(self) -> contextlib.AbstractContextManager:
        """Autocast to :attr:`precision` (bf16/fp16) on this device; fp32 runs as it is."""
        dtype = _AUTOCAST_DTYPES.get(self.precision)
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=dtype)

    def run_tracks(self, tracks: Iterable[tuple[Any, torch.Tensor, float]], mode: Mode, options: EmbedOptions,
                   batch_size: int | None = None) -> Iterator[tuple[Any, TrackResult]]:
        """``(key, mel, duration)`` tracks -> ``(key, result)`` as each completes, batching across tracks."""
        return self.batcher(self.runner(mode, options), options, batch_size).run(tracks)

    def run_track(self, audio: str | os.PathLike | np.ndarray, mode: Mode, options: EmbedOptions,
                  sample_rate: int = frontend.SAMPLE_RATE, batch_size: int | None = None) -> TrackResult:
        """One track (file or waveform) -> its per-segment outputs (``mode`` "embed" or "tag") and starts;
        decoded with the resampler of ``options`` when it is an :class:`~maest.spec.EmbeddingSpec`."""
        mel, duration = self.mel(audio, sample_rate, getattr(options, "resampler", None))
        results = list(self.run_tracks([(0, mel, duration)], mode, options, batch_size))
        return results[0][1]

    # -- public API ---------------------------------------------------------------------------
    def embed(
        self,
        audio: str | os.PathLike | np.ndarray,
        blocks: Blocks = AUTO,
        tokens: Sequence[str] = TOKEN_NAMES,
        patchout_time: int = 1,
        patchout_freq: Sequence[int] = (),
        overlap: float = 0.5,
        per_segment: bool = False,
        crop: str | None = None,
        sample_rate: int = frontend.SAMPLE_RATE,
        batch_size: int | None = None,
        segments: str = "maest",
        resampler: str | None = None,
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Embedding of a track (file path, or 1-D waveform at ``sample_rate``, 16 kHz by default).

        ``blocks=7`` runs 7 blocks (the paper's "block 7", original ``transformer_block=6``; the default
        "auto" is 7, or the last block of a shallower model);
        ``tokens`` picks and orders the stacked cls / dist / avg tokens (768 dims each for the
        published models). Returns the mean over segments, ``(dim,)``; with ``per_segment=True``
        returns ``(embeddings (segments, dim), start times in seconds (segments,))``.
        ``segments="original"`` cuts segments as the paper's downstream numbers were made
        (:mod:`maest.segments`). ``resampler``: "essentia" (default) or "soxr" for audio not at 16 kHz.
        """
        spec = self.spec(blocks=blocks, tokens=tokens, patchout_time=patchout_time, patchout_freq=tuple(patchout_freq),
                         overlap=overlap, crop=crop, segments=segments, resampler=resampler)
        result = self.run_track(audio, "embed", spec, sample_rate, batch_size)
        return (result.outputs, result.start_seconds) if per_segment else result.track

    def predict(self, audio: str | os.PathLike | np.ndarray, overlap: float = 0.5, crop: str | None = None,
                sample_rate: int = frontend.SAMPLE_RATE, batch_size: int | None = None,
                segments: str = "maest", resampler: str | None = None) -> np.ndarray:
        """Class probabilities of a track: the mean over segments of the sigmoid outputs."""
        spec = self.spec(blocks=None, overlap=overlap, crop=crop, segments=segments, resampler=resampler)
        return self.run_track(audio, "tag", spec, sample_rate, batch_size).track

    def tag(self, audio: str | os.PathLike | np.ndarray, top_k: int | None = 5, overlap: float = 0.5,
            crop: str | None = None, sample_rate: int = frontend.SAMPLE_RATE,
            segments: str = "maest", resampler: str | None = None) -> list[tuple[str, float]]:
        """The ``top_k`` labels (all when None) with their probabilities, most probable first.

        An own-label head's tags: :func:`maest.heads.tag_with_head`; the tag timeline figure:
        :func:`maest.plots.plot_tags` (both build on this pipeline, which imports neither).
        """
        return top_labels(self.predict(audio, overlap, crop, sample_rate, segments=segments, resampler=resampler),
                          self.labels, top_k)


def top_labels(probabilities: np.ndarray, labels: Sequence[str], top_k: int | None = 5) -> list[tuple[str, float]]:
    """``(label, probability)`` pairs sorted by probability (stable for ties), at most ``top_k``."""
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1):
        raise ValueError(f"top_k must be a positive number of labels (or None for all), got {top_k!r}")
    order = np.argsort(-probabilities, kind="stable")
    if top_k is not None:
        order = order[:top_k]
    return [(labels[i], float(probabilities[i])) for i in order]


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """The device to run on: ``None`` is CUDA if available, else the CPU; an unusable one fails clearly.

    Asking for CUDA on a torch without it raises :class:`DeviceUnavailableError` here, rather than
    a traceback from deep inside torch at the first ``.to()``.
    """
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise DeviceUnavailableError(f"unknown device {device!r} ({error}); use cpu, cuda or cuda:N") from None
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            why = ("built without CUDA" if torch.version.cuda is None
                   else f"built for CUDA {torch.version.cuda}, but no usable GPU or driver was found")
            raise DeviceUnavailableError(f"CUDA is not available in this torch build (torch {torch.__version__}, {why}); "
                                         "use --device cpu")
        count = torch.cuda.device_count()
        if resolved.index is not None and resolved.index >= count:
            raise DeviceUnavailableError(f"there is no CUDA device {resolved.index} (this machine has {count}); "
                                         f"use --device cuda:0 .. cuda:{count - 1}")
    return resolved


def load_model(name_or_path: str | os.PathLike | torch.nn.Module, device: str | torch.device | None = None,
               batch_size: int = 8, precision: str | None = None) -> MaestPipeline:
    """A :class:`MaestPipeline` for a registry name, hub id or local checkpoint (``device=None``: CUDA if available).

    ``precision`` is fp32, bf16 or fp16, or ``None``/"auto": bf16 where the device computes it natively
    (GPUs since Ampere, CPUs with AMX or AVX512-BF16), fp16 on older GPUs, else fp32 (:mod:`maest.precision`).
    The device and precision are checked before any checkpoint is read or downloaded.
    """
    device = resolve_device(device)
    resolve_precision(precision, device)  # fails before any checkpoint is read; auto is chosen by the pipeline
    if isinstance(name_or_path, torch.nn.Module):  # a network of a maest.family family
        return MaestPipeline(name_or_path, device, batch_size, precision=precision)
    from maest.checkpoints import load_checkpoint

    if batch_size < 1:  # before the checkpoint is read
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    return MaestPipeline(load_checkpoint(name_or_path, map_location="cpu"), device, batch_size, precision=precision)
