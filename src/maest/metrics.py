"""Multi-label tagging metrics: macro/micro ROC-AUC and mAP, as fractions, equal to scikit-learn's.

Labels without both a positive and a negative example in the evaluated split have no ROC-AUC; they
are skipped from the macro averages and listed (with a warning) instead of crashing the run.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np


class MetricInputError(ValueError):
    """Targets and scores do not describe the same multi-label problem."""


class AbsentLabelsWarning(UserWarning):
    """Some labels have no positive or no negative example in the evaluated split."""


@dataclass
class TaggingScores:
    """Fractions in [0, 1]; ``skipped`` names labels left out of the macro averages."""

    roc_auc_macro: float
    pr_auc_macro: float
    roc_auc_micro: float
    pr_auc_micro: float
    skipped: list[str] = field(default_factory=list)
    per_label: dict[str, dict[str, float]] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    def percent(self) -> dict[str, float]:
        """The four averages in percent, rounded for tables."""
        return {k: round(100.0 * getattr(self, k), 2) for k in ("roc_auc_macro", "pr_auc_macro", "roc_auc_micro", "pr_auc_micro")}


def _check(targets: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    targets = np.asarray(targets)
    scores = np.asarray(scores, dtype=np.float64)
    if targets.ndim != 2 or scores.shape != targets.shape:
        raise MetricInputError(f"targets {targets.shape} and scores {scores.shape} must be equal (N, labels) arrays")
    if not np.all(np.isfinite(scores)):
        raise MetricInputError("scores contain NaN or infinity")
    if not np.isin(targets, (0, 1)).all():
        raise MetricInputError("targets must be 0/1 or boolean")
    return targets.astype(bool), scores


def present_labels(targets: np.ndarray) -> np.ndarray:
    """Boolean mask of labels having at least one positive and one negative example."""
    targets = np.asarray(targets, dtype=bool)
    positives = targets.sum(axis=0)
    return (positives > 0) & (positives < targets.shape[0])


def roc_auc_per_label(targets: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """ROC-AUC of every label at once (Mann-Whitney U with tie-averaged ranks); NaN where absent.

    Vectorised so the probe can score validation every epoch cheaply; equals
    ``sklearn.metrics.roc_auc_score`` per label (tested).
    """
    from scipy.stats import rankdata

    targets, scores = _check(targets, scores)
    ranks = rankdata(scores, axis=0)  # average ranks for ties, as the ROC trapezoid counts them
    positives = targets.sum(axis=0).astype(np.float64)
    negatives = targets.shape[0] - positives
    rank_sum = np.where(targets, ranks, 0.0).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        auc = (rank_sum - positives * (positives + 1) / 2.0) / (positives * negatives)
    auc[~present_labels(targets)] = np.nan
    return auc


def average_precision_per_label(targets: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Average precision of every label (scikit-learn's step-wise definition); NaN where absent."""
    from sklearn.metrics import average_precision_score

    targets, scores = _check(targets, scores)
    present = present_labels(targets)
    out = np.full(targets.shape[1], np.nan)
    for j in np.flatnonzero(present):
        out[j] = average_precision_score(targets[:, j], scores[:, j])
    return out


def macro_roc_auc(targets: np.ndarray, scores: np.ndarray) -> float:
    """Macro ROC-AUC over present labels (NaN if none); used for probe model selection."""
    values = roc_auc_per_label(targets, scores)
    return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")


def macro_scores(targets: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """``{"mAP", "ROC-AUC", "labels"}`` over present labels (NaN when none): per-epoch validation in training."""
    present = present_labels(np.asarray(targets, dtype=bool))
    if not present.any():
        return {"mAP": float("nan"), "ROC-AUC": float("nan"), "labels": 0}
    return {
        "mAP": float(np.nanmean(average_precision_per_label(targets, scores))),
        "ROC-AUC": float(np.nanmean(roc_auc_per_label(targets, scores))),
        "labels": int(present.sum()),
    }


def tagging_metrics(
    targets: np.ndarray, scores: np.ndarray, labels: Sequence[str] | None = None, warn: bool = True
) -> TaggingScores:
    """Macro and micro ROC-AUC and mAP of ``scores`` (N, C) against 0/1 ``targets`` (N, C).

    Macro averages run over labels with both classes present; the others are returned in
    ``skipped``. Micro averages pool every (track, label) pair, all labels included, as
    MTG-Jamendo's evaluation script does.
    """
    from sklearn.metrics import average_precision_score, roc_auc_score

    targets, scores = _check(targets, scores)
    n_labels = targets.shape[1]
    labels = [str(i) for i in range(n_labels)] if labels is None else [str(x) for x in labels]
    if len(labels) != n_labels:
        raise MetricInputError(f"{len(labels)} label names for {n_labels} columns")
    present = present_labels(targets)
    if not present.any():
        raise MetricInputError("no label has both positive and negative examples; nothing to score")
    skipped = [labels[j] for j in np.flatnonzero(~present)]
    if skipped and warn:
        warnings.warn(
            f"{len(skipped)} label(s) lack positives or negatives in this split and are left out of the "
            f"macro averages: {', '.join(skipped[:10])}{' ...' if len(skipped) > 10 else ''}",
            AbsentLabelsWarning,
            stacklevel=2,
        )
    roc = roc_auc_per_label(targets, scores)
    ap = average_precision_per_label(targets, scores)
    flat_targets, flat_scores = targets.ravel(), scores.ravel()
    return TaggingScores(
        roc_auc_macro=float(np.nanmean(roc)),
        pr_auc_macro=float(np.nanmean(ap)),
        roc_auc_micro=float(roc_auc_score(flat_targets, flat_scores)),
        pr_auc_micro=float(average_precision_score(flat_targets, flat_scores)),
        skipped=skipped,
        per_label={labels[j]: {"roc_auc": float(roc[j]), "pr_auc": float(ap[j])} for j in np.flatnonzero(present)},
    )


def markdown_table(rows: Sequence[dict], columns: Sequence[str]) -> str:
    """A GitHub Markdown table; floats in [0, 1] under metric columns are shown in percent."""
    def cell(key: str, value) -> str:
        if isinstance(value, float) and ("auc" in key.lower() or "map" in key.lower()):
            return f"{100.0 * value:.2f}"
        if isinstance(value, float):
            return f"{value:.4g}"
        return str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(cell(c, row.get(c, "")) for c in columns) + " |")
    return "\n".join(lines) + "\n"
