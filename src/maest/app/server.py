"""``maest serve``: load the model, the index and the head, and run the app on a local port."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from maest.app.protocols import LabelHead, TrackIndex

if TYPE_CHECKING:
    import gradio as gr

    from maest.inference import MaestPipeline

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
NO_AUTH_WARNING = ("warning: maest serve on {host} is reachable from other machines and has no authentication: "
                   "anyone who can reach port {port} can upload files, tag any audio file path on this machine "
                   "and play the indexed tracks.")


def load_index(index_dir: str | os.PathLike) -> tuple[TrackIndex | None, str | None]:
    """``(index, None)``, or ``(None, message for the page)`` when the folder is missing or unreadable."""
    path = Path(index_dir).expanduser()
    if not path.exists():
        return None, f"No index at {path}: build it with `maest index build EMBEDDINGS -o {path}`."
    try:
        from maest import index as index_module  # seam: similarity index (issue 13)
    except ImportError:
        return None, "This maest install has no similarity index (maest.index); update maest."
    try:
        return index_module.load(path), None
    except Exception as error:  # any load failure becomes a message on the page, not a dead server
        return None, f"Cannot load the index at {path}: {error}"


def load_head(head_dir: str | os.PathLike) -> LabelHead:
    """An own-label head from its folder (seam: heads of issue 13)."""
    from maest.heads import load_head as load_fitted_head

    return load_fitted_head(head_dir)


def launch(app: "gr.Blocks", host: str = "127.0.0.1", port: int = 7860, max_upload_mb: float = 200,
           block: bool = True, **kwargs: Any) -> "gr.Blocks":
    """Launch ``app`` on ``host:port`` (warning when it is reachable from other machines).

    Gradio's own banner (with its "share=True" hint: maest never shares) is off; one line says where
    the app is. ``block``: serve until Ctrl-C or SIGTERM, then close the server.
    """
    if host not in LOCAL_HOSTS:
        print(NO_AUTH_WARNING.format(host=host, port=port), file=sys.stderr)
    app.launch(server_name=host, server_port=port, max_file_size=int(max_upload_mb * 1024 * 1024),
               prevent_thread_lock=True, share=False, ssr_mode=False, quiet=True, **kwargs)
    if block:
        print(f"maest serve: running on {app.local_url} (Ctrl-C to stop)", file=sys.stderr, flush=True)
        try:
            while app.is_running:  # Ctrl-C and SIGTERM (maest.cli.signals) both end this with KeyboardInterrupt
                time.sleep(0.2)
        finally:
            app.close()  # result files go at exit (build_app's finalizer), as after any interrupt
    return app


def serve(model: "str | os.PathLike | MaestPipeline", index_dir: str | os.PathLike | None = None,
          head_dir: str | os.PathLike | None = None, host: str = "127.0.0.1", port: int = 7860,
          max_upload_mb: float = 200, audio_root: str | os.PathLike | None = None, device: str | None = None,
          block: bool = True, max_minutes: float = 30.0) -> "gr.Blocks":
    """Load everything and run the app until interrupted (``block=False``: return the running app)."""
    from maest.app.ui import build_app
    from maest.inference import MaestPipeline, load_model

    pipeline = model if isinstance(model, MaestPipeline) else load_model(model, device)
    index, index_error = load_index(index_dir) if index_dir is not None else (None, None)
    if index_error:
        print(f"maest serve: {index_error}", file=sys.stderr)
    head = load_head(head_dir) if head_dir is not None else None
    if head is not None:
        head.check_compatible(pipeline)  # a head fitted on other weights would tag garbage
    app = build_app(pipeline, index, head, max_upload_mb, audio_root, index_error, max_minutes=max_minutes)
    return launch(app, host, port, max_upload_mb, block)
