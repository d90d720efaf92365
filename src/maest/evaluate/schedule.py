"""The probe's learning-rate schedule: :func:`maest.probe.probe_lr` (importable here as before)."""

from maest.probe import probe_lr  # noqa: F401
