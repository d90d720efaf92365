"""SIGINT and SIGTERM end every maest command the same way: cleanup runs, exit 130 or 143.

Both signals raise :class:`KeyboardInterrupt` in the main thread, so every cleanup written for
Ctrl-C (``finally`` blocks, Gradio closing its server, temporary folders removed at exit) also runs
on SIGTERM; the process then exits with the shell's convention, 128 + the signal number, whatever
the command (or Click's "Aborted!", exit 1) made of the interrupt. A second SIGTERM during cleanup
is ignored; a second Ctrl-C interrupts the cleanup as usual. Libraries that replace the handlers
(``ray.init`` does) can be followed by :func:`install` to put them back.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

HANDLED = (signal.SIGINT, signal.SIGTERM)
_received: list[int] = []


def exit_status(signum: int) -> int:
    """The exit status of a process stopped by ``signum``: 130 for SIGINT, 143 for SIGTERM."""
    return 128 + int(signum)


def received() -> int | None:
    """The first SIGINT/SIGTERM this process received since :func:`install`, or None."""
    return _received[0] if _received else None


def _interrupt(signum: int, frame: FrameType | None) -> None:
    _received.append(signum)
    if signum == signal.SIGTERM:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not cut the cleanup short
    raise KeyboardInterrupt


def install() -> bool:
    """Make SIGINT and SIGTERM raise KeyboardInterrupt (recorded for the exit status); main thread only."""
    if threading.current_thread() is not threading.main_thread():
        return False
    for signum in HANDLED:
        signal.signal(signum, _interrupt)
    return True


def run_with_signal_exits(main: Callable[[], Any]) -> None:
    """Run ``main`` (a Click/Typer app) and exit 128 + signal when SIGINT or SIGTERM stopped it."""
    _received.clear()
    install()
    try:
        main()
    except SystemExit:
        if received() is None:
            raise
    except KeyboardInterrupt:  # raised outside a handler (or before Click took over): Ctrl-C
        if received() is None:
            _received.append(signal.SIGINT)
    else:
        if received() is None:
            return
    sys.exit(exit_status(received()))
