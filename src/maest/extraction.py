"""Batch extraction over files and folders: resumable, atomic outputs, bad files reported, not fatal.

Decoding and mel computation run in DataLoader worker processes while the model runs; segments are
batched across files (:class:`maest.inference.SegmentRunner`). Every output is written to a
``.partial`` file and renamed into place, so an output that exists is complete and a rerun skips it.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from maest import audio, streaming
from maest.atomic import PARTIAL, atomic_write
from maest.inference import EmbedOptions, MaestPipeline, TrackResult, load_model
from maest.model import TOKEN_NAMES

Format = Literal["npy", "npz", "parquet"]
FORMATS = ("npy", "npz", "parquet")
SETTINGS_FILE = "maest-embed.json"
FAILURES_FILE = "failures.tsv"
TABLE_FILE = "embeddings.parquet"
PARTS_DIR = "embeddings.parts"
# Write errors that concern the whole output folder: stop the run rather than fail every track.
FATAL_WRITE_ERRORS = {errno.ENOSPC, errno.EROFS, errno.EDQUOT}


class ExtractError(RuntimeError):
    """The run cannot start or go on (as opposed to one bad file, which is only reported)."""


class OutputCollisionError(ExtractError):
    """Two input files would write the same output file."""


class SettingsMismatchError(ExtractError):
    """The output folder holds embeddings made with other settings; resuming would mix them."""


class MissingDependencyError(ExtractError):
    """An optional dependency needed by the chosen output format is not installed."""


@dataclass(frozen=True)
class AudioItem:
    """An input file and its key: its path relative to the root it was found under (posix)."""

    path: Path
    key: str


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


# -- finding files --------------------------------------------------------------------------------
def normalize_extensions(extensions: Sequence[str] | None) -> set[str]:
    """``["mp3", ".WAV"]`` -> ``{".mp3", ".wav"}``; None -> every extension :mod:`maest.audio` reads."""
    if extensions is None:
        return set(audio.AUDIO_EXTENSIONS)
    return {("." + e.lower().lstrip(".")) for e in extensions if e.strip()}


def find_audio(inputs: Sequence[str | os.PathLike], extensions: Sequence[str] | None = None) -> tuple[list[AudioItem], list[tuple[str, str]]]:
    """Files under ``inputs`` (folders recursively, sorted) with a wanted extension, and missing inputs.

    A file given directly is taken whatever its extension; its key is its name.
    """
    wanted = normalize_extensions(extensions)
    items: list[AudioItem] = []
    missing: list[tuple[str, str]] = []
    for given in inputs:
        root = Path(given)
        if root.is_dir():
            for path in sorted(p for p in _walk_files(root) if p.suffix.lower() in wanted and p.is_file()):
                items.append(AudioItem(path, path.relative_to(root).as_posix()))
        elif root.exists():
            items.append(AudioItem(root, root.name))
        else:
            missing.append((str(root), "no such file or folder"))
    return items, missing


def _walk_files(root: Path) -> Iterator[Path]:
    """Files under ``root``, following symlinked folders (``rglob`` skips them) but entering each
    real folder once, so link loops end."""
    seen: set[str] = set()
    for folder, subfolders, files in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:
            subfolders[:] = []
            continue
        seen.add(real)
        subfolders.sort()  # a deterministic walk: the same folder always gets the same keys
        yield from (Path(folder) / name for name in files)


def output_path(output_dir: Path, key: str, fmt: Format) -> Path:
    """Where one track's output goes: the input's relative path with the format's suffix."""
    return output_dir / Path(key).with_suffix("." + fmt)


def check_collisions(items: Sequence[AudioItem], fmt: Format) -> None:
    seen: dict[str, str] = {}
    clashes = []
    for item in items:
        target = Path(item.key).with_suffix("." + fmt).as_posix() if fmt != "parquet" else item.key
        if target in seen:
            clashes.append(f"{seen[target]} and {item.path} -> {target}")
        seen[target] = str(item.path)
    if clashes:
        raise OutputCollisionError(
            "several inputs would write the same output (rename them or extract them into separate "
            "output folders): " + "; ".join(clashes[:5]) + (" ..." if len(clashes) > 5 else "")
        )


