"""The only audio the app serves: links (or copies) of opened collection tracks in a private folder.

Gradio serves every file under a static path, so the audio root itself (``--audio-root ~``) must
never be one: a client could read ``/gradio_api/file=<root>/any/file``. Each opened track is hard
linked (copied across file systems) into the app's private folder, which alone is served.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path


def serve_copy(audio: Path, served_dir: Path) -> Path:
    """``served_dir/<random>/<name>``: a hard link to ``audio``, or a copy where linking is impossible."""
    folder = served_dir / uuid.uuid4().hex[:12]
    folder.mkdir(parents=True)
    target = folder / audio.name
    try:
        os.link(audio, target)  # follows a symbolic link: the served file is the audio itself
    except OSError:  # another file system, or a file the kernel will not let us link (protected_hardlinks)
        shutil.copyfile(audio, target)
    return target
