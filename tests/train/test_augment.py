"""Mixup and SpecAugment: lambdas, partners, consistent mixing, and mask shapes and counts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from maest.train.augment import AugmentError, SpecAugment, mixup


def test_mixup_lambdas_are_folded_beta_and_partners_a_permutation():
    torch.manual_seed(0)
    x, y = torch.randn(64, 96, 20), (torch.rand(64, 10) > 0.7).float()
    mixed = mixup(x, y, alpha=0.3)
    assert mixed.lambdas.shape == (64,)
    assert bool(((mixed.lambdas >= 0.5) & (mixed.lambdas <= 1.0)).all())
    assert sorted(mixed.partners.tolist()) == list(range(64))
    lam_x, lam_y = mixed.lambdas.view(-1, 1, 1), mixed.lambdas.view(-1, 1)
    torch.testing.assert_close(mixed.inputs, lam_x * x + (1 - lam_x) * x[mixed.partners])
    torch.testing.assert_close(mixed.targets, lam_y * y + (1 - lam_y) * y[mixed.partners])


def test_mixup_mixes_inputs_and_targets_with_the_same_lambda():
    # One-hot inputs and targets: the mixed weight of an example's own one-hot is its lambda.
    torch.manual_seed(1)
    batch = 32
    x = torch.eye(batch).view(batch, 1, batch)
    y = torch.eye(batch)
    mixed = mixup(x, y, alpha=0.3)
    own_x = mixed.inputs.view(batch, batch).diagonal()
    own_y = mixed.targets.diagonal()
    moved = mixed.partners != torch.arange(batch)
    torch.testing.assert_close(own_x[moved], own_y[moved])
    torch.testing.assert_close(own_x[moved], mixed.lambdas[moved].float())
    assert bool((mixed.inputs.view(batch, batch).sum(1) - 1).abs().max() < 1e-6)


def test_mixup_lambda_distribution_matches_numpy_beta():
    torch.manual_seed(2)
    ours = torch.cat([mixup(torch.zeros(1000, 1), torch.zeros(1000, 1), 0.3).lambdas for _ in range(20)]).numpy()
    ref = np.random.default_rng(0).beta(0.3, 0.3, 20000)
    ref = np.maximum(ref, 1 - ref)
    assert abs(ours.mean() - ref.mean()) < 0.01
    assert abs(np.median(ours) - np.median(ref)) < 0.02


def test_mixup_rejects_bad_arguments():
    with pytest.raises(AugmentError):
        mixup(torch.zeros(4, 2), torch.zeros(4, 3), alpha=0.0)
    with pytest.raises(AugmentError):
        mixup(torch.zeros(4, 2), torch.zeros(5, 3))


def _masked_rows_and_columns(out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    zero = out == 0
    return zero, zero.all(dim=1), zero.all(dim=2)  # cells, time columns (B, T), frequency rows (B, F)


def test_spec_augment_masks_full_rows_and_columns_within_limits():
    torch.manual_seed(3)
    augment = SpecAugment(time_masks=20, time_mask_frames=8, freq_masks=5, freq_mask_bands=8)
    mel = torch.rand(256, 96, 300) + 1.0
    out = augment(mel)
    zero, columns, rows = _masked_rows_and_columns(out)
    # Every masked cell lies in a fully masked time column or frequency row.
    assert torch.equal(zero, columns[:, None, :] | rows[:, :, None])
    assert int(columns.sum(1).max()) <= 20 * 8
    assert int(rows.sum(1).max()) <= 5 * 8
    assert int(columns.sum()) > 0 and int(rows.sum()) > 0
    assert torch.equal(out[~zero], mel[~zero])


def test_spec_augment_single_masks_are_contiguous_spans():
    torch.manual_seed(4)
    mel = torch.ones(500, 96, 100)
    _, columns, _ = _masked_rows_and_columns(SpecAugment(1, 8, 0, 0)(mel))
    widths = columns.sum(1)
    assert int(widths.max()) == 8 and int(widths.min()) == 0  # uniform widths 0..8 over 500 draws
    for row in columns[widths > 0]:
        where = torch.nonzero(row).flatten()
        assert int(where[-1] - where[0] + 1) == len(where)
    _, _, rows = _masked_rows_and_columns(SpecAugment(0, 0, 1, 8)(mel))
    assert int(rows.sum(1).max()) == 8


def test_spec_augment_without_masks_is_identity():
    mel = torch.randn(3, 96, 50)
    torch.testing.assert_close(SpecAugment(0, 8, 0, 8)(mel), mel)
    with pytest.raises(AugmentError):
        SpecAugment(time_masks=-1)
    with pytest.raises(AugmentError):
        SpecAugment()(torch.zeros(96, 50))