def _exists(path: Path) -> bool:
    """Whether an output exists; a name the file system cannot hold does not (its write fails later)."""
    try:
        return path.exists()
    except OSError:
        return False


def _write_track(target: Path, fmt: Format, result: TrackResult, per_segment: bool) -> None:
    if fmt == "npy":
        array = result.outputs if per_segment else result.track
        atomic_write(target, lambda f: np.save(f, array))
    else:
        arrays = {"embedding": result.track, "segment_starts": result.start_seconds,
                  "duration": np.float64(result.duration)}
        if per_segment:
            arrays["segment_embeddings"] = result.outputs
        atomic_write(target, lambda f: np.savez(f, **arrays))


# -- parquet: parts written atomically during the run, one table at the end --------------------------
def _pyarrow():
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise MissingDependencyError("--format parquet needs pyarrow: pip install 'maest[parquet]'") from None
    return pa, pq


class ParquetSink:
    """Buffers finished tracks and writes them as part files; :meth:`consolidate` makes one table."""

    def __init__(self, output_dir: Path, per_segment: bool, part_tracks: int = 64, suffix: str = ""):
        self.pa, self.pq = _pyarrow()
        self.output_dir = output_dir
        self.table_path = output_dir / (Path(TABLE_FILE).stem + suffix + ".parquet")
        self.parts = output_dir / (Path(PARTS_DIR).stem + suffix + ".parts")
        self.per_segment = per_segment
        self.part_tracks = part_tracks
        self.rows: list[tuple[str, TrackResult]] = []

    def done_keys(self) -> set[str]:
        keys: set[str] = set()
        for path in self._part_files() + ([self.table_path] if self.table_path.exists() else []):
            keys.update(self.pq.read_table(path, columns=["path"]).column("path").to_pylist())
        return keys

    def _part_files(self) -> list[Path]:
        return sorted(self.parts.glob("*.parquet")) if self.parts.is_dir() else []

    def add(self, key: str, result: TrackResult) -> None:
        self.rows.append((key, result))
        if len(self.rows) >= self.part_tracks:
            self.flush()

    def _table(self, rows: list[tuple[str, TrackResult]]):
        pa = self.pa
        dim = rows[0][1].outputs.shape[1]
        flat = np.concatenate([r.track for _, r in rows]).astype(np.float32)
        columns = {
            "path": pa.array([k for k, _ in rows], pa.string()),
            "duration": pa.array([r.duration for _, r in rows], pa.float64()),
            "segments": pa.array([len(r.outputs) for _, r in rows], pa.int32()),
            "embedding": pa.FixedSizeListArray.from_arrays(pa.array(flat), dim),
        }
        if self.per_segment:
            counts = np.array([0] + [len(r.outputs) for _, r in rows])
            offsets = pa.array(np.cumsum(counts).astype(np.int32))
            starts = np.concatenate([r.start_seconds for _, r in rows])
            segs = np.concatenate([r.outputs for _, r in rows]).reshape(-1).astype(np.float32)
            columns["segment_starts"] = pa.ListArray.from_arrays(offsets, pa.array(starts, pa.float64()))
            columns["segment_embeddings"] = pa.ListArray.from_arrays(
                offsets, pa.FixedSizeListArray.from_arrays(pa.array(segs), dim))
        return pa.table(columns)

    def flush(self) -> None:
        if not self.rows:
            return
        table = self._table(self.rows)
        target = self.parts / f"part-{time.time_ns()}-{os.getpid()}.parquet"
        atomic_write(target, lambda f: self.pq.write_table(table, f))
        self.rows = []

    def consolidate(self) -> Path | None:
        """Merge the table and all parts (later rows win per path) into one table; drop the parts."""
        self.flush()
        table_path = self.table_path
        parts = self._part_files()
        if not parts:
            return table_path if table_path.exists() else None
        sources = ([table_path] if table_path.exists() else []) + parts
        tables = [self.pq.read_table(p) for p in sources]
        table = self.pa.concat_tables(tables, promote_options="default")
        paths = table.column("path").to_pylist()
        last = {p: i for i, p in enumerate(paths)}
        keep = sorted(last.values(), key=lambda i: paths[i])
        table = table.take(self.pa.array(keep, self.pa.int64()))
        atomic_write(table_path, lambda f: self.pq.write_table(table, f))
        for part in parts:
            part.unlink()
        # Part names are unique, so a part whose write was killed is never overwritten: drop it.
        for stale in self.parts.glob("*" + PARTIAL):
            stale.unlink()
        with contextlib.suppress(OSError):
            self.parts.rmdir()
        return table_path


