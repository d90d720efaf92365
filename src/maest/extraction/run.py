"""The local extraction loop: files -> decode workers -> batching core -> sink; resumable, bad files reported.

:func:`extract` embeds files into an output folder (:mod:`.sinks`), :func:`tag_files` yields tag
probabilities in input order. Both are thin drivers over :mod:`maest.decode`, :mod:`maest.batching`
and the sinks, which a second engine (e.g. Ray Data) reuses as they are.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from maest.batching import TrackResult
from maest.extraction.files import check_collisions, find_audio, shard_suffix, take_shard
from maest.extraction.resume import check_settings, model_name, pending_items, run_settings
from maest.extraction.sinks import FATAL_WRITE_ERRORS, FORMATS, Format, Sink, open_sink
from maest.extraction.tracks import process
from maest.failures import FAILURES_FILE, write_failures
from maest.inference import EmbedOptions, MaestPipeline, load_model
from maest.model import TOKEN_NAMES


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

    def line(self) -> str:
        speed = self.audio_seconds / self.elapsed_seconds if self.elapsed_seconds > 0 else 0.0
        return (
            f"{self.succeeded} succeeded, {self.failed} failed, {self.skipped} skipped; "
            f"{self.audio_seconds / 3600:.3f} h of audio in {self.elapsed_seconds:.1f} s ({speed:.1f} audio s/s)"
        )


def failures_path(output_dir: Path, suffix: str = "") -> Path:
    """``failures.tsv`` of a run (``failures.shard-i-of-n.tsv`` for a shard)."""
    return output_dir / (Path(FAILURES_FILE).stem + suffix + ".tsv")


def write_result(sink: Sink, key: str, result: TrackResult, summary: ExtractSummary, path: str) -> None:
    """Hand one result to the sink and count it; an output that cannot be written fails that track
    only, unless the whole folder is unwritable (disk full, read-only), which stops the run."""
    try:
        sink.add(key, result)
    except OSError as error:
        if error.errno in FATAL_WRITE_ERRORS:
            raise
        summary.failed += 1  # this track's output cannot be written (name too long, permissions)
        summary.failures.append((path, f"cannot write its output: {error}"))
    else:
        summary.succeeded += 1
        summary.audio_seconds += result.duration


def extract(
    inputs: Sequence[str | os.PathLike],
    output_dir: str | os.PathLike,
    model: str | os.PathLike | MaestPipeline,
    *,
    blocks: int | None = 7,
    tokens: Sequence[str] = TOKEN_NAMES,
    patchout_time: int = 1,
    patchout_freq: Sequence[int] = (),
    overlap: float = 0.5,
    crop: str | None = None,
    per_segment: bool = False,
    output_format: Format = "npy",
    extensions: Sequence[str] | None = None,
    batch_size: int = 8,
    device: str | None = None,
    workers: int = 0,
    shard: tuple[int, int] | None = None,
    progress: bool = True,
) -> ExtractSummary:
    """Embed every audio file under ``inputs`` into ``output_dir``; rerunning skips finished tracks.

    Outputs: ``npy`` (one per track, mirroring the input tree under each given root), ``npz``
    (embedding, segment start times, duration[, segment embeddings]) or ``parquet`` (one
    ``embeddings.parquet`` table). Unreadable files go to ``failures.tsv`` and the run goes on.
    ``shard=(i, n)`` takes every n-th file from the i-th (0-based), for n independent processes or
    GPUs writing into one folder; table and failures file names then end in ``.shard-i-of-n``.
    """
    if output_format not in FORMATS:
        raise ValueError(f"output_format must be one of {FORMATS}, got {output_format!r}")
    started = time.perf_counter()
    output_dir = Path(output_dir)
    options = EmbedOptions(blocks, tokens, patchout_time, tuple(patchout_freq), overlap, crop)
    suffix = shard_suffix(shard)
    sink = open_sink(output_dir, output_format, per_segment, suffix)  # parquet: fails here without pyarrow
    items, missing = find_audio(inputs, extensions)
    check_collisions(items, output_format)
    items, missing = take_shard(items, missing, shard)
    pipeline = model if isinstance(model, MaestPipeline) else load_model(model, device, batch_size)
    run_batch = pipeline.embedder(options)  # checks the options before the output folder is claimed
    output_dir.mkdir(parents=True, exist_ok=True)
    check_settings(output_dir, run_settings(model_name(model), pipeline.config.segment_frames, options, per_segment,
                                            output_format))

    summary = ExtractSummary(output_dir=output_dir, failures=list(missing), failed=len(missing))
    todo, summary.skipped = pending_items(items, sink)

    from tqdm.auto import tqdm

    bar = tqdm(total=len(items), initial=summary.skipped, unit="file", disable=not progress, dynamic_ncols=True)
    work_started = time.perf_counter()
    try:
        batcher = pipeline.batcher(run_batch, options, batch_size)
        for item, result, reason in process(todo, batcher, pipeline.decoder, workers):
            if reason is not None:
                summary.failed += 1
                summary.failures.append((str(item.path), reason))
            else:
                write_result(sink, item.key, result, summary, str(item.path))
            elapsed = time.perf_counter() - work_started
            bar.set_postfix_str(f"{summary.audio_seconds / 3600:.2f} h audio, "
                                f"{summary.audio_seconds / max(elapsed, 1e-9):.1f} audio s/s, {summary.failed} failed")
            bar.update(1)
        sink.close()
    finally:
        bar.close()
        sink.flush()  # finished tracks are kept (a parquet part) even when the run stops early
        # Merged by path: failures of inputs this run did not look at (an earlier, larger run) stay.
        write_failures(failures_path(output_dir, suffix), summary.failures, merge=True,
                       resolved=[str(item.path) for item in items] + [path for path, _ in missing])
        summary.elapsed_seconds = time.perf_counter() - started
    return summary


def tag_files(
    inputs: Sequence[str | os.PathLike],
    model: str | os.PathLike | MaestPipeline,
    *,
    overlap: float = 0.5,
    crop: str | None = None,
    extensions: Sequence[str] | None = None,
    batch_size: int = 8,
    device: str | None = None,
    workers: int = 0,
) -> Iterator[tuple[str, np.ndarray | None, str | None]]:
    """``(path, probabilities, None)`` or ``(path, None, reason)`` per file, in input order.

    Segments are batched across files, so tracks finish out of order; each is held back only until
    the tracks before it are done.
    """
    items, missing = find_audio(inputs, extensions)
    for path, reason in missing:
        yield path, None, reason
    pipeline = model if isinstance(model, MaestPipeline) else load_model(model, device, batch_size)
    options = EmbedOptions(blocks=None, overlap=overlap, crop=crop)
    batcher = pipeline.batcher(pipeline.tagger(options), options, batch_size)
    position = {id(item): index for index, item in enumerate(items)}
    finished: dict[int, tuple[str, np.ndarray | None, str | None]] = {}
    next_index = 0
    for item, result, reason in process(items, batcher, pipeline.decoder, workers):
        finished[position[id(item)]] = (str(item.path), result.track if result is not None else None, reason)
        while next_index in finished:
            yield finished.pop(next_index)
            next_index += 1
