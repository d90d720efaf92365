"""Stochastic weight averaging: a running mean of the weights taken every few epochs (paper, 3.2).

The averaged copy lives beside the live network (as ``net_swa`` in the training module, the name the
original MAEST checkpoints use), so Lightning checkpoints carry it and resume restores it.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class SwaError(ValueError):
    """SWA parameters are out of range or the averaged copy does not match the network."""


def swa_due(epoch: int, start_epoch: int = 50, every_epochs: int = 5) -> bool:
    """Whether the average takes a snapshot at the end of epoch ``epoch`` (0-based).

    Snapshots at the ends of epochs ``start, start + every, ...`` (PaSST/MAEST's swa_start/swa_freq).
    """
    if every_epochs < 1:
        raise SwaError(f"every_epochs must be >= 1, got {every_epochs}")
    return epoch >= start_epoch and (epoch - start_epoch) % every_epochs == 0


def averaged_copy(model: nn.Module) -> nn.Module:
    """A frozen deep copy of ``model`` to hold the average (no gradients, so DDP ignores it)."""
    average = copy.deepcopy(model)
    average.requires_grad_(False)
    return average


@torch.no_grad()
def update_average(average: nn.Module, model: nn.Module, snapshots: int) -> int:
    """Fold the current weights of ``model`` into ``average``, which holds the mean of ``snapshots``.

    Running mean ``avg += (w - avg) / (n + 1)`` over parameters and floating buffers (e.g. BatchNorm
    statistics); the first snapshot and integer buffers are copied exactly. Returns the new number of snapshots.
    """
    if snapshots < 0:
        raise SwaError(f"snapshots must be >= 0, got {snapshots}")
    live = dict(model.state_dict(keep_vars=True))
    for name, target in average.state_dict(keep_vars=True).items():
        if name not in live:
            raise SwaError(f"averaged copy has {name!r} that the network lacks")
        source = live[name].detach()
        if target.is_floating_point() and snapshots > 0:
            target.data.add_((source.to(target.dtype) - target.data) / (snapshots + 1))
        else:
            target.data.copy_(source)
    return snapshots + 1