def read_table(path: str | os.PathLike) -> tuple[list[str], np.ndarray]:
    """``(paths, embeddings (tracks, dim))`` from an ``embeddings.parquet`` table."""
    _, pq = _pyarrow()
    table = pq.read_table(path, columns=["path", "embedding"])
    column = table.column("embedding").combine_chunks()
    dim = column.type.list_size
    return table.column("path").to_pylist(), column.flatten().to_numpy(zero_copy_only=False).reshape(-1, dim)


# -- decoding in workers ----------------------------------------------------------------------------
class _MelDataset(torch.utils.data.Dataset):
    """Item ``i`` -> ``(i, mel or None, duration, failure reason or None)``; never raises for a bad file."""

    def __init__(self, paths: Sequence[Path], pipeline: MaestPipeline):
        self.paths = list(paths)
        self.frontend = pipeline.frontend
        self.patch = pipeline.min_frames
        self.chunk_seconds = pipeline.chunk_seconds

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        try:
            mel, duration = streaming.file_mel(self.paths[index], self.frontend, self.patch, self.chunk_seconds)
        except audio.AudioDecodeError as error:
            return index, None, 0.0, error.reason
        except Exception as error:  # one odd file must not stop a long run; its reason is kept
            return index, None, 0.0, f"{type(error).__name__}: {error}"
        return index, mel, duration, None


def _identity(item):
    return item


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)  # workers decode and run the FFT; the model keeps the cores


def load_mels(paths: Sequence[Path], pipeline: MaestPipeline, workers: int = 0) -> Iterator[tuple[int, torch.Tensor | None, float, str | None]]:
    """Mels of ``paths`` in order, computed in ``workers`` processes (0: in this one)."""
    dataset = _MelDataset(paths, pipeline)
    if workers <= 0:
        yield from (dataset[i] for i in range(len(dataset)))
        return
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=None, shuffle=False, num_workers=workers, collate_fn=_identity,
        worker_init_fn=_worker_init, prefetch_factor=2,
    )
    yield from loader


def process(pipeline: MaestPipeline, items: Sequence[AudioItem], mode: str, options: EmbedOptions,
            batch_size: int = 8, workers: int = 0) -> Iterator[tuple[AudioItem, TrackResult | None, str | None]]:
    """``(item, result, None)`` or ``(item, None, reason)`` for every item, batching segments across files."""
    failures: deque[tuple[AudioItem, str]] = deque()

    def tracks():
        for index, mel, duration, reason in load_mels([i.path for i in items], pipeline, workers):
            if reason is not None:
                failures.append((items[index], reason))
            else:
                yield index, mel, duration

    def drain_failures():
        while failures:
            item, reason = failures.popleft()
            yield item, None, reason

    for index, result in pipeline.run_tracks(tracks(), mode, options, batch_size):
        yield from drain_failures()
        yield items[index], result, None
    yield from drain_failures()


# -- the run ---------------------------------------------------------------------------------------
def _settings(pipeline: MaestPipeline, model_name: str, options: EmbedOptions, per_segment: bool, fmt: str) -> dict:
    return {
        "model": model_name,
        "segment_frames": pipeline.config.segment_frames,
        "blocks": options.blocks,
        "tokens": list(options.tokens),
        "patchout_time": options.patchout_time,
        "patchout_freq": list(options.patchout_freq),
        "overlap": options.overlap,
        "crop": options.crop,
        "per_segment": per_segment,
        "format": fmt,
    }


def _check_settings(output_dir: Path, settings: dict) -> None:
    path = output_dir / SETTINGS_FILE
    if path.exists():
        previous = json.loads(path.read_text())
        changed = {k: (previous.get(k), v) for k, v in settings.items() if previous.get(k) != v}
        if changed:
            details = ", ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in changed.items())
            raise SettingsMismatchError(
                f"{output_dir} holds outputs made with other settings ({details}); "
                "choose another output folder or delete that one"
            )
    else:
        atomic_write(path, lambda f: f.write(json.dumps(settings, indent=2).encode()), shared=True)


