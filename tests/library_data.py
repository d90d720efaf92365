"""Generated fixtures for the library tests: short clips in every format maest writes tags into.

soundfile writes FLAC, Ogg Vorbis, Opus, MP3, WAV and AIFF; PyAV encodes AAC into M4A and raw ADTS
(a format whose tags maest refuses). Each clip is a distinct "song" (spectrum), so two excerpts of
one song are nearer each other than any other song's, even through a random-weights model.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import soundfile as sf
import torch

from maest.checkpoints.native import save_native
from maest.configs import MaestConfig
from maest.model import Maest

LABELS = ["Rock---Punk", "Electronic---Techno", "Jazz---Bop", "Pop---Ballad", "Electronic---House"]
SOUNDFILE_FORMATS = {  # extension -> (format, subtype, sample rate)
    "flac": ("FLAC", "PCM_16", 44100),
    "ogg": ("OGG", "VORBIS", 44100),
    "opus": ("OGG", "OPUS", 48000),
    "mp3": ("MP3", "MPEG_LAYER_III", 44100),
    "wav": ("WAV", "PCM_16", 44100),
    "aiff": ("AIFF", "PCM_16", 44100),
}
EXTENSIONS = [*SOUNDFILE_FORMATS, "m4a"]


def tiny_tagger(path: Path, seed: int = 1) -> str:
    """A random 2-block MAEST with five Discogs-style labels and ~2 s segments, saved natively."""
    torch.manual_seed(seed)
    config = MaestConfig(depth=2, width=32, heads=2, num_classes=len(LABELS), segment_frames=200, labels=LABELS,
                         name="tiny-tagger")
    save_native(Maest(config), path)
    return str(path)


def song(kind: int, seconds: float, rate: int, rng: np.random.Generator) -> np.ndarray:
    """A stereo excerpt ``(samples, 2)`` of "song" ``kind``: each kind has its own spectrum."""
    t = np.arange(int(seconds * rate)) / rate
    if kind == 0:  # low harmonic tone
        x = sum(np.sin(2 * np.pi * 110 * h * t + rng.uniform(0, 6)) / h for h in range(1, 6))
    elif kind == 1:  # broadband noise
        x = rng.standard_normal(len(t)) * 0.5
    elif kind == 2:  # high tone with a fast tremolo
        x = np.sin(2 * np.pi * 3000 * t + rng.uniform(0, 6)) * (0.5 + 0.5 * np.sin(2 * np.pi * 8 * t))
    else:  # clicks: a pulse train
        x = np.zeros(len(t))
        x[:: rate // 4] = 1.0
        x = np.convolve(x, np.hanning(64), mode="same")
    x = 0.3 * x / (np.abs(x).max() + 1e-9)
    return np.stack([x, 0.8 * x], axis=1).astype(np.float32)


def write_clip(path: Path, audio: np.ndarray, rate: int) -> Path:
    """``audio`` ``(samples, 2)`` into ``path``, encoded by its extension (see :data:`EXTENSIONS`)."""
    ext = path.suffix.lstrip(".").lower()
    if ext in SOUNDFILE_FORMATS:
        fmt, subtype, native = SOUNDFILE_FORMATS[ext]
        if native != rate:
            import soxr

            audio = soxr.resample(audio, rate, native).astype(np.float32)
        sf.write(path, audio, native, format=fmt, subtype=subtype)
        return path
    container = av.open(str(path), "w", format="adts" if ext == "aac" else None)
    stream = container.add_stream("aac", rate=rate)
    stream.layout = "stereo"
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(audio.T), format="fltp", layout="stereo")
    frame.sample_rate = rate
    for packet in stream.encode(frame):
        container.mux(packet)
    for packet in stream.encode(None):
        container.mux(packet)
    container.close()
    return path


def make_clips(folder: Path, seconds: float = 2.5, seed: int = 0) -> list[Path]:
    """One clip per format in :data:`EXTENSIONS` (song kind = position % 4), named ``clip.<ext>``."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    return [write_clip(folder / f"clip.{ext}", song(i % 4, seconds, 44100, rng), 44100)
            for i, ext in enumerate(EXTENSIONS)]


def decoded(path: Path) -> np.ndarray:
    """Every decoded sample of ``path`` (PyAV, all channels, float32), to compare audio before and after."""
    with av.open(str(path)) as container:
        frames = [frame.to_ndarray().reshape(-1) for frame in container.decode(audio=0)]
    return np.concatenate(frames).astype(np.float32)
