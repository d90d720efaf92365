"""One TSV field per value: a tab or line break inside a path must not split or add a row.

Backslash escapes as PostgreSQL's text COPY and "linear TSV" write them (``\\t``, ``\\n``, ``\\r``,
``\\\\``), so any reader can undo them and a plain ``cut -f1`` still sees one path per field.
"""

from __future__ import annotations

_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def tsv_field(value: object) -> str:
    """``value`` as text with backslash, tab, newline and carriage return escaped."""
    return str(value).translate(_ESCAPES)
