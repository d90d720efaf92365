"""One writer at a time per index folder: an exclusive ``flock`` on ``index.lock`` inside it.

Two ``maest index add`` runs on one folder would otherwise both load the same state and the last
commit would drop the other's tracks. The kernel releases a ``flock`` when its holder exits, even
by SIGKILL, so a killed writer never leaves a stale lock behind. Readers take no lock: they read
a committed generation (see :mod:`maest.index.store`). POSIX only (``fcntl``); on a network file
system the lock is only as good as its ``flock`` support.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from maest.index.sources import SimilarityIndexError

LOCK_FILE = "index.lock"
# A writer waits this long for another writer by default: an add to a large HNSW index can take
# minutes; a wait that never ends would hide a hung writer.
DEFAULT_WAIT_SECONDS = 300.0
POLL_SECONDS = 0.05


class IndexBusyError(SimilarityIndexError):
    """Another process kept writing the index for longer than the caller agreed to wait."""


def _holder(fd: int) -> str:
    """`` (pid N)`` as the holder wrote it into the lock file, or nothing when unknown."""
    try:
        pid = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return ""
    return f" (pid {pid})" if pid.isdigit() else ""


@contextmanager
def writer_lock(directory: str | os.PathLike, wait: float = DEFAULT_WAIT_SECONDS,
                on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold the index folder's writer lock; wait up to ``wait`` seconds for another writer.

    ``on_wait`` is told once (one line) when the lock is taken and this call starts waiting.
    Raises :class:`IndexBusyError` when the wait runs out.
    """
    import fcntl  # POSIX; imported here so that reading an index never needs it

    if wait < 0:
        raise ValueError(f"wait must be at least 0 seconds, got {wait}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline, told = time.monotonic() + wait, False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise IndexBusyError(
                        f"index busy: {directory} is being written by another process{_holder(fd)} and "
                        f"stayed locked for {wait:g} s; retry when it is done, or wait longer "
                        "(--wait SECONDS, or wait=...)") from None
                if on_wait is not None and not told:
                    on_wait(f"{directory} is being written by another process{_holder(fd)}; "
                            f"waiting up to {wait:g} s for it")
                    told = True
                time.sleep(min(POLL_SECONDS, left))
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)  # for the busy message of the next writer
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
