"""A seeded validation split stratified by label, so every label is seen in training and (when it can) in validation."""

from __future__ import annotations

from collections import defaultdict

import numpy as np


def stratified_split(targets: np.ndarray, validation: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(train indices, validation indices)`` for bool targets ``(tracks, labels)``.

    Each track is grouped by its rarest label (its class, for single-label data; tracks without
    labels form a group); each group sends ``round(validation * size)`` tracks to validation, at
    least one and never all when the group has two or more. A label left without a training track
    gets one back from validation.
    """
    if not 0.0 < validation < 1.0:
        raise ValueError(f"validation must be a fraction in (0, 1), got {validation}")
    targets = np.asarray(targets, dtype=bool)
    rng = np.random.default_rng(seed)
    frequency = targets.sum(axis=0)
    groups: dict[int, list[int]] = defaultdict(list)
    for i, row in enumerate(targets):
        labels = np.flatnonzero(row)
        key = -1 if labels.size == 0 else int(labels[np.argmin(frequency[labels])])
        groups[key].append(i)
    in_validation = np.zeros(len(targets), dtype=bool)
    for key in sorted(groups):
        members = np.array(groups[key])
        rng.shuffle(members)
        n = len(members)
        take = 0 if n < 2 else min(n - 1, max(1, int(round(validation * n))))
        in_validation[members[:take]] = True
    for j in range(targets.shape[1]):  # every label needs a training example
        if targets[:, j].any() and not targets[~in_validation, j].any():
            in_validation[rng.choice(np.flatnonzero(targets[:, j]))] = False
    return np.flatnonzero(~in_validation), np.flatnonzero(in_validation)
