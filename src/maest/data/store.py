"""Precomputed raw log-mel spectrograms as float16 shards, for random crops at training scale.

Layout of a store directory::

    store.json                 format, frontend version, crop mode, dataset mean/std
    shards/00000.npy           float16 (frames, 96): the tracks' mels concatenated (a plain .npy)
    shards/00000.tsv           index: key<TAB>offset<TAB>frames, one row per track in the shard
    shards/00000.failures.tsv  key<TAB>reason for files of that shard that could not be decoded
    failures.tsv               all failures (rewritten after each run)

A shard is finished when its index exists; every file is written to a temporary name and renamed,
the index last, so a killed run loses at most the shard it was filling and a rerun skips every key
already in a finished shard (added or failed). Values are RAW ``log10(1 + 10000 x)`` mels
(``MelFrontend(normalize=False)``); normalisation happens at training time with ``stats``.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from maest.atomic import PARTIAL, atomic_write
from maest.decode import CentreRawMel, Decoded, centre_window, decode_all
from maest.failures import format_failures, write_failures
from maest.frontend import FRONTEND_VERSION, N_BANDS

__all__ = ["BuildReport", "MelStore", "StoreError", "build_store", "centre_window", "compute_stats"]

FORMAT = "maest-mel-store"
VERSION = 1
CROPS = {"center30": 30.0, "full": 300.0}  # seconds kept from the centre of each track


class StoreError(RuntimeError):
    """The store directory is missing, from another format/frontend, or asked for an impossible read."""


@dataclass
class BuildReport:
    """What one ``build_store`` run did."""

    added: int = 0
    failed: int = 0
    skipped: int = 0  # already in a finished shard from an earlier run
    shards_written: int = 0
    audio_seconds: float = 0.0
    elapsed_seconds: float = 0.0
    failures: dict[str, str] = field(default_factory=dict)


def _read_rows(path: Path) -> list[list[str]]:
    if not path.is_file():
        return []
    return [line.rstrip("\n").split("\t") for line in path.read_text(encoding="utf-8").splitlines() if line]


def _shard_ids(shards: Path) -> list[int]:
    return sorted(int(p.stem) for p in shards.glob("*.tsv") if p.stem.isdigit())


class _ShardWriter:
    """Buffers finished tracks and writes them as the next numbered shard."""

    def __init__(self, shards: Path, next_id: int, shard_bytes: int):
        self.shards = shards
        self.next_id = next_id
        self.shard_bytes = shard_bytes
        self.mels: list[np.ndarray] = []
        self.keys: list[str] = []
        self.failures: list[tuple[str, str]] = []
        self.bytes = 0
        self.written = 0

    def add(self, key: str, mel: np.ndarray | None, reason: str) -> None:
        if mel is None:
            self.failures.append((key, reason))
        else:
            self.mels.append(mel)
            self.keys.append(key)
            self.bytes += mel.nbytes
        if self.bytes >= self.shard_bytes:
            self.flush()

    def flush(self) -> None:
        if not self.mels and not self.failures:
            return
        stem = f"{self.next_id:05d}"
        total = sum(m.shape[0] for m in self.mels)

        def write_array(f) -> None:
            descr = np.lib.format.dtype_to_descr(np.dtype("<f2"))
            header = {"descr": descr, "fortran_order": False, "shape": (total, N_BANDS)}
            np.lib.format.write_array_header_1_0(f, header)
            for mel in self.mels:
                f.write(np.ascontiguousarray(mel, dtype="<f2").tobytes())

        rows, offset = [], 0
        for key, mel in zip(self.keys, self.mels):
            rows.append(f"{key}\t{offset}\t{mel.shape[0]}\n")
            offset += mel.shape[0]
        failures = format_failures(self.failures)
        atomic_write(self.shards / f"{stem}.npy", write_array)
        atomic_write(self.shards / f"{stem}.failures.tsv", lambda f: f.write(failures.encode("utf-8")))
        atomic_write(self.shards / f"{stem}.tsv", lambda f: f.write("".join(rows).encode("utf-8")))  # last: marks it final
        self.next_id += 1
        self.written += 1
        self.mels, self.keys, self.failures, self.bytes = [], [], [], 0


def _open_or_create_meta(root: Path, crop: str) -> dict:
    meta_path = root / "store.json"
    if meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        if meta.get("format") != FORMAT:
            raise StoreError(f"{root} is not a MAEST mel store (store.json format {meta.get('format')!r})")
        if meta.get("crop") != crop or meta.get("frontend") != FRONTEND_VERSION:
            raise StoreError(
                f"{root} holds crop={meta.get('crop')!r}, frontend={meta.get('frontend')!r}; this run asks for "
                f"crop={crop!r}, frontend={FRONTEND_VERSION!r}: use another directory"
            )
        return meta
    meta = {"format": FORMAT, "version": VERSION, "frontend": FRONTEND_VERSION, "n_bands": N_BANDS,
            "dtype": "float16", "layout": "frames x bands", "crop": crop, "stats": None}
    atomic_write(meta_path, lambda f: f.write(json.dumps(meta, indent=2).encode()))
    return meta


def build_store(
    paths: Sequence[str],
    root: str | os.PathLike,
    audio_root: str | os.PathLike | None = None,
    crop: str = "center30",
    workers: int = 0,
    shard_size_mb: float = 512.0,
    progress: bool = True,
    retry_failed: bool = False,
) -> BuildReport:
    """Decode ``paths`` (keys, relative to ``audio_root`` when given), compute raw mels and add them to the store.

    ``crop``: "center30" keeps the central 30 s (only that window is decoded), "full" the central
    300 s at most. Resumable and idempotent: keys in finished shards are skipped, failed ones too
    unless ``retry_failed`` (e.g. after fixing the files).
    """
    from tqdm import tqdm

    if crop not in CROPS:
        raise ValueError(f"crop must be one of {sorted(CROPS)}, got {crop!r}")
    if shard_size_mb <= 0:
        raise ValueError(f"shard_size_mb must be > 0, got {shard_size_mb}")
    started = time.perf_counter()
    root = Path(root)
    shards = root / "shards"
    shards.mkdir(parents=True, exist_ok=True)
    _open_or_create_meta(root, crop)
    for stale in shards.glob("*" + PARTIAL):  # left by a killed run
        stale.unlink()
    ids = _shard_ids(shards)
    done: set[str] = set()
    for shard in ids:
        done.update(row[0] for row in _read_rows(shards / f"{shard:05d}.tsv"))
        if not retry_failed:
            done.update(row[0] for row in _read_rows(shards / f"{shard:05d}.failures.tsv"))
    keys = list(dict.fromkeys(str(p) for p in paths))
    todo = [k for k in keys if k not in done]
    report = BuildReport(skipped=len(keys) - len(todo))
    writer = _ShardWriter(shards, (ids[-1] + 1) if ids else 0, int(shard_size_mb * 2**20))
    base = Path(audio_root) if audio_root is not None else None
    paths = [base / key if base is not None else Path(key) for key in todo]
    decoded = decode_all(paths, CentreRawMel(CROPS[crop]), workers, prefetch_factor=4, single_thread_workers=False)
    with tqdm(total=len(todo), unit="track", desc="mel store", disable=not progress) as bar:
        for index, result in decoded:
            key = todo[index]
            if isinstance(result, Decoded):
                writer.add(key, result.mel, "")
                report.added += 1
                report.audio_seconds += result.duration
            else:
                writer.add(key, None, result.reason)
                report.failed += 1
                report.failures[key] = result.reason
            bar.update()
            bar.set_postfix(failed=report.failed, refresh=False)
    writer.flush()
    report.shards_written = writer.written
    _write_failures(root)
    report.elapsed_seconds = time.perf_counter() - started
    return report


def _write_failures(root: Path) -> None:
    """``failures.tsv``: every key of the finished shards that failed (the shards are the record)."""
    write_failures(root / "failures.tsv", MelStore(root).failures, keep_empty=True)


class MelStore:
    """Read access to a store: ``read(i, start, length)`` memory-maps only the requested frames.

    Safe to use from DataLoader workers (each opens its own maps lazily).
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        meta_path = self.root / "store.json"
        if not meta_path.is_file():
            raise StoreError(f"{self.root} is not a mel store (no store.json): build it with `maest prepare`")
        self.meta = json.loads(meta_path.read_text())
        if self.meta.get("format") != FORMAT:
            raise StoreError(f"{self.root}: unknown store format {self.meta.get('format')!r}")
        shards = self.root / "shards"
        self.keys: list[str] = []
        shard_col, offset_col, frames_col = [], [], []
        self._shard_paths: list[Path] = []
        for n, shard in enumerate(_shard_ids(shards)):
            rows = _read_rows(shards / f"{shard:05d}.tsv")
            self._shard_paths.append(shards / f"{shard:05d}.npy")
            for key, offset, frames in rows:
                self.keys.append(key)
                shard_col.append(n)
                offset_col.append(int(offset))
                frames_col.append(int(frames))
        self._shard = np.asarray(shard_col, dtype=np.int32)
        self._offset = np.asarray(offset_col, dtype=np.int64)
        self._frames = np.asarray(frames_col, dtype=np.int64)
        self._position = {key: i for i, key in enumerate(self.keys)}
        self._maps: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.keys)

    def __getstate__(self) -> dict:
        # A pickled store (DataLoader workers under spawn) maps its shards again lazily: a memmap
        # would pickle as a full in-memory copy of its shard.
        return {**self.__dict__, "_maps": {}}

    @property
    def stats(self) -> dict | None:
        """``{"mean", "std", "tracks", "values"}`` of the raw mels of the split they were computed on, or None."""
        return self.meta.get("stats")

    @property
    def failures(self) -> dict[str, str]:
        """Keys that could not be decoded, with the latest reason (finished shards; keys stored since are left out)."""
        shards = self.root / "shards"
        rows = [row for shard in _shard_ids(shards) for row in _read_rows(shards / f"{shard:05d}.failures.tsv")]
        return {row[0]: row[1] if len(row) > 1 else "" for row in rows if row[0] not in self._position}

    def __contains__(self, key: object) -> bool:
        return key in self._position

    def index_of(self, key: str) -> int:
        try:
            return self._position[key]
        except KeyError:
            raise KeyError(
                f"{key!r} is not in the store {self.root} (not prepared, or it failed: see failures.tsv)"
            ) from None

    def frames(self, i: int) -> int:
        return int(self._frames[i])

    def _map(self, shard: int) -> np.ndarray:
        if shard not in self._maps:
            self._maps[shard] = np.load(self._shard_paths[shard], mmap_mode="r")
        return self._maps[shard]

    def read(self, i: int, start: int = 0, length: int | None = None) -> np.ndarray:
        """Frames ``[start, start + length)`` of track ``i`` as a float16 ``(96, n)`` copy (n is less at the end)."""
        frames = self.frames(i)
        if not 0 <= start < frames:
            raise StoreError(f"start {start} is outside track {i} ({self.keys[i]!r}) of {frames} frames")
        stop = frames if length is None else min(frames, start + length)
        base = int(self._offset[i])
        rows = self._map(int(self._shard[i]))[base + start : base + stop]
        return np.ascontiguousarray(rows.T)

    def crop(self, i: int, length: int, rng: np.random.Generator | None = None) -> np.ndarray:
        """A random ``(96, length)`` float16 crop of track ``i``; shorter tracks are right-padded with 0 (silence)."""
        frames = self.frames(i)
        start = int(rng.integers(0, frames - length + 1)) if rng is not None and frames > length else 0
        out = self.read(i, start, length)
        if out.shape[1] < length:
            out = np.pad(out, ((0, 0), (0, length - out.shape[1])))
        return out


