"""Tagging a collection's files: the model runs on the files still to do, each result is merged into the file.

The same loop as ``maest tag`` (:func:`maest.extraction.run_files`: decode workers, segments batched
across tracks, results in input order), then :func:`maest.library.update.update_file_tags` per track.
Before any model work, files maest cannot tag (format, read-only file or folder, hard links) are
reported, and files already tagged with the same settings (``MAEST_SETTINGS``) are skipped: a rerun
does no model work and changes nothing. Failures are appended to ``failures_file`` as they happen.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from maest.library.choice import TagChoice, choose_labels, field_values, head_labels
from maest.library.formats import TagWriteError, open_tags
from maest.library.update import FileChange, check_writable, stored_settings, update_file_tags


@dataclass
class WriteTagsSummary:
    """What a run did; ``failures`` holds ``(path, reason)``, also in the failures file."""

    written: int = 0
    unchanged: int = 0
    skipped: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    elapsed_seconds: float = 0.0
    model_seconds: float = 0.0

    @property
    def failed(self) -> int:
        return len(self.failures)

    def line(self, dry_run: bool = False) -> str:
        verb = "would change" if dry_run else "tagged"
        return (f"{verb} {self.written} files, {self.unchanged} unchanged, {self.skipped} already tagged with these "
                f"settings, {self.failed} failed; {self.elapsed_seconds:.1f} s")


def tag_settings(pipeline: Any, choice: TagChoice, head: Any = None, spec: Any = None) -> str:
    """The ``MAEST_SETTINGS`` text: the weights, the head (if any), the selection and the embedding spec's
    fields off their defaults (overlap, crop, segment rule, precision, resampler); equal text, equal tags."""
    from maest import __version__

    text = f"maest {__version__}; model {pipeline.config.name} weights {pipeline.fingerprint[:16]}; {choice.describe()}"
    if spec is not None:
        off = ("" if spec.overlap == 0.5 else f"-o{spec.overlap}") + ("" if spec.crop is None else f"-{spec.crop}")
        off += spec.suffix()
        if off:
            text += f"; spec {off.lstrip('-')}"
    if head is not None:
        identity = json.dumps([head.labels, None if head.thresholds is None else [round(float(t), 6) for t in
                                                                                    head.thresholds]])
        text += f"; head {hashlib.sha1(identity.encode()).hexdigest()[:16]}"
    return text


def write_collection_tags(
    inputs: str | os.PathLike | Sequence[str | os.PathLike],
    pipeline: Any,
    choice: TagChoice,
    *,
    head: Any = None,
    overlap: float = 0.5,
    crop: str | None = None,
    segments: str = "maest",
    replace: bool = False,
    dry_run: bool = False,
    keep_mtime: bool = False,
    extensions: Sequence[str] | None = None,
    batch_size: int = 8,
    workers: int = 0,
    failures_file: str | os.PathLike | None = None,
    progress: bool = False,
    report: Callable[[FileChange], None] | None = None,
    resampler: str | None = None,
) -> WriteTagsSummary:
    """Write each file's chosen labels (:class:`TagChoice`; an own ``head``'s "on" labels) into its tags.

    ``replace``: the chosen fields hold maest's values only (the user's go); ``dry_run``: nothing is
    written, ``report`` still sees every change; ``keep_mtime``: the files keep their modification time.
    ``resampler``: as in ``maest tag`` (with a head: the head's, a different one is refused).
    """
    from tqdm.auto import tqdm

    from maest.extraction import find_audio, run_files
    from maest.failures import append_failures, write_failures
    started = time.perf_counter()
    summary = WriteTagsSummary()
    if head is not None:  # the run's one spec, checked before any file is read
        from maest.heads.spec import run_spec
        from maest.heads.tag import check_head_options

        check_head_options(overlap, crop, segments)
        mode, options = "embed", run_spec(head.spec, resampler)
    else:
        mode, options = "tag", pipeline.spec(blocks=None, overlap=overlap, crop=crop, segments=segments,
                                             resampler=resampler)
    settings = tag_settings(pipeline, choice, head, options)
    failures_path = Path(failures_file) if failures_file is not None else None

    def fail(path: str, reason: str) -> None:
        summary.failures.append((path, reason))
        if failures_path is not None:
            append_failures(failures_path, [(path, reason)])

    items, missing = find_audio(inputs, extensions)
    for path, reason in missing:
        fail(path, reason)
    todo: list[str] = []
    for item in items:  # cheap checks first: no model work for a file that cannot be tagged
        path = str(item.path)
        try:
            open_tags(path)
            if not dry_run:
                check_writable(Path(os.path.realpath(path)))
        except TagWriteError as error:
            fail(path, str(error))
            continue
        if not replace and stored_settings(path) == settings:
            summary.skipped += 1
        else:
            todo.append(path)

    bar = tqdm(total=len(todo), unit="file", disable=not progress, dynamic_ncols=True)
    try:
        if todo:
            results = run_files(todo, pipeline, mode, options, None, batch_size, workers=workers)
            model_started = time.perf_counter()
            for path, result, reason in results:
                summary.model_seconds += time.perf_counter() - model_started
                bar.update(1)
                if reason is None:
                    _write_one(path, result.track, pipeline, choice, head, settings, replace, dry_run, keep_mtime,
                               summary, fail, report)
                else:
                    fail(path, reason)
                model_started = time.perf_counter()
    finally:
        bar.close()
        if failures_path is not None:
            settled = [str(item.path) for item in items] + [path for path, _ in missing]
            write_failures(failures_path, summary.failures, merge=True, resolved=settled)
        summary.elapsed_seconds = time.perf_counter() - started
    return summary


def _write_one(path: str, track: Any, pipeline: Any, choice: TagChoice, head: Any, settings: str, replace: bool,
               dry_run: bool, keep_mtime: bool, summary: WriteTagsSummary, fail: Callable[[str, str], None],
               report: Callable[[FileChange], None] | None) -> None:
    if head is not None:
        from maest.heads.tag import head_tags

        chosen = head_labels(head_tags(head, track), choice)
    else:
        chosen = choose_labels(track, pipeline.labels, choice)
    try:
        change = update_file_tags(path, field_values(chosen, choice), settings, replace=replace, dry_run=dry_run,
                                  keep_mtime=keep_mtime)
    except TagWriteError as error:
        fail(path, str(error))
        return
    if change.changes:
        summary.written += 1
    else:
        summary.unchanged += 1
    if report is not None:
        report(change)
