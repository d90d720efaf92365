"""Decision thresholds chosen on validation and the validation scores a fit reports.

Multi-label: per-label threshold of maximum F1, ROC-AUC/mAP (``maest.evaluate.metrics``, equal to
scikit-learn's). Single-label: argmax, accuracy, macro-F1 and the confusion matrix.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from maest.evaluate.metrics import MetricInputError, tagging_metrics

DEFAULT_THRESHOLD = 0.5  # for labels without positives (or negatives) in validation: nothing to tune on


def best_f1_thresholds(targets: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """Per-label threshold maximising F1 on ``(tracks, labels)``; and the labels left at the 0.5 default.

    Of the thresholds with the best F1, the one midway between the lowest such cut and the next lower score.
    """
    from sklearn.metrics import precision_recall_curve

    targets = np.asarray(targets, dtype=bool)
    thresholds = np.full(targets.shape[1], DEFAULT_THRESHOLD)
    untuned = []
    for j in range(targets.shape[1]):
        positives = int(targets[:, j].sum())
        if positives == 0 or positives == len(targets):
            untuned.append(j)
            continue
        precision, recall, cuts = precision_recall_curve(targets[:, j], scores[:, j])
        f1 = 2 * precision[:-1] * recall[:-1] / np.maximum(precision[:-1] + recall[:-1], 1e-12)
        cut = float(cuts[int(np.argmax(f1))])  # first maximum: the lowest threshold of best F1
        below = scores[:, j][scores[:, j] < cut]
        # Any threshold between the best cut and the next lower score gives the same validation F1;
        # the midpoint leaves a margin on both sides (the cut itself, often one positive's score,
        # overfits a small validation split).
        thresholds[j] = (cut + float(below.max())) / 2 if below.size else cut
    return thresholds, untuned


def multi_label_scores(targets: np.ndarray, scores: np.ndarray, thresholds: np.ndarray, labels: Sequence[str]) -> dict:
    """ROC-AUC/mAP (macro and micro, fractions) and F1 at ``thresholds`` on validation."""
    from sklearn.metrics import f1_score

    targets = np.asarray(targets, dtype=bool)
    decided = scores >= thresholds
    out: dict = {"tracks": int(len(targets))}
    try:
        scored = tagging_metrics(targets, scores, labels, warn=False)
    except MetricInputError as error:
        out["note"] = f"no ROC-AUC/mAP: {error}"
    else:
        out.update(roc_auc_macro=scored.roc_auc_macro, pr_auc_macro=scored.pr_auc_macro,
                   roc_auc_micro=scored.roc_auc_micro, pr_auc_micro=scored.pr_auc_micro,
                   unscored_labels=scored.skipped,
                   per_label={k: dict(v) for k, v in scored.per_label.items()})
    out["f1_macro"] = float(f1_score(targets, decided, average="macro", zero_division=0))
    out["f1_micro"] = float(f1_score(targets, decided, average="micro", zero_division=0))
    for j, name in enumerate(labels):
        entry = out.setdefault("per_label", {}).setdefault(name, {})
        entry["threshold"] = float(thresholds[j])
        entry["f1"] = float(f1_score(targets[:, j], decided[:, j], zero_division=0))
        entry["positives"] = int(targets[:, j].sum())
    return out


def single_label_scores(targets: np.ndarray, scores: np.ndarray, labels: Sequence[str]) -> dict:
    """Accuracy, macro-F1 and the confusion matrix (rows: true class, columns: predicted) of the argmax."""
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

    truth = np.argmax(np.asarray(targets, dtype=bool), axis=1)
    guess = np.argmax(scores, axis=1)
    every = list(range(len(labels)))
    matrix = confusion_matrix(truth, guess, labels=every)
    present = sorted(set(truth.tolist()))
    return {
        "tracks": int(len(truth)),
        "accuracy": float(accuracy_score(truth, guess)),
        "f1_macro": float(f1_score(truth, guess, labels=present, average="macro", zero_division=0)),
        "confusion": matrix.tolist(),
        "per_label": {labels[j]: {"tracks": int(matrix[j].sum()),
                                  "recall": float(matrix[j, j] / matrix[j].sum()) if matrix[j].sum() else None}
                      for j in every},
    }


def confusion_summary(confusion: Sequence[Sequence[int]], labels: Sequence[str], top: int = 5) -> list[str]:
    """Lines naming the most frequent confusions: ``"rock -> pop: 3 of 10"``."""
    matrix = np.asarray(confusion)
    pairs = [(int(matrix[i, j]), i, j) for i in range(len(labels)) for j in range(len(labels)) if i != j and matrix[i, j]]
    pairs.sort(key=lambda p: (-p[0], p[1], p[2]))
    return [f"{labels[i]} -> {labels[j]}: {n} of {int(matrix[i].sum())}" for n, i, j in pairs[:top]]
