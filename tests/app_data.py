"""Fixtures for the web-app tests: generated tracks, an exact cosine index, a tiny head, a free port."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import soundfile as sf

TONES_HZ = {"low": 220.0, "mid": 880.0, "high": 2500.0}


def write_tracks(root: Path, per_tone: int = 2, seconds: float = 3.0, seed: int = 0) -> list[Path]:
    """``root/<tone>/<tone>_<i>.wav``: a sine per tone plus noise, 16 kHz mono."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(16000 * seconds)) / 16000
    paths = []
    for name, hz in TONES_HZ.items():
        for i in range(per_tone):
            y = 0.3 * np.sin(2 * np.pi * hz * t) + 0.05 * rng.normal(size=t.size)
            path = root / name / f"{name}_{i}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, y.astype(np.float32), 16000)
            paths.append(path)
    return paths


class ExactIndex:
    """Exact cosine search over a few embeddings (what ``maest.index`` does for small collections)."""

    def __init__(self, keys: list[str], vectors: np.ndarray):
        self.keys = list(keys)
        vectors = np.asarray(vectors, dtype=np.float64)
        self.vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    def search(self, query, k: int = 10) -> list[tuple[str, float]]:
        vector = self.vectors[self.keys.index(query)] if isinstance(query, str) else np.asarray(query, np.float64)
        similarity = self.vectors @ (vector / np.linalg.norm(vector))
        order = np.argsort(-similarity, kind="stable")[:k]
        return [(self.keys[i], float(similarity[i])) for i in order]


class NearestMeanHead:
    """A head that scores each label by the cosine similarity to its class-mean embedding (mapped to [0, 1])."""

    def __init__(self, labels: list[str], means: np.ndarray):
        self.labels = list(labels)
        self.means = means / np.linalg.norm(means, axis=1, keepdims=True)
        self.thresholds = np.full(len(labels), 0.9, dtype=np.float32)

    def predict(self, embeddings: np.ndarray) -> np.ndarray:
        embeddings = np.asarray(embeddings, np.float64)
        unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
        return ((unit @ self.means.T + 1.0) / 2.0).astype(np.float32)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
