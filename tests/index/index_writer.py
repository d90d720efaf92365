"""A separate process that adds embeddings to an index, for the tests of concurrent and killed writers.

    python index_writer.py add INDEX SOURCE [START_AT]   add SOURCE (an npy folder), starting at time START_AT
    python index_writer.py count INDEX SOURCE            add SOURCE; print how many file-system changes it made
    python index_writer.py kill INDEX SOURCE STEP        add SOURCE, SIGKILL itself just before change STEP

The kill mode wraps the ``os``/``shutil`` calls that change the file system (mkdir, fsync, replace,
rename, unlink, rmdir, rmtree): the process really dies at that point, with whatever it wrote on
disk, as a user's Ctrl-\\ or the OOM killer would leave it.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import time

CHANGES = ("mkdir", "fsync", "replace", "rename", "unlink", "rmdir")


def count_changes(kill_at: int | None) -> list[int]:
    """Wrap the file-system changes; SIGKILL before change ``kill_at`` (1-based); returns the live count."""
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


def main(argv: list[str]) -> None:
    mode, index_dir, source = argv[:3]
    seen = count_changes(int(argv[3]) if mode == "kill" else None)
    from maest.index import add_to_index  # imported before waiting, so that writers start together

    if mode == "add" and len(argv) > 3:
        time.sleep(max(0.0, float(argv[3]) - time.time()))
    seen[0] = 0  # count only the add's own changes (imports may create caches)
    report = add_to_index(index_dir, source, wait=60)
    print(report.summary())
    if mode == "count":
        print(f"changes {seen[0]}")


if __name__ == "__main__":
    main(sys.argv[1:])
