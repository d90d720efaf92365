"""Failure logs: ``path<TAB>reason`` per line, written atomically, merged by path across runs.

One writer for extraction (``failures.tsv`` in the output folder), the mel store and evaluation's
feature caches. A path keeps its spaces (music files often have runs of them) and loses only tabs
and line breaks; a reason is folded onto one line. Merging keeps earlier failures of paths this run
did not look at, so rerunning on a subset does not erase them.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from maest.atomic import atomic_write_text

FAILURES_FILE = "failures.tsv"


def _path_text(path: object) -> str:
    return str(path).translate({9: " ", 10: " ", 13: " "})


def _reason_text(reason: object) -> str:
    return " ".join(str(reason).split())


def format_failures(failures: Iterable[tuple[str, str]]) -> str:
    """The TSV text of ``(path, reason)`` pairs, one line each."""
    return "".join(f"{_path_text(path)}\t{_reason_text(reason)}\n" for path, reason in failures)


def read_failures(path: str | os.PathLike) -> dict[str, str]:
    """``{path: reason}`` from a failures file (empty when it does not exist)."""
    path = Path(path)
    if not path.is_file():
        return {}
    rows = (line.split("\t", 1) for line in path.read_text(encoding="utf-8").splitlines() if line)
    return {row[0]: row[1] if len(row) > 1 else "" for row in rows}


def write_failures(
    target: str | os.PathLike,
    failures: Mapping[str, str] | Iterable[tuple[str, str]],
    *,
    merge: bool = False,
    resolved: Iterable[str] = (),
    keep_empty: bool = False,
) -> dict[str, str]:
    """Write ``failures`` to ``target`` atomically; returns what the file now holds.

    ``merge``: keep the file's earlier entries, except those of ``resolved`` paths (the ones this run
    looked at: their outcome now is the new one). An empty result removes the file unless ``keep_empty``.
    """
    target = Path(target)
    pairs = list(failures.items()) if isinstance(failures, Mapping) else list(failures)
    merged: dict[str, str] = {}
    if merge:
        gone = {_path_text(p) for p in resolved}
        merged = {p: r for p, r in read_failures(target).items() if p not in gone}
    for path, reason in pairs:
        merged[_path_text(path)] = _reason_text(reason)
    if not merged and not keep_empty:
        target.unlink(missing_ok=True)
    else:
        atomic_write_text(target, format_failures(merged.items()))
    return merged
