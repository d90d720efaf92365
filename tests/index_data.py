"""Embedding folders as `maest embed` writes them (one .npy per key, optionally its maest-embed.json),
shared by the index tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from maest.index.sources import SETTINGS_FILE


def write_tree(root: Path, keys: list[str], vectors: np.ndarray, spec: dict | None) -> Path:
    """``root/<key>`` holding each vector, and ``spec`` as the folder's settings (None: no settings file)."""
    root.mkdir(parents=True, exist_ok=True)
    for key, vector in zip(keys, vectors):
        (root / key).parent.mkdir(parents=True, exist_ok=True)
        np.save(root / key, vector)
    if spec is not None:
        (root / SETTINGS_FILE).write_text(json.dumps(spec))
    return root
