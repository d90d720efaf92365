"""A cheap fingerprint of a checkpoint's weights, so an output folder can refuse a model whose
weights changed at the same path (a rerun would otherwise mix two models in one output).

Hashing a whole 350 MB checkpoint takes ~0.7 s (sha256, file in the page cache), more from disk;
the fingerprint reads about 1 MiB instead (a few ms) yet changes whenever a tensor changes:

- safetensors: the whole header (names, dtypes, shapes, offsets) and, for *every* tensor, 64 bytes
  at its start, middle and end. Training or fine-tuning changes a tensor everywhere, so any changed
  tensor changes the fingerprint; a single edited weight inside a large tensor can go unseen.
- torch zip files (``.pt``/``.ckpt``/``.bin``): the zip directory, which holds a CRC-32 of every
  stored tensor, i.e. of all the values.
- anything else (legacy pickles, JSON): the whole file up to 4 MiB, beyond that 256 evenly spaced 4 KiB blocks.

Sizes and the names of a folder's files count; modification times never do (a copy is the same model).
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import zipfile
from pathlib import Path

FINGERPRINT_SCHEME = "maest-fp1"
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".json")
_WHOLE_FILE_BYTES = 4 << 20
_SPREAD_BLOCKS = 256
_BLOCK_BYTES = 4096
_TENSOR_SAMPLE_BYTES = 64


def checkpoint_files(path: str | os.PathLike) -> list[Path]:
    """The files whose content defines a checkpoint: the file (and a sibling ``.json`` config), or a
    folder's weight and config files (not its subfolders: a hub cache keeps other things there)."""
    path = Path(path)
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.is_file() and p.suffix in WEIGHT_SUFFIXES)
    sibling = path.with_suffix(".json")
    return [path] + ([sibling] if sibling != path and sibling.is_file() else [])


def weights_fingerprint(path: str | os.PathLike) -> str:
    """``maest-fp1:<hex>``: changes when any tensor (or the config) of the checkpoint at ``path`` changes."""
    digest = hashlib.sha256()
    in_folder = Path(path).is_dir()
    for file in checkpoint_files(path):
        size = file.stat().st_size
        label = file.name if in_folder else file.suffix  # a renamed single file holds the same weights
        digest.update(f"{label}\0{size}\0".encode())
        with open(file, "rb") as handle:
            _hash_content(handle, file, size, digest)
    return f"{FINGERPRINT_SCHEME}:{digest.hexdigest()[:32]}"


def _hash_content(handle, file: Path, size: int, digest) -> None:
    fd = handle.fileno()
    if size <= _WHOLE_FILE_BYTES:
        digest.update(os.pread(fd, size, 0))
    elif file.suffix == ".safetensors" and _hash_safetensors(fd, size, digest):
        pass
    elif zipfile.is_zipfile(handle) and _hash_zip_directory(handle, digest):
        _hash_spread(fd, size, digest)
    else:
        _hash_spread(fd, size, digest)


def _hash_spread(fd: int, size: int, digest) -> None:
    """Evenly spaced blocks over the whole file, first and last included."""
    step = max(1, (size - _BLOCK_BYTES) // (_SPREAD_BLOCKS - 1))
    for index in range(_SPREAD_BLOCKS):
        digest.update(os.pread(fd, _BLOCK_BYTES, min(index * step, max(0, size - _BLOCK_BYTES))))


def _hash_safetensors(fd: int, size: int, digest) -> bool:
    """Header and per-tensor samples; False when the file is not valid safetensors (hashed otherwise)."""
    head = os.pread(fd, 8, 0)
    if len(head) < 8:
        return False
    (header_bytes,) = struct.unpack("<Q", head)
    if header_bytes > min(size - 8, 100 << 20):
        return False
    header = os.pread(fd, header_bytes, 8)
    try:
        entries = json.loads(header)
    except ValueError:
        return False
    digest.update(header)
    start = 8 + header_bytes
    for name in sorted(entries):
        if name == "__metadata__":
            continue
        try:
            lo, hi = (int(x) for x in entries[name]["data_offsets"])
        except (KeyError, TypeError, ValueError):
            return False
        n = min(_TENSOR_SAMPLE_BYTES, hi - lo)
        for offset in {lo, max(lo, (lo + hi) // 2 - n // 2), hi - n}:
            digest.update(os.pread(fd, n, start + offset))
    _hash_spread(fd, size, digest)  # bytes outside any tensor's range count too
    return True


def _hash_zip_directory(handle, digest) -> bool:
    """Every member's name, size and CRC-32 (torch's zip checkpoints store one per tensor)."""
    try:
        members = zipfile.ZipFile(handle).infolist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return False
    for member in members:
        digest.update(f"{member.filename}\0{member.file_size}\0{member.CRC}\0".encode())
    return True


def source_fingerprint(name_or_path: str | os.PathLike) -> str | None:
    """The fingerprint of the files :func:`maest.checkpoints.load_checkpoint` reads for ``name_or_path``
    (a local path, a published name or a hub id, found where it caches them); None when not found."""
    from maest.checkpoints import TORCH_SUFFIXES, cache_dir
    from maest.configs import PUBLISHED

    path = Path(name_or_path)
    if not path.exists():
        name = str(name_or_path)
        if name in PUBLISHED:
            target = cache_dir() / name
            found = [c for c in [target] + [target.with_name(name + s) for s in (".safetensors", *TORCH_SUFFIXES)]
                     if c.exists()]
            path = found[0] if found else target
        else:
            path = cache_dir() / name.replace("/", "--")
    return weights_fingerprint(path) if path.exists() else None
