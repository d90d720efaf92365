"""The per-epoch learning-rate schedule against an independent piecewise-linear computation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from maest.train.schedule import LrSchedule, ScheduleError, learning_rate, schedule_for

PEAK, FINAL = 1e-4, 1e-7


def reference_linear(epoch: int) -> float:
    """Paper schedule by interpolation between its corner points (warm-up reaches the peak at epoch 4)."""
    return float(np.interp(epoch, [-1, 4, 50, 100, 1000], [0.0, PEAK, PEAK, FINAL, FINAL]))


def reference_exponential(epoch: int, warmup: int = 5, start: int = 50, length: int = 50, last: float = 0.01) -> float:
    """PaSST/MAEST's exp_warmup_linear_down, transcribed from the original code."""
    if epoch < warmup:
        e = np.clip(epoch, 0.5, warmup)
        rampup = float(np.exp(-5.0 * (1.0 - e / warmup) ** 2))
    else:
        rampup = 1.0
    if epoch <= start:
        rampdown = 1.0
    elif epoch - start < length:
        rampdown = last + (1.0 - last) * (length - epoch + start) / length
    else:
        rampdown = last
    return rampup * rampdown


def test_paper_schedule_matches_reference_every_epoch():
    schedule = schedule_for(PEAK, FINAL)
    for epoch in range(131):
        assert learning_rate(epoch, PEAK, schedule) == pytest.approx(reference_linear(epoch), rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("epoch, expected", [
    (0, PEAK / 5), (4, PEAK), (5, PEAK), (50, PEAK), (51, FINAL + (PEAK - FINAL) * 49 / 50),
    (75, (PEAK + FINAL) / 2), (99, FINAL + (PEAK - FINAL) / 50), (100, FINAL), (129, FINAL),
])
def test_paper_schedule_at_boundaries(epoch, expected):
    assert learning_rate(epoch, PEAK, schedule_for(PEAK, FINAL)) == pytest.approx(expected, rel=1e-12)


def test_original_code_exponential_warmup():
    schedule = schedule_for(2e-5, 2e-7, warmup_shape="exponential")
    for epoch in range(131):
        assert schedule(epoch) == pytest.approx(reference_exponential(epoch), rel=1e-12)
    assert schedule(0) == pytest.approx(math.exp(-5 * 0.9**2))


def test_lambda_lr_stepped_per_epoch_follows_the_schedule():
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.AdamW([param], lr=PEAK)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule_for(PEAK, FINAL))
    seen = []
    for _ in range(110):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert seen == pytest.approx([reference_linear(e) for e in range(110)], rel=1e-12, abs=1e-15)


def test_invalid_schedules_are_rejected():
    with pytest.raises(ScheduleError):
        schedule_for(1e-4, 1e-3)
    with pytest.raises(ScheduleError):
        LrSchedule(warmup_shape="cosine")
    with pytest.raises(ScheduleError):
        schedule_for(PEAK, FINAL)(-1)
