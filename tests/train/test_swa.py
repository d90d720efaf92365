"""SWA: the averaged copy equals the mean of the snapshots; snapshots fall on the right epochs."""

from __future__ import annotations

import torch
from torch import nn

from maest.train.swa import averaged_copy, swa_due, update_average


def test_swa_due_from_start_every_n_epochs():
    due = [e for e in range(130) if swa_due(e, start_epoch=50, every_epochs=5)]
    assert due == list(range(50, 130, 5))


def test_average_equals_mean_of_snapshots_including_buffers():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    average = averaged_copy(net)
    assert not any(p.requires_grad for p in average.parameters())
    snapshots, count = [], 0
    for _ in range(4):
        with torch.no_grad():
            for p in net.parameters():
                p.add_(torch.randn_like(p))
        net.train()(torch.randn(8, 5))  # moves the BatchNorm running statistics
        snapshots.append({k: v.clone() for k, v in net.state_dict().items()})
        count = update_average(average, net, count)
    assert count == 4
    for name, value in average.state_dict().items():
        stacked = torch.stack([s[name] for s in snapshots])
        if value.is_floating_point():
            torch.testing.assert_close(value, stacked.mean(0), rtol=0, atol=1e-6)
        else:  # num_batches_tracked: the latest value
            assert torch.equal(value, snapshots[-1][name])


def test_first_snapshot_is_an_exact_copy():
    torch.manual_seed(1)
    net = nn.Linear(3, 3)
    average = averaged_copy(nn.Linear(3, 3))
    update_average(average, net, 0)
    for a, b in zip(average.parameters(), net.parameters()):
        assert torch.equal(a, b)
