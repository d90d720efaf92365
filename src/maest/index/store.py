"""The index folder on disk: each write is a new generation, committed by one rename.

Layout (format 2)::

    index.json       the manifest: settings, count, embedding spec, and the current generation's name
    gen-000007/      vectors.npy (exact float32) or vectors.faiss, paths.txt (one key a row), pca.npz
    index.lock       the writers' lock (maest.index.lock)

A writer fills a fresh ``gen-*`` folder, fsyncs it, then replaces ``index.json`` with one
``os.replace``: a kill before that rename leaves the old index, after it the new one, never a mix
(maest 0.2 replaced ``vectors.npy`` before ``paths.txt``, and a kill between them lost both). Older
generations are removed after the commit; a reader that was reading one of them reads the manifest
again. Indexes written by maest 0.2 (format 1: the same files directly in the folder) still load;
their first write moves them to format 2.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from maest.atomic import PARTIAL, atomic_write_text
from maest.index import vectors
from maest.index.sources import SimilarityIndexError

INFO_FILE, PATHS_FILE, PCA_FILE = "index.json", "paths.txt", "pca.npz"
LEGACY_FILES = ("vectors.npy", "vectors.faiss", PATHS_FILE, PCA_FILE)  # format 1 kept these beside index.json
GENERATION = re.compile(r"gen-(\d{6,})")
GENERATION_KEY = "generation"  # the manifest field naming the current generation folder
READ_ATTEMPTS = 5  # a reader retries while writers keep replacing the generation it was reading


class IndexFormatError(SimilarityIndexError):
    """The folder is not a readable index (missing files, counts that disagree)."""


@dataclass
class Snapshot:
    """One committed state of an index folder, as read from disk."""

    fields: dict  # the manifest
    generation: str | None  # None: a format-1 index (files directly in the folder)
    structure: object
    keys: list[str]
    pca: vectors.Pca | None


def read_manifest(directory: Path) -> dict:
    """The parsed ``index.json``; :class:`IndexFormatError` when there is none or it is not an object."""
    try:
        fields = json.loads((directory / INFO_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise IndexFormatError(f"{directory} is not an index (no {INFO_FILE}); build one with build_index "
                               "('maest index build')") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise IndexFormatError(f"{directory / INFO_FILE}: cannot read it ({error}); rebuild the index") from error
    if not isinstance(fields, dict):
        raise IndexFormatError(f"{directory / INFO_FILE} is not an index manifest; rebuild the index")
    return fields


def _read_files(directory: Path, fields: dict) -> Snapshot:
    generation = fields.get(GENERATION_KEY)
    if generation is not None and not (isinstance(generation, str) and GENERATION.fullmatch(generation)):
        raise IndexFormatError(f"{directory / INFO_FILE} names no valid generation ({generation!r}); rebuild the index")
    folder = directory / generation if generation else directory
    try:
        structure = vectors.read_structure(folder, fields["kind"], fields["dtype"])
        keys = (folder / PATHS_FILE).read_text(encoding="utf-8").splitlines()
        pca = vectors.Pca.load(folder / PCA_FILE) if fields.get("pca_dims") else None
    except (OSError, RuntimeError, ValueError, EOFError, KeyError) as error:
        raise IndexFormatError(f"{directory}: cannot read the index ({type(error).__name__}: {error}); "
                               "rebuild it") from error
    if not (len(keys) == structure.ntotal == fields.get("count")):
        raise IndexFormatError(f"{directory}: {len(keys)} paths, {structure.ntotal} vectors, {fields.get('count')} in "
                               f"{INFO_FILE} (an interrupted write by an older maest?); rebuild the index")
    return Snapshot(fields, generation, structure, keys, pca)


def read(directory: Path, newest_format: int) -> Snapshot:
    """The committed state the manifest names; retried when a writer replaced it while reading."""
    for attempt in range(READ_ATTEMPTS):
        fields = read_manifest(directory)
        if fields.get("format_version", 0) > newest_format:
            raise IndexFormatError(f"{directory} was written by a newer maest ({fields.get('maest_version')}); "
                                   "upgrade maest")
        try:
            return _read_files(directory, fields)
        except IndexFormatError:
            replaced = read_manifest(directory).get(GENERATION_KEY) != fields.get(GENERATION_KEY)
            if not replaced or attempt == READ_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def current_generation(directory: Path) -> str | None:
    """The generation the manifest names now (None: format 1, no index yet, or an unreadable manifest)."""
    try:
        return read_manifest(directory).get(GENERATION_KEY)
    except IndexFormatError:  # no index yet, or a damaged manifest that this write replaces
        return None


def _fsync_dir(directory: Path) -> None:
    """Make the folder's entries (new files, a rename) durable, not only their contents."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _new_generation(directory: Path) -> Path:
    numbers = [int(m.group(1)) for p in directory.iterdir() if (m := GENERATION.fullmatch(p.name))]
    folder = directory / f"gen-{max(numbers, default=0) + 1:06d}"
    folder.mkdir()
    return folder


def remove_stale(directory: Path, keep: str | None) -> None:
    """Everything but generation ``keep``: other ``gen-*`` folders, killed writers' partials, and the
    format-1 files unless ``keep`` is None (a format-1 index, whose files are its current state)."""
    for entry in directory.iterdir():
        if GENERATION.fullmatch(entry.name) and entry.name != keep:
            shutil.rmtree(entry, ignore_errors=True)
        elif entry.name.endswith(PARTIAL) or (keep is not None and entry.name in LEGACY_FILES):
            entry.unlink(missing_ok=True)


def commit(directory: Path, fields: dict, structure, keys: list[str], pca: vectors.Pca | None) -> tuple[str, int]:
    """Write a new generation and make it current with one rename; the caller holds the writer lock.

    ``fields`` is the manifest without the generation; returns the generation's name and the stored
    vectors' size in bytes (recorded in the manifest as ``memory_bytes``).
    """
    directory.mkdir(parents=True, exist_ok=True)
    current = current_generation(directory)
    remove_stale(directory, keep=current)  # what killed writers left, before numbering a new one
    folder = _new_generation(directory)
    written = vectors.write_structure(structure, folder)
    atomic_write_text(folder / PATHS_FILE, "".join(key + "\n" for key in keys))
    if pca is not None:
        pca.save(folder / PCA_FILE)
    _fsync_dir(folder)
    size = written.stat().st_size
    manifest = {**fields, "memory_bytes": size, GENERATION_KEY: folder.name}
    atomic_write_text(directory / INFO_FILE, json.dumps(manifest, indent=2) + "\n")  # the commit
    _fsync_dir(directory)
    remove_stale(directory, keep=folder.name)
    return folder.name, size
