"""`maest serve`: the local web app over a model, and optionally a similarity index and a head."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from maest.cli.options import DEFAULT_MODEL, DeviceOpt, ModelOpt, fail, require


def serve_command(
    model: ModelOpt = DEFAULT_MODEL,
    index: Annotated[Optional[Path], typer.Option(
        "--index", help="Similarity index folder (maest index build): enables the Collection tab.")] = None,
    head: Annotated[Optional[Path], typer.Option(
        "--head", help="Own-label head folder (maest head fit): its labels are shown beside the styles.")] = None,
    audio_root: Annotated[Optional[Path], typer.Option(
        "--audio-root", help="Folder the index's track paths are relative to (to play them in the browser; only the "
                        "indexed tracks are served, never other files under it).")] = None,
    host: Annotated[str, typer.Option(
        "--host", help="Address to bind; 127.0.0.1 keeps the app on this machine (it has no authentication).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port to listen on.")] = 7860,
    max_upload_mb: Annotated[float, typer.Option(
        "--max-upload-mb", min=0.001, help="Largest file accepted for tagging, in MB.")] = 200.0,
    max_minutes: Annotated[float, typer.Option(
        "--max-minutes", min=0.01, help="Longest track accepted for tagging, in minutes (read from the file's "
                                        "header before anything is decoded).")] = 30.0,
    device: DeviceOpt = None,
) -> None:
    """Open a local web app: tag a file (styles, timeline, head labels, embedding download) and browse a collection."""
    require("app", "gradio", "matplotlib")
    from maest.app.server import serve

    try:
        serve(model, index_dir=index, head_dir=head, host=host, port=port, max_upload_mb=max_upload_mb,
              audio_root=audio_root, device=device, max_minutes=max_minutes)
    except (OSError, ValueError, RuntimeError) as error:  # CheckpointError, HeadMismatchError, a busy port
        fail(f"{type(error).__name__}: {error}")
