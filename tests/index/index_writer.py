"""A separate process that adds embeddings to an index, for the tests of concurrent and killed writers.

    python index_writer.py add INDEX SOURCE START_AT         add SOURCE (an npy folder) at time START_AT
    python index_writer.py kill-each TEMPLATE SOURCE WORKDIR  for every step of an add, a copy of TEMPLATE
                                                              in WORKDIR/killed-STEP whose writer died there

kill-each first counts the add's file-system changes (mkdir, fsync, replace, rename, unlink, rmdir,
rmtree) on a copy, then for each change forks a child that adds SOURCE to its own copy and SIGKILLs
itself just before that change: a real process dies there with whatever it wrote on disk, as the
OOM killer or a power-off of the process would leave it. Forking saves each child the imports.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import time
import traceback
from pathlib import Path

CHANGES = ("mkdir", "fsync", "replace", "rename", "unlink", "rmdir")


def watch_changes(kill_at: int | None) -> list[int]:
    """Count the file-system changes from now on; SIGKILL before change ``kill_at`` (1-based)."""
    seen = [0]

    def wrap(module, name):
        original = getattr(module, name)

        def changed(*args, **kwargs):
            seen[0] += 1
            if seen[0] == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            return original(*args, **kwargs)

        setattr(module, name, changed)

    for name in CHANGES:
        wrap(os, name)
    wrap(shutil, "rmtree")
    return seen


def in_child(index_dir: Path, source: str, kill_at: int | None, count_file: Path | None = None) -> int:
    """Fork; the child adds ``source`` to ``index_dir`` (dying at ``kill_at``); returns its wait status."""
    from maest.index import add_to_index

    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            seen = watch_changes(kill_at)
            add_to_index(index_dir, source, wait=10)
            if count_file is not None:
                count_file.write_text(str(seen[0]))
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    return os.waitpid(pid, 0)[1]


def main(argv: list[str]) -> None:
    mode, index_dir, source = argv[:3]
    from maest.index import add_to_index  # imported before waiting, so that writers start together

    if mode == "add":
        time.sleep(max(0.0, float(argv[3]) - time.time()))
        print(add_to_index(index_dir, source, wait=60).summary())
        return
    template, workdir = Path(index_dir), Path(argv[3])
    counted = shutil.copytree(template, workdir / "counted")
    if in_child(counted, source, None, workdir / "steps") != 0:
        sys.exit("the counting add failed")
    steps = int((workdir / "steps").read_text())
    for step in range(1, steps + 1):
        status = in_child(shutil.copytree(template, workdir / f"killed-{step}"), source, step)
        killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        print(f"step {step} {'killed' if killed else f'status {status}'}")


if __name__ == "__main__":
    main(sys.argv[1:])
