"""The one family of errors a head raises: a command prints one ``HeadError`` line, never a traceback."""

from __future__ import annotations


class HeadError(ValueError):
    """Anything wrong with a head: its folder, its files, the data it is fitted on or the model it is applied to."""


class HeadFormatError(HeadError):
    """A head folder is missing files, holds damaged ones or something this version cannot read."""
