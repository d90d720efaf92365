"""Atomic file writes: a reader, or a rerun after a kill, never sees a half-written file."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

PARTIAL = ".partial"  # suffix of files being written; a killed run can leave them behind
MAX_NAME_BYTES = 255  # the file name limit of common file systems (ext4, XFS, APFS, NTFS)


def atomic_write(target: str | os.PathLike, write: Callable[[BinaryIO], object], shared: bool = False) -> None:
    """``write(file)`` into a ``.partial`` file beside ``target``, fsync, then rename over ``target``.

    ``shared``: a file that several processes (shards) may write at once gets a partial of its own
    per writer, so one writer's rename cannot pull the partial from under another.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    writer = f".{os.getpid()}-{threading.get_ident()}" if shared else ""
    name = target.name + writer + PARTIAL
    if len(os.fsencode(name)) > MAX_NAME_BYTES:  # a long track name: the suffix must not overflow it
        name = "." + hashlib.sha1(os.fsencode(target.name)).hexdigest()[:20] + writer + PARTIAL
    partial = target.with_name(name)
    try:
        with open(partial, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(partial, target)
    except BaseException:
        partial.unlink(missing_ok=True)  # a failed or interrupted write leaves nothing behind
        raise


def atomic_write_text(target: str | os.PathLike, text: str) -> None:
    """:func:`atomic_write` of UTF-8 text."""
    atomic_write(target, lambda f: f.write(text.encode("utf-8")))
