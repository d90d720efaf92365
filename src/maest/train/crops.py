"""One split's stored mels as training items: seeded random crops (training) or the centre crop (validation).

Below :mod:`maest.train.data` (the Lightning data module) and :mod:`maest.train.validation` (whole-track
segments, a subclass), so neither imports the other to reach it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from maest import frontend
from maest.data.store import MelStore


class MelCrops(Dataset):
    """Tracks of one split: ``item -> (mel (n_mels, frames) float32 normalised, targets float32, index)``.

    Training items are ``(epoch, index)`` pairs (see :class:`EpochTagged`) and get a random crop;
    validation items are plain indices and get the centre crop.
    """

    def __init__(self, store: str | Path | MelStore, keys: list[str], targets: np.ndarray, segment_frames: int,
                 mean: float, std: float, seed: int = 0):
        # The index is read once here; workers share it (fork) or get it pickled, never re-read it,
        # and map the shards themselves, lazily.
        self.store = store if isinstance(store, MelStore) else MelStore(store)
        self.keys = keys
        self.rows = np.asarray([self.store.index_of(k) for k in keys], dtype=np.int64)
        # Multi-hot targets as bool: float32 would be 5.3 GB per rank for 3.3 M tracks x 400 classes.
        self.targets = torch.from_numpy(np.asarray(targets, dtype=bool))
        self.segment_frames = segment_frames
        self.mean, self.std, self.seed = mean, std, seed

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, item: int | tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor, int]:
        store, rows = self.store, self.rows
        if isinstance(item, tuple):
            epoch, index = item
            rng = np.random.default_rng((self.seed, epoch, index))
            mel = store.crop(int(rows[index]), self.segment_frames, rng)
        else:
            index = item
            mel = centre_crop(store, int(rows[index]), self.segment_frames)
        mel = frontend.normalize_mel(torch.from_numpy(mel.astype(np.float32)), self.mean, self.std)
        return mel, self.targets[index].float(), index


def centre_crop(store: MelStore, row: int, length: int) -> np.ndarray:
    """The central ``length`` frames of a stored track, right-padded with silence (0) when shorter."""
    frames = store.frames(row)
    start = max(0, (frames - length) // 2)
    mel = store.read(row, start, length)
    if mel.shape[1] < length:
        mel = np.pad(mel, ((0, 0), (0, length - mel.shape[1])))
    return mel
