"""Downstream evaluation: split loaders, the paper's MLP probe, tagging metrics and experiments.

Entry point: :func:`maest.evaluate.run_eval` (``maest eval``); imports are lazy so that
``import maest.evaluate`` does not pull in torch, scikit-learn or matplotlib.
"""

from __future__ import annotations

from typing import Any

__all__ = ["run_eval", "load_dataset", "check_audio", "tagging_metrics", "train_probe", "grid_search"]

_LAZY = {
    "run_eval": "maest.evaluate.runner",
    "load_dataset": "maest.evaluate.datasets",
    "check_audio": "maest.evaluate.datasets",
    "tagging_metrics": "maest.metrics",
    "train_probe": "maest.evaluate.probe",
    "grid_search": "maest.evaluate.probe",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'maest.evaluate' has no attribute {name!r}")