def compute_stats(store: MelStore, keys: Sequence[str] | None = None, save: bool = True, progress: bool = True) -> dict:
    """Mean and (population) std of every mel value of ``keys`` (default: all), streamed in float64.

    Per-track moments are merged with Chan et al.'s update, so no precision is lost to large sums.
    With ``save`` they go into ``store.json`` (the training normalisation reads them there).
    """
    from tqdm import tqdm

    indices = range(len(store)) if keys is None else [store.index_of(k) for k in keys]
    count, mean, m2 = 0, 0.0, 0.0
    for i in tqdm(indices, unit="track", desc="mel statistics", disable=not progress):
        values = store.read(i).astype(np.float64)
        n = values.size
        track_mean = float(values.mean())
        track_m2 = float(np.square(values - track_mean).sum())
        delta = track_mean - mean
        total = count + n
        mean += delta * n / total
        m2 += track_m2 + delta * delta * count * n / total
        count = total
    if count == 0:
        raise StoreError("no frames to compute statistics from (empty key list or store)")
    stats = {"mean": mean, "std": math.sqrt(m2 / count), "tracks": len(indices), "values": count}
    if save:
        store.meta["stats"] = stats
        atomic_write(store.root / "store.json", lambda f: f.write(json.dumps(store.meta, indent=2).encode()))
    return stats
