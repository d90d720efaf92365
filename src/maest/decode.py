"""One decode path: audio file -> (mel, duration), or a failure record that never raises.

A *decoder* is a small picklable callable ``path -> Decoded`` that raises for a bad file:
:class:`TrackMel` (whole-track normalised mel, what inference and evaluation feed the model) and
:class:`CentreRawMel` (the central window's raw float16 mel, what the training store keeps).
:func:`decode` turns its errors into :class:`DecodeFailure` records, and :func:`decode_all` runs it
over many files in DataLoader worker processes. Decoders hold only numbers (the frontend is built
on first use in the process that decodes), so they travel cheaply to workers and Ray tasks.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from maest import audio, streaming
from maest.frontend import DISCOGS_MEAN, DISCOGS_STD, SAMPLE_RATE, MelFrontend


class Decoded(NamedTuple):
    """A decoded track: its mel (layout set by the decoder) and its duration in seconds."""

    mel: Any
    duration: float


@dataclass(frozen=True)
class DecodeFailure:
    """A file that could not be decoded and why (one line, for failure logs)."""

    path: str
    reason: str


Decoder = Callable[[str | os.PathLike], Decoded]


def failure_reason(error: BaseException) -> str:
    """The reason kept for a bad file: the decoder's own words, else the error's type and message."""
    if isinstance(error, audio.AudioDecodeError):
        return error.reason
    return f"{type(error).__name__}: {error}"


def decode(path: str | os.PathLike, decoder: Decoder) -> Decoded | DecodeFailure:
    """``decoder(path)``, or a :class:`DecodeFailure`: one odd file must not stop a long run."""
    try:
        return decoder(path)
    except Exception as error:  # noqa: BLE001 - every reason is kept in the record
        return DecodeFailure(str(path), failure_reason(error))


@dataclass
class _LazyFrontend:
    """Base of the decoders: a :class:`MelFrontend` built on first use, never pickled."""

    _frontend: MelFrontend | None = field(default=None, init=False, repr=False, compare=False)

    def _make_frontend(self) -> MelFrontend:
        raise NotImplementedError

    @property
    def frontend(self) -> MelFrontend:
        if self._frontend is None:
            self._frontend = self._make_frontend()
        return self._frontend

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_frontend": None}


@dataclass
class TrackMel(_LazyFrontend):
    """Whole-track normalised mel ``(n_mels, frames)`` float32 on the CPU, in bounded memory.

    Audio shorter than ``min_frames`` frames is padded with silence to it (one patch).
    """

    mean: float = DISCOGS_MEAN
    std: float = DISCOGS_STD
    min_frames: int = 16
    chunk_seconds: int = 60
    resampler: str = "essentia"  # a run's spec sets it (maest.spec); it travels with the decoder to workers

    def _make_frontend(self) -> MelFrontend:
        return MelFrontend(mean=self.mean, std=self.std)

    def __call__(self, path: str | os.PathLike) -> Decoded:
        return Decoded(*streaming.file_mel(path, self.frontend, self.min_frames, self.chunk_seconds, self.resampler))


@dataclass
class CentreRawMel(_LazyFrontend):
    """Raw (un-normalised) mel of the central ``keep_seconds`` of a track as float16 ``(frames, n_mels)``.

    Only that window is decoded; its duration is that of the decoded samples.
    """

    keep_seconds: float = 30.0

    def _make_frontend(self) -> MelFrontend:
        return MelFrontend(normalize=False)

    def __call__(self, path: str | os.PathLike) -> Decoded:
        if "\t" in str(path) or "\n" in str(path):
            raise ValueError("path contains a tab or newline")  # it could not be a row of a TSV index
        offset, duration = centre_window(audio.info(path).duration, self.keep_seconds)
        samples = audio.load(path, SAMPLE_RATE, offset=offset, duration=duration)
        with torch.no_grad():
            mel = self.frontend(torch.from_numpy(samples)[None])[0]
        mel = mel.T.contiguous().numpy().astype(np.float16)  # (frames, 96): the store's on-disk layout
        if not np.all(np.isfinite(mel)):
            raise ValueError("mel holds NaN or infinity")
        return Decoded(mel, samples.size / SAMPLE_RATE)


def centre_window(duration: float, keep_seconds: float) -> tuple[float | None, float | None]:
    """``(offset, duration)`` of the central ``keep_seconds`` of a track (``None, None``: whole track)."""
    if duration <= keep_seconds:
        return None, None
    return (duration - keep_seconds) / 2.0, keep_seconds


class DecodeJobs(torch.utils.data.Dataset):
    """Item ``i`` -> ``(i, Decoded or DecodeFailure)`` for ``paths[i]``; never raises for a bad file."""

    def __init__(self, paths: Sequence[str | os.PathLike], decoder: Decoder):
        self.paths = list(paths)
        self.decoder = decoder

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[int, Decoded | DecodeFailure]:
        return index, decode(self.paths[index], self.decoder)


def _identity(item):
    return item


def _single_thread(_: int) -> None:
    torch.set_num_threads(1)  # workers decode and run the FFT; the model keeps the cores


def decode_all(paths: Sequence[str | os.PathLike | Path], decoder: Decoder, workers: int = 0, *,
               prefetch_factor: int = 2, single_thread_workers: bool = True) -> Iterator[tuple[int, Decoded | DecodeFailure]]:
    """``(index, result)`` for every path, in order, decoded in ``workers`` processes (0: in this one).

    ``single_thread_workers`` gives each worker one torch thread (inference: the model keeps the cores).
    """
    jobs = DecodeJobs(paths, decoder)
    if workers <= 0:
        yield from (jobs[i] for i in range(len(jobs)))
        return
    loader = torch.utils.data.DataLoader(
        jobs, batch_size=None, shuffle=False, num_workers=workers, collate_fn=_identity,
        worker_init_fn=_single_thread if single_thread_workers else None, prefetch_factor=prefetch_factor,
    )
    yield from loader
