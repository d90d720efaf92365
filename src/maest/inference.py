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
import os
from collections import OrderedDict, deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from maest import audio as audio_io
from maest import frontend, streaming
from maest.configs import MaestConfig, discogs_labels
from maest.effnet import EffNet
from maest.model import TOKEN_NAMES, Maest, pool_tokens
from maest.segments import CROPS, Segments, gather_segments, hop_frames, segment_starts

Mode = Literal["embed", "tag"]


class InputAudioError(ValueError):
    """A waveform passed to the API is not a 1-D float array of samples."""


@dataclass(frozen=True)
class EmbedOptions:
    """What to compute per segment. ``blocks`` counts blocks run: 7 = the paper's "block 7"."""

    blocks: int | None = 7
    tokens: tuple[str, ...] = TOKEN_NAMES
    patchout_time: int = 1
    patchout_freq: tuple[int, ...] = ()
    overlap: float = 0.5
    crop: str | None = None

    def __post_init__(self):
        tokens = (self.tokens,) if isinstance(self.tokens, str) else tuple(self.tokens)
        object.__setattr__(self, "tokens", tokens)
        object.__setattr__(self, "patchout_freq", tuple(int(r) for r in self.patchout_freq))
        bad = [t for t in tokens if t not in TOKEN_NAMES]
        if bad or not tokens:
            raise ValueError(f"tokens must be a non-empty selection of {TOKEN_NAMES}, got {tokens}")
        if self.patchout_time < 1:
            raise ValueError(f"patchout_time must be >= 1, got {self.patchout_time}")
        # Checked here, before any decoding or output folder is touched, not at the first track.
        hop_frames(1, self.overlap)
        if self.crop not in CROPS:
            raise ValueError(f"crop must be one of {CROPS}, got {self.crop!r}")


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


class SegmentRunner:
    """Batches the segments of many tracks through the model; yields tracks as they complete.

    Segments are grouped by length (full-length ones together; each short track's length on its
    own), so a batch never needs padding.
    """

    def __init__(self, pipeline: "MaestPipeline", mode: Mode, options: EmbedOptions, batch_size: int = 8,
                 max_pending_tracks: int | None = None):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if mode not in ("embed", "tag"):
            raise ValueError(f"mode must be 'embed' or 'tag', got {mode!r}")
        pipeline.check_options(options)
        self.pipeline = pipeline
        self.mode = mode
        self.options = options
        self.batch_size = batch_size
        self.max_pending_tracks = max_pending_tracks or max(16, 2 * batch_size)
        self.queues: OrderedDict[int, deque[_Piece]] = OrderedDict()
        self.queued: dict[int, int] = {}
        self.pending_tracks = 0
        self._done: list[tuple[Any, TrackResult]] = []

    def add(self, key: Any, mel: torch.Tensor, duration: float) -> list[tuple[Any, TrackResult]]:
        """Queue a track's mel ``(n_mels, frames)``; returns the tracks completed meanwhile."""
        config = self.pipeline.config
        if mel.shape[-1] < self.pipeline.min_frames:
            raise ValueError(f"a track needs at least {self.pipeline.min_frames} mel frames, got {mel.shape[-1]}")
        segments = segment_starts(mel.shape[-1], config.segment_frames, self.options.overlap, self.options.crop)
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
        mel = torch.cat([gather_segments(p.track.mel, p.track.segments.starts[p.lo : p.hi], length) for p in pieces])
        outputs = self.pipeline.run_segments(mel, self.mode, self.options)
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


