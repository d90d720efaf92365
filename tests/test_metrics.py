"""Tagging metrics against scikit-learn's on random inputs, ties and absent labels."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from maest.metrics import (
    AbsentLabelsWarning,
    MetricInputError,
    macro_scores,
    markdown_table,
    roc_auc_per_label,
    tagging_metrics,
)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_macro_and_micro_equal_sklearn(seed):
    rng = np.random.default_rng(seed)
    targets = rng.random((200, 12)) < rng.uniform(0.05, 0.5, 12)
    scores = rng.random((200, 12)) + 0.3 * targets
    got = tagging_metrics(targets, scores)
    assert got.skipped == []
    assert got.roc_auc_macro == pytest.approx(roc_auc_score(targets, scores, average="macro"), abs=1e-12)
    assert got.pr_auc_macro == pytest.approx(average_precision_score(targets, scores, average="macro"), abs=1e-12)
    assert got.roc_auc_micro == pytest.approx(roc_auc_score(targets, scores, average="micro"), abs=1e-12)
    assert got.pr_auc_micro == pytest.approx(average_precision_score(targets, scores, average="micro"), abs=1e-12)
    for j in range(12):
        assert got.per_label[str(j)]["roc_auc"] == pytest.approx(roc_auc_score(targets[:, j], scores[:, j]), abs=1e-12)


def test_training_macro_scores_skip_absent_labels_like_sklearn_on_the_rest():
    rng = np.random.default_rng(4)
    targets = rng.random((120, 8)) < 0.3
    targets[:, 2] = False  # absent label
    targets[:, 5] = True  # label on every track
    scores = rng.random((120, 8)) + 0.4 * targets
    keep = [j for j in range(8) if j not in (2, 5)]
    got = macro_scores(targets, scores)
    assert got["labels"] == 6
    assert got["mAP"] == pytest.approx(average_precision_score(targets[:, keep], scores[:, keep]), abs=1e-12)
    assert got["ROC-AUC"] == pytest.approx(roc_auc_score(targets[:, keep], scores[:, keep]), abs=1e-12)
    assert np.isnan(macro_scores(np.zeros((5, 2), bool), np.ones((5, 2)))["mAP"])


def test_tied_scores_equal_sklearn():
    rng = np.random.default_rng(3)
    targets = rng.random((300, 6)) < 0.3
    scores = np.round(rng.random((300, 6)) + 0.2 * targets, 1)  # many ties
    expected = [roc_auc_score(targets[:, j], scores[:, j]) for j in range(6)]
    np.testing.assert_allclose(roc_auc_per_label(targets, scores), expected, atol=1e-12)
    assert tagging_metrics(targets, scores).pr_auc_macro == pytest.approx(
        average_precision_score(targets, scores, average="macro"), abs=1e-12)


def test_absent_labels_are_skipped_and_reported():
    rng = np.random.default_rng(4)
    targets = rng.random((100, 5)) < 0.4
    targets[:, 1] = False  # no positives
    targets[:, 3] = True  # no negatives
    scores = rng.random((100, 5))
    with pytest.warns(AbsentLabelsWarning, match="b, d"):
        got = tagging_metrics(targets, scores, labels=list("abcde"))
    assert got.skipped == ["b", "d"]
    kept = [0, 2, 4]
    assert got.roc_auc_macro == pytest.approx(roc_auc_score(targets[:, kept], scores[:, kept], average="macro"))
    assert got.pr_auc_macro == pytest.approx(average_precision_score(targets[:, kept], scores[:, kept], average="macro"))
    assert got.roc_auc_micro == pytest.approx(roc_auc_score(targets, scores, average="micro"))
    assert set(got.per_label) == {"a", "c", "e"}
    assert np.isnan(roc_auc_per_label(targets, scores)[[1, 3]]).all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tagging_metrics(targets, scores, warn=False)


def test_bad_inputs_raise():
    with pytest.raises(MetricInputError):
        tagging_metrics(np.zeros((4, 2)), np.zeros((4, 3)))
    with pytest.raises(MetricInputError, match="no label"):
        tagging_metrics(np.zeros((4, 2)), np.zeros((4, 2)))
    with pytest.raises(MetricInputError, match="0/1"):
        tagging_metrics(np.full((4, 2), 2), np.zeros((4, 2)))
    with pytest.raises(MetricInputError, match="NaN"):
        tagging_metrics(np.eye(2), np.array([[np.nan, 0], [0, 1]]))


def test_fractions_shown_as_percent_in_tables():
    table = markdown_table([{"model": "m", "ROC-AUC": 0.91234, "mAP": 0.5}], ["model", "ROC-AUC", "mAP"])
    assert "| m | 91.23 | 50.00 |" in table
    assert table.splitlines()[1] == "|---|---|---|"
