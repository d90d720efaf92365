"""Learning-rate schedule per epoch: warm-up, constant, linear decrease, constant (paper, 3.2).

A pure function of the epoch so that resuming from a checkpoint needs no scheduler internals and
tests can compare values at the epoch boundaries with an independent computation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

WARMUP_SHAPES = ("linear", "exponential")


class ScheduleError(ValueError):
    """A learning-rate schedule parameter is out of range."""


@dataclass(frozen=True)
class LrSchedule:
    """Multiplier of the peak learning rate for epoch ``e`` (0-based), usable as a LambdaLR lambda.

    * warm-up over ``warmup_epochs``: linear ``(e + 1) / warmup`` (paper), or the original code's
      exponential ``exp(-5 (1 - max(e, 0.5) / warmup)^2)`` (PaSST's ``exp_rampup``);
    * constant 1 until ``decay_start_epoch``;
    * linear decrease over ``decay_epochs`` to ``final_ratio`` (= final lr / peak lr);
    * constant ``final_ratio`` afterwards.
    """

    warmup_epochs: int = 5
    warmup_shape: str = "linear"
    decay_start_epoch: int = 50
    decay_epochs: int = 50
    final_ratio: float = 1e-3

    def __post_init__(self) -> None:
        if self.warmup_shape not in WARMUP_SHAPES:
            raise ScheduleError(f"warmup_shape must be one of {WARMUP_SHAPES}, got {self.warmup_shape!r}")
        if self.warmup_epochs < 0 or self.decay_epochs < 0 or self.decay_start_epoch < 0:
            raise ScheduleError("warmup_epochs, decay_start_epoch and decay_epochs must be >= 0")
        if not 0.0 <= self.final_ratio <= 1.0:
            raise ScheduleError(f"final_ratio (final lr / peak lr) must be in [0, 1], got {self.final_ratio}")

    def warmup(self, epoch: int) -> float:
        if epoch >= self.warmup_epochs:
            return 1.0
        if self.warmup_shape == "linear":
            return (epoch + 1) / self.warmup_epochs
        phase = 1.0 - max(epoch, 0.5) / self.warmup_epochs
        return math.exp(-5.0 * phase * phase)

    def decay(self, epoch: int) -> float:
        # As PaSST's linear_rampdown: 1 up to and including the start epoch.
        since = epoch - self.decay_start_epoch
        if since <= 0:
            return 1.0
        if since >= self.decay_epochs:
            return self.final_ratio
        return self.final_ratio + (1.0 - self.final_ratio) * (self.decay_epochs - since) / self.decay_epochs

    def __call__(self, epoch: int) -> float:
        if epoch < 0:
            raise ScheduleError(f"epoch must be >= 0, got {epoch}")
        return self.warmup(epoch) * self.decay(epoch)


def learning_rate(epoch: int, peak_lr: float, schedule: LrSchedule) -> float:
    """The learning rate of epoch ``epoch`` (0-based) for a schedule peaking at ``peak_lr``."""
    return peak_lr * schedule(epoch)


def schedule_for(peak_lr: float, final_lr: float, warmup_epochs: int = 5, warmup_shape: str = "linear",
                 decay_start_epoch: int = 50, decay_epochs: int = 50) -> LrSchedule:
    """Build a schedule from absolute learning rates (paper: peak 1e-4, final 1e-7)."""
    if peak_lr <= 0:
        raise ScheduleError(f"peak learning rate must be > 0, got {peak_lr}")
    if not 0 <= final_lr <= peak_lr:
        raise ScheduleError(f"final learning rate must be in [0, peak = {peak_lr}], got {final_lr}")
    return LrSchedule(warmup_epochs, warmup_shape, decay_start_epoch, decay_epochs, final_lr / peak_lr)
