"""Validation metrics of the paper: macro mAP and macro ROC-AUC over the labels present."""

from __future__ import annotations

import numpy as np


def macro_scores(targets: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """``{"mAP", "ROC-AUC", "labels"}`` macro-averaged over labels with both positives and negatives.

    Labels absent from (or present in every track of) the split have no defined AP/AUC and are skipped,
    as scikit-learn would otherwise warn and return 0 or nan for them.
    """
    from sklearn.metrics import average_precision_score, roc_auc_score

    targets = np.asarray(targets).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    if targets.shape != scores.shape or targets.ndim != 2:
        raise ValueError(f"targets {targets.shape} and scores {scores.shape} must be equal (tracks, labels) arrays")
    positives = targets.sum(axis=0)
    keep = (positives > 0) & (positives < targets.shape[0])
    if not keep.any():
        return {"mAP": float("nan"), "ROC-AUC": float("nan"), "labels": 0}
    y, s = targets[:, keep], scores[:, keep]
    return {
        "mAP": float(average_precision_score(y, s, average="macro")),
        "ROC-AUC": float(roc_auc_score(y, s, average="macro")),
        "labels": int(keep.sum()),
    }
