"""Where a track's plot goes: a name within the file system's limit that never takes another track's plot.

``<stem>.png`` when that name is free or already holds this track's plot (a rerun replaces it);
otherwise, and for names too long for the file system, ``<stem, shortened>-<hash of the track's
path>.png``, the same on every run. Each PNG records its track's absolute path (a ``Source`` text
chunk), which is how a rerun tells its own plot from another track's of the same name.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Collection
from pathlib import Path

SOURCE_KEY = "Source"
DEFAULT_NAME_MAX = 255  # bytes; os.pathconf tells the folder's own limit where it can
TITLE_MAX_CHARS = 90


def track_source(audio_path: str | os.PathLike) -> str:
    """The text a plot records for its track: the absolute path (undecodable bytes escaped)."""
    text = os.path.abspath(os.fsdecode(audio_path))
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def plot_source(png: Path) -> str | None:
    """The track a PNG was drawn for (None: not a plot of ours, or unreadable)."""
    try:
        from PIL import Image

        with Image.open(png) as image:
            return image.text.get(SOURCE_KEY)  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001  (any unreadable file is "not ours": it is never overwritten)
        return None


def name_max(folder: Path) -> int:
    """Longest file name in bytes that ``folder``'s file system takes."""
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        return int(os.pathconf(probe, "PC_NAME_MAX"))
    except (OSError, ValueError, AttributeError):
        return DEFAULT_NAME_MAX


def _shorten(stem: str, budget: int) -> str:
    """``stem`` cut to at most ``budget`` UTF-8 bytes, never inside a character."""
    data = stem.encode("utf-8", "surrogateescape")
    if len(data) <= budget:
        return stem
    return data[:budget].decode("utf-8", "ignore")


def plot_path(out_dir: str | os.PathLike, audio_path: str | os.PathLike, taken: Collection[Path] = ()) -> Path:
    """The PNG for ``audio_path`` in ``out_dir``; ``taken``: plots this run already wrote for other tracks."""
    out_dir = Path(out_dir)
    source = track_source(audio_path)
    stem = Path(os.fsdecode(audio_path)).stem
    limit = name_max(out_dir)
    plain = out_dir / f"{stem}.png"
    if len(os.fsencode(plain.name)) <= limit and plain not in taken:
        if not plain.exists() or plot_source(plain) == source:
            return plain
    digest = "-" + hashlib.sha256(source.encode("utf-8")).hexdigest()[:10] + ".png"
    # Room for the atomic writer's own suffix is its business (maest.atomic shortens its partial name).
    return out_dir / (_shorten(stem, limit - len(digest.encode())) + digest)


def display_name(audio_path: str | os.PathLike, limit: int = TITLE_MAX_CHARS) -> str:
    """The path a title shows: relative to the working folder when under it; past ``limit`` characters the
    file name loses its middle and the folders their start, so the nearest folders (what tells two
    equal names apart) stay: ``…/music/a/xxxx…xxxx.wav``."""
    text = os.fsdecode(audio_path)
    if os.path.isabs(text):
        try:
            relative = os.path.relpath(text)
        except ValueError:  # another drive (Windows)
            relative = text
        text = relative if not relative.startswith("..") else text
    text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    if len(text) <= limit:
        return text
    folder, _, name = text.rpartition("/")
    name_limit = max(16, limit // 2)
    if len(name) > name_limit:
        keep = name_limit - 1
        name = name[: keep // 2] + "…" + name[-(keep - keep // 2):]
    room = limit - len(name) - 1
    if folder and len(folder) > room:
        folder = "…" + folder[-(room - 1):] if room > 1 else "…"
    return f"{folder}/{name}" if folder else name
