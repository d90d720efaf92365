"""The extraction driver: files -> an engine -> sink; resumable, bad files reported.

:func:`extract` embeds files into an output folder (:mod:`.sinks`), :func:`tag_files` yields tag
probabilities in input order. Both are thin drivers: an :mod:`engine <maest.extraction.engines>`
(local decode workers and model, or a Ray cluster) computes the tracks; settings, resume, sinks and
failures stay here, the same for every engine.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from maest.batching import TrackResult
from maest.extraction.engines import Engine, load_pipeline, uses_engine
from maest.extraction.errors import NonFiniteOutputError, OutputNotWritableError
from maest.extraction.files import (AudioItem, check_collisions, find_audio, folders_read_again, shard_suffix,
                                    take_shard)
from maest.extraction.resume import check_settings, model_name, pending_items, run_settings
from maest.extraction.sinks import FATAL_WRITE_ERRORS, FORMATS, Format, Sink, open_sink
from maest.failures import FAILURES_FILE, append_failures, read_failures, write_failures
from maest.inference import EmbedOptions, MaestPipeline
from maest.model import TOKEN_NAMES
from maest.precision import PrecisionChoice, describe
from maest.spec import EmbeddingSpec


@dataclass
class ExtractSummary:
    """What a run did; ``failures`` holds ``(path, reason)`` pairs, also written to failures.tsv."""

    succeeded: int = 0
    failed: int = 0
    skipped: int = 0
    audio_seconds: float = 0.0
    elapsed_seconds: float = 0.0
    failures: list[tuple[str, str]] = field(default_factory=list)
    output_dir: Path | None = None
    precision: str = ""  # "precision bf16 (auto: this CPU has amx_bf16)": which precision ran and why

    def line(self) -> str:
        speed = self.audio_seconds / self.elapsed_seconds if self.elapsed_seconds > 0 else 0.0
        return (
            f"{self.succeeded} succeeded, {self.failed} failed, {self.skipped} skipped; "
            f"{self.audio_seconds / 3600:.3f} h of audio in {self.elapsed_seconds:.1f} s ({speed:.1f} audio s/s)"
            + (f"; {self.precision}" if self.precision else "")
        )


def precision_phrase(pipeline: MaestPipeline) -> str:
    """Which precision ``pipeline`` runs at and why, for summary lines."""
    return describe(PrecisionChoice(pipeline.precision, getattr(pipeline, "precision_reason", "asked")))


def failures_path(output_dir: Path, suffix: str = "") -> Path:
    """``failures.tsv`` of a run (``failures.shard-i-of-n.tsv`` for a shard)."""
    return output_dir / (Path(FAILURES_FILE).stem + suffix + ".tsv")


def write_result(sink: Sink, key: str, result: TrackResult, summary: ExtractSummary, path: str,
                 failures_file: Path | None = None) -> None:
    """Hand one result to the sink and count it; an output that cannot be written (or holds NaN) fails
    that track only, unless the whole folder is unwritable (disk full, read-only), which stops the run."""
    try:
        sink.add(key, result)
    except NonFiniteOutputError as error:
        record_failure(summary, path, str(error), failures_file)
    except OSError as error:
        if error.errno in FATAL_WRITE_ERRORS:
            raise
        # this track's output cannot be written (name too long, permissions)
        record_failure(summary, path, f"cannot write its output: {error}", failures_file)
    else:
        summary.succeeded += 1
        summary.audio_seconds += result.duration


def record_failure(summary: ExtractSummary, path: str, reason: str, failures_file: Path | None = None) -> None:
    """Count a failed input and append it to ``failures_file`` at once (it survives a crash)."""
    summary.failed += 1
    summary.failures.append((path, reason))
    if failures_file is not None:
        append_failures(failures_file, [(path, reason)])


def check_run_options(batch_size: int, workers: int, shard: tuple[int, int] | None = None,
                      output_format: str = "npy") -> None:
    """Raise ValueError for options no run can use, before anything is loaded or written."""
    if output_format not in FORMATS:
        raise ValueError(f"output_format must be one of {FORMATS}, got {output_format!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a whole number >= 1, got {batch_size!r}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise ValueError(f"workers must be a whole number >= 0 (0: decode in this process), got {workers!r}")
    if shard is not None:
        if len(shard) != 2 or not all(isinstance(x, int) for x in shard):
            raise ValueError(f"shard must be (index, count), got {shard!r}")
        shard_suffix(shard)


def check_writable(output_dir: Path, appended: Sequence[Path] = ()) -> None:
    """Create and remove a probe file (and open the existing ``appended`` files for appending): an
    unwritable folder fails now, not after hours of work."""
    probe = output_dir / f".maest-write-probe-{os.getpid()}-{threading.get_ident()}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
        for path in appended:
            if path.exists():
                with open(path, "a"):
                    pass
    except OSError as error:
        raise OutputNotWritableError(
            f"cannot write into the output folder {output_dir} ({error.strerror or error}); "
            "make it writable or choose another output folder"
        ) from None


class Terminated(SystemExit):
    """SIGTERM during a run: raised in the main thread so the run cleans up as after Ctrl-C."""


@contextlib.contextmanager
def sigterm_stops_cleanly() -> Iterator[None]:
    """While a run goes on, SIGTERM raises :class:`Terminated` (exit status 143) instead of killing the
    process at once, so partial files are removed, failures written and parquet parts flushed. Only in
    the main thread and only when no one else handles SIGTERM; the old handler is restored after."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        yield
        return

    def stop(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not cut the cleanup short
        raise Terminated(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


@uses_engine
def extract(
    inputs: str | os.PathLike | Sequence[str | os.PathLike],
    output_dir: str | os.PathLike,
    model: str | os.PathLike | MaestPipeline,
    *,
    blocks: int | str | None = "auto",
    tokens: Sequence[str] = TOKEN_NAMES,
    patchout_time: int = 1,
    patchout_freq: Sequence[int] = (),
    overlap: float = 0.5,
    crop: str | None = None,
    segments: str = "maest",
    per_segment: bool = False,
    output_format: Format = "npy",
    extensions: Sequence[str] | None = None,
    batch_size: int = 8,
    device: str | None = None,
    workers: int = 0,
    shard: tuple[int, int] | None = None,
    progress: bool = True,
    precision: str | None = None,
    engine: Engine | str | None = None,
    resampler: str | None = None,
) -> ExtractSummary:
    """Embed every audio file under ``inputs`` into ``output_dir``; rerunning skips finished tracks.

    Outputs: ``npy`` (one per track, mirroring the input tree under each given root), ``npz``
    (embedding, segment start times, duration[, segment embeddings]) or ``parquet`` (one
    ``embeddings.parquet`` table). Unreadable files go to ``failures.tsv`` and the run goes on.
    ``shard=(i, n)`` takes every n-th file from the i-th (0-based), for n independent processes or
    GPUs writing into one folder; table and failures file names then end in ``.shard-i-of-n``.
    ``inputs`` may be one path. Every option is checked before the output folder is touched, and the
    folder must be writable before the first track; failures are appended to failures.tsv as they
    happen. A track whose mel or embedding holds NaN/inf fails. SIGTERM stops the run as Ctrl-C does.
    ``segments``: the segment rule, "maest" or "original" (:mod:`maest.segments`).
    ``precision`` (fp32, bf16, fp16; default by device) is part of the folder's settings.
    ``engine`` computes the tracks: an :class:`~maest.extraction.engines.Engine` or a name of
    :data:`~maest.extraction.engines.ENGINES` (default "local": ``workers`` decode processes and the
    model in this process); one made from a name is closed when the run ends.
    ``resampler`` ("essentia", the default, or "soxr") decodes audio not at 16 kHz; it is part of the settings.
    """
    check_run_options(batch_size, workers, shard, output_format)
    started = time.perf_counter()
    output_dir = Path(output_dir)
    EmbedOptions(blocks, tokens, patchout_time, tuple(patchout_freq), overlap, crop, segments)  # before any file
    suffix = shard_suffix(shard)
    sink = open_sink(output_dir, output_format, per_segment, suffix)  # parquet: fails here without pyarrow
    items, missing = find_audio(inputs, extensions)
    check_collisions(items, output_format)
    items, missing = take_shard(items, missing, shard)
    pipeline = load_pipeline(engine, model, device, batch_size, precision)
    # The run's one spec, checked against the model before the output folder is claimed ("auto" blocks
    # made the number it records; a precision other than the pipeline's is refused).
    explicit = {} if precision in (None, "auto") else {"precision": precision}
    spec = pipeline.spec(blocks=blocks, tokens=tokens, patchout_time=patchout_time, patchout_freq=tuple(patchout_freq),
                         overlap=overlap, crop=crop, segments=segments, resampler=resampler, **explicit)
    pipeline.embedder(spec)
    failures_file = failures_path(output_dir, suffix)
    output_dir.mkdir(parents=True, exist_ok=True)
    check_writable(output_dir, [failures_file])
    check_settings(output_dir, run_settings(model_name(model), pipeline.config.segment_frames, spec, per_segment,
                                            output_format))

    summary = ExtractSummary(output_dir=output_dir, precision=precision_phrase(pipeline))
    for path, reason in missing:
        record_failure(summary, path, reason, failures_file)
    todo, summary.skipped = pending_items(items, sink)
    # Paths whose outcome this run knows (already written, or processed now): their old failure
    # lines are replaced. Inputs a stopped run never reached keep theirs.
    waiting = {id(item) for item in todo}
    settled = [str(item.path) for item in items if id(item) not in waiting] + [path for path, _ in missing]
    settled += folders_read_again(list(read_failures(failures_file)), inputs, missing)

    from tqdm.auto import tqdm

    bar = tqdm(total=len(items), initial=summary.skipped, unit="file", disable=not progress, dynamic_ncols=True)
    work_started = time.perf_counter()
    with sigterm_stops_cleanly():
        try:
            results = engine.run(todo, pipeline, "embed", spec, batch_size)  # the spec carries the resampler
            for item, result, reason in results:
                if reason is not None:
                    record_failure(summary, str(item.path), reason, failures_file)
                else:
                    write_result(sink, item.key, result, summary, str(item.path), failures_file)
                settled.append(str(item.path))
                elapsed = time.perf_counter() - work_started
                bar.set_postfix_str(f"{summary.audio_seconds / 3600:.2f} h audio, "
                                    f"{summary.audio_seconds / max(elapsed, 1e-9):.1f} audio s/s, {summary.failed} failed")
                bar.update(1)
            sink.close()
        finally:
            bar.close()
            sink.flush()  # finished tracks are kept (a parquet part) even when the run stops early
            # Merged by path: failures of inputs this run did not settle (an earlier, larger run, or
            # tracks a stopped run never reached) stay; the lines this run appended fold into one per path.
            write_failures(failures_file, summary.failures, merge=True, resolved=settled)
            summary.elapsed_seconds = time.perf_counter() - started
    return summary


def tag_files(
    inputs: str | os.PathLike | Sequence[str | os.PathLike],
    model: str | os.PathLike | MaestPipeline,
    *,
    overlap: float = 0.5,
    crop: str | None = None,
    segments: str = "maest",
    extensions: Sequence[str] | None = None,
    batch_size: int = 8,
    device: str | None = None,
    workers: int = 0,
    precision: str | None = None,
    engine: Engine | str | None = None,
    resampler: str | None = None,
) -> Iterator[tuple[str, np.ndarray | None, str | None]]:
    """``(path, probabilities, None)`` or ``(path, None, reason)`` per file, in input order.

    Segments are batched across files, so tracks finish out of order; each is held back only until
    the tracks before it are done. ``inputs`` may be one path. A track whose probabilities would hold
    NaN or infinity is a failure.
    """
    check_run_options(batch_size, workers)
    options = EmbedOptions(blocks=None, overlap=overlap, crop=crop, segments=segments)
    results = run_files(inputs, model, "tag", options, extensions, batch_size, device, workers, precision,
                        engine=engine, resampler=resampler)
    return ((path, result.track if result is not None else None, reason) for path, result, reason in results)


def spec_of(pipeline: MaestPipeline, options: EmbedOptions, resampler: str | None = None) -> EmbeddingSpec:
    """``options`` as this pipeline's spec: a spec is checked against the pipeline (weights, precision) and
    ``resampler``; plain options get the pipeline's identity and ``resampler``."""
    if isinstance(options, EmbeddingSpec):
        if resampler is not None:
            options.check_matches(options.replace(resampler=resampler), "the spec given", "pass one resampler")
        options.check_matches(pipeline.spec(**spec_fields(options)),
                              "the spec given does not fit the pipeline")
        return options
    return pipeline.spec(**spec_fields(options), resampler=resampler)


def spec_fields(options: EmbedOptions) -> dict:
    """The per-segment fields of ``options`` (or of a spec, with its precision and resampler) as keywords."""
    names = [f.name for f in dataclasses.fields(options) if f.name not in ("weights", "family")]
    return {name: getattr(options, name) for name in names}


@uses_engine
def run_files(
    inputs: Sequence[str | os.PathLike] | str | os.PathLike,
    model: str | os.PathLike | MaestPipeline,
    mode: str,
    options: EmbedOptions,
    extensions: Sequence[str] | None = None,
    batch_size: int = 8,
    device: str | None = None,
    workers: int = 0,
    precision: str | None = None,
    engine: Engine | str | None = None,
    resampler: str | None = None,
) -> Iterator[tuple[str, TrackResult | None, str | None]]:
    """``(path, result, None)`` or ``(path, None, reason)`` per file, in input order, for ``mode``
    "embed" or "tag" (what :func:`tag_files` and own-label heads read), computed by ``engine``
    (as in :func:`extract`). ``options`` may be a whole :class:`~maest.spec.EmbeddingSpec`: its
    resampler then decodes (``resampler`` must not differ).

    Segments are batched across files, so tracks finish out of order; each is held back only until
    the tracks before it are done.
    """
    check_run_options(batch_size, workers)
    items, missing = find_audio(inputs, extensions)
    for path, reason in missing:
        yield path, None, reason
    pipeline = load_pipeline(engine, model, device, batch_size, precision)
    spec = spec_of(pipeline, options, resampler)
    position = {id(item): index for index, item in enumerate(items)}
    finished: dict[int, tuple[str, TrackResult | None, str | None]] = {}
    next_index = 0
    for item, result, reason in engine.run(items, pipeline, mode, spec, batch_size):
        finished[position[id(item)]] = (str(item.path), result, reason)
        while next_index in finished:
            yield finished.pop(next_index)
            next_index += 1
