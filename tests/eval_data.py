"""Generated fixtures for the evaluation tests: a tiny MAEST and a tiny MTG-Jamendo-like dataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from maest.checkpoints.native import save_native
from maest.configs import MaestConfig
from maest.model import Maest

TAGS = ["genre---jazz", "genre---pop", "genre---rock"]
TONES_HZ = [220.0, 880.0, 2500.0]
SECONDS = 1.5
HEADER = "TRACK_ID\tARTIST_ID\tALBUM_ID\tPATH\tDURATION\tTAGS"


def tiny_model(path: Path, seed: int = 0) -> Path:
    """A random 2-block, 32-wide MAEST with 64-frame (~1 s) segments, saved natively."""
    torch.manual_seed(seed)
    config = MaestConfig(depth=2, width=32, heads=2, num_classes=4, segment_frames=64,
                         train_patchout_time=0, train_patchout_freq=0, name=f"tiny-{seed}")
    return save_native(Maest(config), path)


def tiny_jamendo(root: Path, counts=(12, 6, 6), seed: int = 0, mp3_every: int = 5) -> tuple[Path, Path]:
    """MTG-Jamendo-style CRLF TSVs (genre subset) + audio: a tone per tag, plus noise.

    Returns ``(metadata dir, audio root)``. Every ``mp3_every``-th track is an MP3 (the rest WAV),
    paths follow ``NN/<id>.<ext>`` with NN the id's last two digits.
    """
    rng = np.random.default_rng(seed)
    meta, audio = root / "splits" / "split-0", root / "audio"
    meta.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(16000 * SECONDS)) / 16000
    track = 1000
    for split, n in zip(("train", "validation", "test"), counts):
        lines = [HEADER]
        for i in range(n):
            track += 1
            label = i % len(TAGS)  # every split holds every label
            y = 0.3 * np.sin(2 * np.pi * TONES_HZ[label] * t) + 0.05 * rng.normal(size=t.size)
            ext = "mp3" if track % mp3_every == 0 else "wav"
            rel = f"{track % 100:02d}/{track}.{ext}"
            (audio / rel).parent.mkdir(parents=True, exist_ok=True)
            sf.write(audio / rel, y.astype(np.float32), 16000)
            lines.append(f"track_{track:07d}\tartist_{i}\talbum_{i}\t{rel}\t{SECONDS}\t{TAGS[label]}")
        (meta / f"autotagging_genre-{split}.tsv").write_bytes(("\r\n".join(lines) + "\r\n").encode())
    return root / "splits", audio
