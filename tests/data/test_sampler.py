"""Balanced epoch sampler: weights, no repeats, disjoint ranks, epochs, seeds, state round trip."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from maest.data.sampler import BalancedEpochSampler, track_weights


@pytest.fixture(scope="module")
def targets() -> np.ndarray:
    rng = np.random.default_rng(0)
    t = rng.random((3000, 20)) < np.linspace(0.002, 0.3, 20)  # classes from rare to common
    t[:5] = False  # a few tracks without labels
    return t


def test_weights_match_independent_computation(targets):
    weights = track_weights(targets)
    counts = targets.sum(axis=0)
    for n in [0, 7, 100, 2999]:
        labelled = [k for k in range(20) if targets[n, k]]
        expected = sum(1000.0 / (counts[k] + 100.0) for k in labelled)
        if not labelled:
            expected = min(1000.0 / (c + 100.0) for c in counts)
        assert weights[n] == pytest.approx(expected, rel=1e-12)
    assert np.all(weights > 0)


def test_rare_labels_are_drawn_more_often(targets):
    sampler = BalancedEpochSampler(targets, samples_per_epoch=1000, seed=1)
    drawn = np.zeros(len(targets))
    for epoch in range(10):
        sampler.set_epoch(epoch)
        drawn[list(sampler)] += 1
    rare = targets[:, 0] | targets[:, 1]
    assert drawn[rare].mean() > 1.5 * drawn[~rare].mean()


def test_no_repeats_epochs_differ_seed_reproducible(targets):
    sampler = BalancedEpochSampler(targets, samples_per_epoch=1200, seed=5)
    first = list(sampler)
    assert len(first) == len(sampler) == 1200 and len(set(first)) == 1200
    assert list(sampler) == first  # same epoch, same draw
    sampler.set_epoch(1)
    second = list(sampler)
    assert len(set(second)) == 1200 and second != first
    again = BalancedEpochSampler(targets, samples_per_epoch=1200, seed=5)
    again.set_epoch(1)
    assert list(again) == second
    other = BalancedEpochSampler(targets, samples_per_epoch=1200, seed=6)
    other.set_epoch(1)
    assert list(other) != second


def test_ranks_are_disjoint_equal_and_cover_the_sample(targets):
    ranks = [BalancedEpochSampler(targets, samples_per_epoch=1001, num_replicas=4, rank=r, seed=2) for r in range(4)]
    for s in ranks:
        s.set_epoch(3)
    shares = [list(s) for s in ranks]
    assert all(len(share) == len(ranks[0]) == 250 for share in shares)
    union = [i for share in shares for i in share]
    assert len(set(union)) == 1000
    whole = BalancedEpochSampler(targets, samples_per_epoch=1000, seed=2)
    whole.set_epoch(3)
    assert set(union) == set(whole)  # the ranks split exactly the single-process sample


def test_state_round_trip_resumes_mid_epoch(targets):
    sampler = BalancedEpochSampler(targets, samples_per_epoch=500, seed=9)
    sampler.set_epoch(4)
    full = list(sampler)
    iterator = iter(sampler)
    consumed = [next(iterator) for _ in range(123)]
    state = sampler.state_dict()
    assert state["epoch"] == 4 and state["seed"] == 9 and state["position"] == 123
    resumed = BalancedEpochSampler(targets, samples_per_epoch=500, seed=0)
    resumed.load_state_dict(state)
    assert consumed + list(resumed) == full
    assert list(resumed) == full  # the next pass over the epoch starts at its beginning
    with pytest.raises(ValueError, match="mid-epoch resume"):
        BalancedEpochSampler(targets, samples_per_epoch=400, seed=9).load_state_dict(state)


def test_sample_is_capped_at_the_number_of_tracks(targets):
    sampler = BalancedEpochSampler(targets[:50], samples_per_epoch=200_000)
    assert sorted(sampler) == list(range(50))
    with pytest.raises(ValueError, match="rank"):
        BalancedEpochSampler(targets, num_replicas=2, rank=2)


def test_works_in_a_dataloader(targets):
    sampler = BalancedEpochSampler(targets, samples_per_epoch=64, seed=0)
    loader = torch.utils.data.DataLoader(torch.arange(len(targets)), batch_size=16, sampler=sampler)
    batches = list(loader)
    assert len(batches) == 4 and torch.cat(batches).tolist() == list(sampler)
