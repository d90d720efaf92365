"""Where finished tracks go: ``npy``/``npz`` files per track or one parquet table; atomic and resumable.

A sink takes ``(key, TrackResult)`` pairs from any driver (the local loop, a Ray engine), knows which
keys are already written (a rerun skips them) and is closed at the end. Every file is written to a
``.partial`` name and renamed into place, so an output that exists is complete.
"""

from __future__ import annotations

import contextlib
import errno
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Literal, Protocol

import numpy as np

from maest.atomic import PARTIAL, atomic_write
from maest.batching import TrackResult
from maest.extraction.errors import MissingDependencyError
from maest.extraction.files import output_path

Format = Literal["npy", "npz", "parquet"]
FORMATS = ("npy", "npz", "parquet")
TABLE_FILE = "embeddings.parquet"
PARTS_DIR = "embeddings.parts"
# Write errors that concern the whole output folder: stop the run rather than fail every track.
FATAL_WRITE_ERRORS = {errno.ENOSPC, errno.EROFS, errno.EDQUOT}


class Sink(Protocol):
    """What a driver needs of an output: skip finished keys, add results, flush on stop, close at the end."""

    def done_keys(self, keys: Iterable[str]) -> set[str]: ...

    def add(self, key: str, result: TrackResult) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


def open_sink(output_dir: Path, fmt: Format, per_segment: bool, suffix: str = "") -> Sink:
    """The sink for ``fmt`` (``suffix`` names a shard's parquet table); checks pyarrow for parquet."""
    if fmt not in FORMATS:
        raise ValueError(f"output_format must be one of {FORMATS}, got {fmt!r}")
    if fmt == "parquet":
        return ParquetSink(output_dir, per_segment, suffix=suffix)
    return FileSink(output_dir, fmt, per_segment)


def _exists(path: Path) -> bool:
    """Whether an output exists; a name the file system cannot hold does not (its write fails later)."""
    try:
        return path.exists()
    except OSError:
        return False


class FileSink:
    """One file per track mirroring the input tree: ``npy`` (the embedding, or per-segment ones) or
    ``npz`` (embedding, segment start times, duration[, segment embeddings])."""

    def __init__(self, output_dir: Path, fmt: Format, per_segment: bool):
        self.output_dir = Path(output_dir)
        self.fmt = fmt
        self.per_segment = per_segment

    def done_keys(self, keys: Iterable[str]) -> set[str]:
        return {key for key in keys if _exists(output_path(self.output_dir, key, self.fmt))}

    def add(self, key: str, result: TrackResult) -> None:
        target = output_path(self.output_dir, key, self.fmt)
        if self.fmt == "npy":
            array = result.outputs if self.per_segment else result.track
            atomic_write(target, lambda f: np.save(f, array))
        else:
            arrays = {"embedding": result.track, "segment_starts": result.start_seconds,
                      "duration": np.float64(result.duration)}
            if self.per_segment:
                arrays["segment_embeddings"] = result.outputs
            atomic_write(target, lambda f: np.savez(f, **arrays))

    def flush(self) -> None:
        """Nothing is buffered: every track is written by :meth:`add`."""

    def close(self) -> None:
        """Nothing to consolidate."""


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

    def done_keys(self, keys: Iterable[str] | None = None) -> set[str]:
        """Keys in the table or its parts (of ``keys`` when given)."""
        done: set[str] = set()
        for path in self._part_files() + ([self.table_path] if self.table_path.exists() else []):
            done.update(self.pq.read_table(path, columns=["path"]).column("path").to_pylist())
        return done if keys is None else done & set(keys)

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
        """Write the buffered tracks as a new part (finished tracks survive a run that stops early)."""
        if not self.rows:
            return
        table = self._table(self.rows)
        target = self.parts / f"part-{time.time_ns()}-{os.getpid()}.parquet"
        atomic_write(target, lambda f: self.pq.write_table(table, f))
        self.rows = []

    def close(self) -> None:
        self.consolidate()

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