def _write_failures(output_dir: Path, failures: list[tuple[str, str]], suffix: str = "") -> None:
    target = output_dir / (Path(FAILURES_FILE).stem + suffix + ".tsv")
    if not failures:
        target.unlink(missing_ok=True)
        return
    # One failure per line, two tab-separated fields. A path keeps its spaces (music files often have
    # runs of them) and loses only tabs and line breaks; a reason is folded onto one line.
    path_text = lambda s: str(s).translate({9: " ", 10: " ", 13: " "})  # noqa: E731
    reason_text = lambda s: " ".join(str(s).split())  # noqa: E731
    text = "".join(f"{path_text(p)}\t{reason_text(r)}\n" for p, r in failures)
    atomic_write(target, lambda f: f.write(text.encode()))


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
    suffix = ""
    if shard is not None:
        index, count = shard
        if not 0 <= index < count:
            raise ValueError(f"shard must be (index, count) with 0 <= index < count, got {shard}")
        suffix = f".shard-{index}-of-{count}"
    sink = ParquetSink(output_dir, per_segment, suffix=suffix) if output_format == "parquet" else None  # needs pyarrow
    items, missing = find_audio(inputs, extensions)
    check_collisions(items, output_format)
    if shard is not None:
        items, missing = items[index::count], (missing if index == 0 else [])
    pipeline = model if isinstance(model, MaestPipeline) else load_model(model, device, batch_size)
    pipeline.check_options(options)
    if isinstance(model, MaestPipeline):
        model_name = pipeline.config.name
    else:  # a local checkpoint is named by its absolute path, so cwd changes do not look like new settings
        model_name = str(Path(model).resolve()) if Path(model).exists() else str(model)
    output_dir.mkdir(parents=True, exist_ok=True)
    _check_settings(output_dir, _settings(pipeline, model_name, options, per_segment, output_format))

    summary = ExtractSummary(output_dir=output_dir, failures=list(missing), failed=len(missing))
    done = sink.done_keys() if sink else None
    todo = []
    for item in items:
        finished = item.key in done if sink else _exists(output_path(output_dir, item.key, output_format))
        if finished:
            summary.skipped += 1
        else:
            todo.append(item)

    from tqdm.auto import tqdm

    bar = tqdm(total=len(items), initial=summary.skipped, unit="file", disable=not progress, dynamic_ncols=True)
    work_started = time.perf_counter()
    try:
        for item, result, reason in process(pipeline, todo, "embed", options, batch_size, workers):
            if reason is not None:
                summary.failed += 1
                summary.failures.append((str(item.path), reason))
            else:
                try:
                    if sink:
                        sink.add(item.key, result)
                    else:
                        _write_track(output_path(output_dir, item.key, output_format), output_format, result, per_segment)
                except OSError as error:
                    if error.errno in FATAL_WRITE_ERRORS:
                        raise
                    summary.failed += 1  # this track's output cannot be written (name too long, permissions)
                    summary.failures.append((str(item.path), f"cannot write its output: {error}"))
                else:
                    summary.succeeded += 1
                    summary.audio_seconds += result.duration
            elapsed = time.perf_counter() - work_started
            bar.set_postfix_str(f"{summary.audio_seconds / 3600:.2f} h audio, "
                                f"{summary.audio_seconds / max(elapsed, 1e-9):.1f} audio s/s, {summary.failed} failed")
            bar.update(1)
        if sink:
            sink.consolidate()
    finally:
        bar.close()
        if sink:
            sink.flush()  # finished tracks are kept in a part even when the run stops early
        _write_failures(output_dir, summary.failures, suffix)
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
    position = {id(item): index for index, item in enumerate(items)}
    finished: dict[int, tuple[str, np.ndarray | None, str | None]] = {}
    next_index = 0
    for item, result, reason in process(pipeline, items, "tag", options, batch_size, workers):
        finished[position[id(item)]] = (str(item.path), result.track if result is not None else None, reason)
        while next_index in finished:
            yield finished.pop(next_index)
            next_index += 1
