"""Moved to :mod:`maest.metrics` (below both training and evaluation); kept so old imports work."""

from maest.metrics import (  # noqa: F401
    AbsentLabelsWarning,
    MetricInputError,
    TaggingScores,
    average_precision_per_label,
    macro_roc_auc,
    macro_scores,
    markdown_table,
    present_labels,
    roc_auc_per_label,
    tagging_metrics,
)

__all__ = [
    "AbsentLabelsWarning", "MetricInputError", "TaggingScores", "average_precision_per_label", "macro_roc_auc",
    "macro_scores", "markdown_table", "present_labels", "roc_auc_per_label", "tagging_metrics",
]
