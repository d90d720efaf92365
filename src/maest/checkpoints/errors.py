"""The one error family of ``maest.checkpoints``: whatever the format, a bad file raises a CheckpointError
whose message names the file and what is wrong with it (the CLI prints it as one line)."""

from __future__ import annotations


class CheckpointError(RuntimeError):
    """A checkpoint is missing, malformed, or does not match the architecture it claims."""


class EffNetCheckpointError(CheckpointError, ValueError):
    """A file was expected to hold an EffNet baseline but holds something else (a ValueError too, as before)."""


def one_line(error: BaseException) -> str:
    """A foreign library's error message folded onto one line (safetensors' and pickle's can span several)."""
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
