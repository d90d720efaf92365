"""A small synthetic dataset whose labels are learnable, for the tiny training run and the tests.

Each class is a harmonic tone in its own frequency region; a track holds one or two classes (its
labels) over quiet noise, so a model must read the spectrum to tag it. Everything a real run needs
is written: audio, ``train/validation/test.tsv``, ``labels.json`` and a mel store with statistics.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from maest.frontend import SAMPLE_RATE

MAX_CLASSES = 12


class DemoDataError(ValueError):
    """Demo dataset parameters are out of range."""


def class_frequencies(classes: int) -> np.ndarray:
    """Fundamental (Hz) of each class's tone: log-spaced from 110 Hz to 3.5 kHz, far apart in mel."""
    return np.geomspace(110.0, 3520.0, classes)


def demo_labels(classes: int) -> list[str]:
    return [f"Synthetic---Tone {k + 1:02d}" for k in range(classes)]


def synthesize(labels: list[int], seconds: float, frequencies: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Mono float32 audio: for each label a slightly detuned 3-harmonic tone with a random envelope."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    audio = 0.01 * rng.standard_normal(t.size)
    for label in labels:
        f0 = frequencies[label] * rng.uniform(0.97, 1.03)
        tone = sum(np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 2 * np.pi)) / h for h in (1, 2, 3))
        envelope = 0.6 + 0.4 * np.sin(2 * np.pi * rng.uniform(0.2, 2.0) * t + rng.uniform(0, 2 * np.pi))
        audio += 0.15 * envelope * tone
    return np.clip(audio, -1.0, 1.0).astype(np.float32)


def make_demo_data(out: str | os.PathLike, tracks: int = 240, seconds: float = 6.0, classes: int = 6,
                   validation: float = 0.2, test: float = 0.1, seed: int = 0, progress: bool = True) -> Path:
    """Write a synthetic dataset to ``out`` (audio/, ground truth, labels.json, store/); returns ``out``.

    Train with ``data.root: <out>`` (as the shipped ``tiny`` config does).
    """
    import soundfile

    from maest.data.groundtruth import Track, split_tracks, write_groundtruth
    from maest.data.store import MelStore, build_store, compute_stats

    if not 2 <= classes <= MAX_CLASSES:
        raise DemoDataError(f"classes must be in 2..{MAX_CLASSES}, got {classes}")
    if tracks < 10 or seconds < 1.0:
        raise DemoDataError(f"need at least 10 tracks of at least 1 s, got {tracks} of {seconds} s")
    out = Path(out)
    (out / "audio").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    names = demo_labels(classes)
    frequencies = class_frequencies(classes)
    items: list[Track] = []
    for i in range(tracks):
        count = 1 if rng.random() < 0.6 else 2
        labels = sorted(rng.choice(classes, size=count, replace=False).tolist())
        path = f"audio/track{i:05d}.wav"
        soundfile.write(out / path, synthesize(labels, seconds, frequencies, rng), SAMPLE_RATE, subtype="PCM_16")
        # One artist per track: the artist-disjoint split is then a plain random split.
        items.append(Track(path, [names[k] for k in labels], artists=[f"artist{i}"]))
    splits = split_tracks(items, validation=validation, test=test, seed=seed)
    write_groundtruth(out, splits, names, summary={"source": "maest demo-data (synthetic tones)"})
    build_store([t.path for t in items], out / "store", audio_root=out, crop="center30", progress=progress)
    compute_stats(MelStore(out / "store"), keys=[t.path for t in splits["train"]], save=True, progress=progress)
    return out