class MaestPipeline:
    """A loaded model on a device, with the frontend: call :meth:`embed` or :meth:`tag` on tracks.

    The model is a MAEST transformer or the EffNet-B0 baseline; for EffNet the embedding is its
    penultimate layer (1280 dims) and ``blocks``/``tokens`` do not apply.
    """

    def __init__(self, model: Maest | EffNet, device: str | torch.device | None = None, batch_size: int = 8,
                 chunk_seconds: int = 60):
        self.device = torch.device(device) if device is not None else default_device()
        self.model = model.eval().to(self.device)
        self.config: MaestConfig = model.config
        self.is_effnet = isinstance(model, EffNet)
        # Shortest input the model takes: one patch for MAEST; EffNet pools any size, 16 for symmetry.
        self.min_frames = 16 if self.is_effnet else self.config.patch_size
        self.frontend = frontend.MelFrontend(mean=self.config.norm_mean, std=self.config.norm_std)
        self.batch_size = batch_size
        self.chunk_seconds = chunk_seconds
        self.labels = model_labels(self.config)

    def check_options(self, options: EmbedOptions) -> None:
        """Fail before any decoding when the options do not fit this model."""
        if self.is_effnet:
            if options.patchout_time != 1 or options.patchout_freq:
                raise ValueError("inference patchout applies to MAEST models only, not to EffNet")
            return
        depth = self.config.depth
        if options.blocks is not None and not 1 <= options.blocks <= depth:
            raise ValueError(f"blocks must be in 1..{depth} for this {depth}-block model, got {options.blocks}")
        rows = self.config.conv_freq_rows()
        bad = [r for r in options.patchout_freq if not -rows <= r < rows]
        if bad:
            raise ValueError(f"patchout_freq rows {bad} out of range: the model has {rows} frequency rows (0..{rows - 1})")
        if len({r % rows for r in options.patchout_freq}) >= rows:
            raise ValueError("patchout_freq drops every frequency row")

    # -- audio -> mel -----------------------------------------------------------------------
    def mel(self, audio: str | os.PathLike | np.ndarray, sample_rate: int = frontend.SAMPLE_RATE) -> tuple[torch.Tensor, float]:
        """Whole-track normalised mel ``(96, frames)`` on the CPU and the duration in seconds.

        ``audio`` is a file path or a 1-D float waveform (mono) at ``sample_rate`` Hz (16 kHz by
        default; other rates are resampled). Audio shorter than one patch (16 frames, 0.24 s) is
        padded with silence to one patch.
        """
        patch = self.min_frames
        if isinstance(audio, (str, os.PathLike)):
            return streaming.file_mel(audio, self.frontend, patch, self.chunk_seconds)
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
        waveform = audio_io.resample(waveform, sample_rate, frontend.SAMPLE_RATE)
        if waveform.size == 0:  # e.g. one sample at 44.1 kHz
            raise InputAudioError(f"the waveform is shorter than one sample at {frontend.SAMPLE_RATE} Hz")
        blocks = streaming.waveform_blocks(waveform, self.chunk_seconds)
        mel, _ = streaming.track_mel(blocks, self.frontend, patch, expected_samples=len(waveform))
        return mel, len(waveform) / frontend.SAMPLE_RATE

    # -- segments -> outputs ----------------------------------------------------------------
    def run_segments(self, mel: torch.Tensor, mode: Mode, options: EmbedOptions) -> np.ndarray:
        """``(batch, 96, frames)`` segments -> ``(batch, dim)`` float32 embeddings or probabilities.

        Embeddings run only ``options.blocks`` blocks (early exit); tags run them all.
        """
        mel = mel.to(self.device, non_blocking=True).contiguous()
        with torch.inference_mode(), self._autocast():
            if self.is_effnet:
                out = self.model.forward_features(mel) if mode == "embed" else torch.sigmoid(self.model(mel).float())
            elif mode == "embed":
                tokens = self.model.forward_features(mel, options.blocks, options.patchout_time, options.patchout_freq)
                out = pool_tokens(tokens, options.tokens)
            else:
                tokens = self.model.forward_features(mel, None, options.patchout_time, options.patchout_freq)
                out = torch.sigmoid(self.model.head(self.model.head_features(tokens)).float())
        return out.float().cpu().numpy()

    def _autocast(self) -> contextlib.AbstractContextManager:
        """bf16 (or fp16 where bf16 is unsupported) autocast on CUDA; full precision elsewhere."""
        if self.device.type != "cuda":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)

    def run_tracks(self, tracks: Iterable[tuple[Any, torch.Tensor, float]], mode: Mode, options: EmbedOptions,
                   batch_size: int | None = None) -> Iterator[tuple[Any, TrackResult]]:
        """``(key, mel, duration)`` tracks -> ``(key, result)`` as each completes, batching across tracks."""
        runner = SegmentRunner(self, mode, options, batch_size or self.batch_size)
        for key, mel, duration in tracks:
            yield from runner.add(key, mel, duration)
        yield from runner.finish()

    def _one(self, audio, mode: Mode, options: EmbedOptions, sample_rate: int, batch_size: int | None) -> TrackResult:
        mel, duration = self.mel(audio, sample_rate)
        results = list(self.run_tracks([(0, mel, duration)], mode, options, batch_size))
        return results[0][1]

    # -- public API ---------------------------------------------------------------------------
    def embed(
        self,
        audio: str | os.PathLike | np.ndarray,
        blocks: int | None = 7,
        tokens: Sequence[str] = TOKEN_NAMES,
        patchout_time: int = 1,
        patchout_freq: Sequence[int] = (),
        overlap: float = 0.5,
        per_segment: bool = False,
        crop: str | None = None,
        sample_rate: int = frontend.SAMPLE_RATE,
        batch_size: int | None = None,
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Embedding of a track (file path, or 1-D waveform at ``sample_rate``, 16 kHz by default).

        ``blocks=7`` runs 7 blocks (the paper's "block 7", original ``transformer_block=6``);
        ``tokens`` picks and orders the stacked cls / dist / avg tokens (768 dims each for the
        published models). Returns the mean over segments, ``(dim,)``; with ``per_segment=True``
        returns ``(embeddings (segments, dim), start times in seconds (segments,))``.
        """
        options = EmbedOptions(blocks, tokens, patchout_time, tuple(patchout_freq), overlap, crop)
        result = self._one(audio, "embed", options, sample_rate, batch_size)
        return (result.outputs, result.start_seconds) if per_segment else result.track

    def predict(self, audio: str | os.PathLike | np.ndarray, overlap: float = 0.5, crop: str | None = None,
                sample_rate: int = frontend.SAMPLE_RATE, batch_size: int | None = None) -> np.ndarray:
        """Class probabilities of a track: the mean over segments of the sigmoid outputs."""
        options = EmbedOptions(blocks=None, overlap=overlap, crop=crop)
        return self._one(audio, "tag", options, sample_rate, batch_size).track

    def tag(self, audio: str | os.PathLike | np.ndarray, top_k: int | None = 5, overlap: float = 0.5,
            crop: str | None = None, sample_rate: int = frontend.SAMPLE_RATE) -> list[tuple[str, float]]:
        """The ``top_k`` labels (all when None) with their probabilities, most probable first."""
        return top_labels(self.predict(audio, overlap, crop, sample_rate), self.labels, top_k)


def top_labels(probabilities: np.ndarray, labels: Sequence[str], top_k: int | None = 5) -> list[tuple[str, float]]:
    """``(label, probability)`` pairs sorted by probability (stable for ties), at most ``top_k``."""
    order = np.argsort(-probabilities, kind="stable")
    if top_k is not None:
        order = order[:top_k]
    return [(labels[i], float(probabilities[i])) for i in order]


def model_labels(config: MaestConfig) -> list[str]:
    """Label names: the checkpoint's own, else the shipped Discogs list of that size, else ``class_i``."""
    if config.labels:
        if len(config.labels) != config.num_classes:
            raise ValueError(f"config has {len(config.labels)} labels for {config.num_classes} classes")
        return list(config.labels)
    if config.num_classes in (400, 519):
        return list(discogs_labels(config.num_classes))
    return [f"class_{i}" for i in range(config.num_classes)]


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def load_model(name_or_path: str | os.PathLike | Maest | EffNet, device: str | torch.device | None = None,
               batch_size: int = 8) -> MaestPipeline:
    """A :class:`MaestPipeline` for a registry name, hub id or local checkpoint (``device=None``: CUDA if available)."""
    if isinstance(name_or_path, (Maest, EffNet)):
        return MaestPipeline(name_or_path, device, batch_size)
    from maest import checkpoints

    load_checkpoint = getattr(checkpoints, "load_checkpoint", None)
    if load_checkpoint is not None:
        model = load_checkpoint(name_or_path, map_location="cpu")
    else:  # only maest's native format is readable without the converters
        model = checkpoints.load_native(name_or_path, map_location="cpu")
    return MaestPipeline(model, device, batch_size)


def __getattr__(name: str):
    if name in ("extract", "tag_files", "ExtractSummary"):  # lazy: extraction imports this module
        from maest import extraction

        return getattr(extraction, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
