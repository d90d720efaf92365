"""Label-balanced epoch sampler of the original MAEST training (``training.md``, Sampling).

Each epoch draws ``samples_per_epoch`` distinct tracks, weighted by label rarity: class weight
``1000 / (c_k + 100)`` with ``c_k`` the training count of class k; a track's weight is the SUM of its
labels' weights. A track without labels gets the smallest class weight (as if it carried only the
most common label): it stays drawable without being favoured. The draw is seeded with
``seed + epoch`` and identical on every rank; rank r takes every ``num_replicas``-th index of it.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import Sampler

MAX_CATEGORIES = 2**24  # torch.multinomial's limit on the number of weights


def track_weights(targets: np.ndarray, offset: float = 100.0, scale: float = 1000.0) -> np.ndarray:
    """Per-track sampling weight (float64, length N) from bool targets ``(N, C)``; see the module docstring."""
    targets = np.ascontiguousarray(targets, dtype=bool)
    if targets.ndim != 2:
        raise ValueError(f"targets must be (tracks, classes), got shape {targets.shape}")
    tracks, classes = targets.shape
    # Work on the nonzero entries only (about 2 per track): dense float maths on (3.3 M, 400)
    # targets takes 10 GB or tens of seconds.
    flat = np.flatnonzero(targets.reshape(-1))
    rows, cols = flat // max(classes, 1), flat % max(classes, 1)
    class_weights = scale / (np.bincount(cols, minlength=classes).astype(np.float64) + offset)
    weights = np.bincount(rows, weights=class_weights[cols], minlength=tracks)
    if classes:
        weights[weights == 0] = class_weights.min()  # tracks without labels
    return weights


class BalancedEpochSampler(Sampler[int]):
    """Per epoch, ``samples_per_epoch`` track indices without replacement, weighted by label rarity.

    Distributed: all ranks draw the same sample; rank ``rank`` yields its strided, disjoint share,
    and every rank yields ``len(self)`` indices (the remainder of the sample is dropped). Call
    ``set_epoch`` before each epoch. ``state_dict`` holds the epoch and how many indices of it were
    yielded, so a run resumed with ``load_state_dict`` continues mid-epoch.
    """

    def __init__(
        self,
        targets: np.ndarray,
        samples_per_epoch: int = 200_000,
        num_replicas: int = 1,
        rank: int = 0,
        seed: int = 0,
        offset: float = 100.0,
        scale: float = 1000.0,
    ):
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank must be in [0, {num_replicas}), got {rank}")
        if samples_per_epoch <= 0:
            raise ValueError(f"samples_per_epoch must be > 0, got {samples_per_epoch}")
        self.weights = torch.from_numpy(track_weights(targets, offset, scale))
        if len(self.weights) > MAX_CATEGORIES:
            raise ValueError(f"{len(self.weights)} tracks exceed torch.multinomial's limit of {MAX_CATEGORIES}")
        # Without replacement a sample cannot hold more tracks than there are.
        self.total = min(samples_per_epoch, len(self.weights)) // num_replicas * num_replicas
        if self.total == 0:
            raise ValueError(f"{len(self.weights)} tracks cannot give each of {num_replicas} ranks one sample")
        self.num_replicas = num_replicas
        self.rank = rank
        self.seed = seed
        self.epoch = 0
        self.position = 0  # indices of this epoch already yielded by this rank

    def __len__(self) -> int:
        return self.total // self.num_replicas

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch to draw; a new epoch starts at its beginning."""
        if epoch != self.epoch:
            self.position = 0
        self.epoch = epoch

    def epoch_indices(self, epoch: int) -> torch.Tensor:
        """This rank's indices for ``epoch`` (the whole draw is ``seed + epoch``-seeded, rank-independent)."""
        generator = torch.Generator().manual_seed(self.seed + epoch)
        sample = torch.multinomial(self.weights, self.total, replacement=False, generator=generator)
        return sample[self.rank :: self.num_replicas]

    def __iter__(self) -> Iterator[int]:
        indices = self.epoch_indices(self.epoch).tolist()
        start = self.position
        for k in range(start, len(indices)):
            self.position = k + 1
            yield indices[k]
        self.position = 0  # the epoch is complete: a new iteration of the same epoch starts over

    def state_dict(self) -> dict:
        """Epoch, seed and position (indices yielded; a DataLoader's prefetch counts as yielded)."""
        return {"epoch": self.epoch, "seed": self.seed, "position": self.position,
                "num_replicas": self.num_replicas, "total": self.total}

    def load_state_dict(self, state: dict) -> None:
        if state.get("num_replicas", self.num_replicas) != self.num_replicas or state.get("total", self.total) != self.total:
            raise ValueError(
                f"sampler state was saved for {state.get('num_replicas')} ranks and {state.get('total')} samples per "
                f"epoch; this run has {self.num_replicas} and {self.total}: mid-epoch resume needs the same setup"
            )
        self.epoch = int(state["epoch"])
        self.seed = int(state["seed"])
        self.position = int(state["position"])
