"""Errors of a batch extraction run (one bad file is not an error: it is reported and skipped)."""

from __future__ import annotations


class ExtractError(RuntimeError):
    """The run cannot start or go on (as opposed to one bad file, which is only reported)."""


class OutputCollisionError(ExtractError):
    """Two input files would write the same output file."""


class SettingsMismatchError(ExtractError):
    """The output folder holds embeddings made with other settings; resuming would mix them."""


class MissingDependencyError(ExtractError):
    """An optional dependency needed by the chosen output format is not installed."""
