"""Fixtures the Ray tests share with their worker processes (which import this module by name)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from maest.configs import MaestConfig
from maest.model import Maest


class SlowMaest(Maest):
    """A tiny MAEST whose every batch takes ``delay`` seconds longer: a run lasts long enough to be
    interrupted at a known point (an actor killed while it computes)."""

    delay = 0.0

    def forward_features(self, *args, **kwargs):
        time.sleep(self.delay)
        return super().forward_features(*args, **kwargs)


def slow_model(delay: float, seed: int = 0) -> SlowMaest:
    torch.manual_seed(seed)
    config = MaestConfig(depth=2, width=32, heads=2, num_classes=4, segment_frames=64,
                         train_patchout_time=0, train_patchout_freq=0, name=f"slow-{seed}")
    model = SlowMaest(config)
    model.delay = delay
    return model


def write_clips(root: Path, count: int, seconds=(0.5, 1.0, 2.0, 3.5), seed: int = 0) -> list[Path]:
    """``count`` noisy tones as 16 kHz WAV under ``root`` (two sub-folders), lengths cycling through ``seconds``."""
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        folder = root / f"d{i % 2}"
        folder.mkdir(parents=True, exist_ok=True)
        t = np.arange(int(16000 * seconds[i % len(seconds)])) / 16000
        y = 0.3 * np.sin(2 * np.pi * (200 + 50 * i) * t) + 0.05 * rng.standard_normal(t.size)
        path = folder / f"t{i:02d}.wav"
        sf.write(path, y.astype(np.float32), 16000)
        paths.append(path)
    return paths
