"""What the app accepts before it decodes anything: file size and the length the header declares.

A 546 KB FLAC of three hours of silence passes any size limit and costs minutes of CPU (far more
with the full model); its STREAMINFO says how long it is, so it is refused from a few KB of header.
"""

from __future__ import annotations

import os
from pathlib import Path

from maest.audio import AudioDecodeError, info
from maest.audio_headers import flac_declared_length, mp3_declared_length

MB = 1024 * 1024
DEFAULT_MAX_MINUTES = 30.0


class InputRefused(ValueError):
    """A file the app will not decode: too large, too long, or its length is unknown; the text is for the user."""


def declared_seconds(path: str | os.PathLike) -> float:
    """The longest length the file's headers declare, without decoding (libsndfile/FFmpeg's header
    reading, and MP3 Xing/VBRI or FLAC STREAMINFO where present). Raises AudioDecodeError for non-audio."""
    path = Path(path)
    seconds = info(path).duration
    reader = {".mp3": mp3_declared_length, ".flac": flac_declared_length}.get(path.suffix.lower())
    declared = reader(path) if reader else None
    if declared is not None and declared.frames:
        seconds = max(seconds, declared.seconds)
    return seconds


def check_input(path: Path, name: str, max_bytes: int, max_minutes: float) -> None:
    """Refuse ``path`` (shown to the user as ``name``) when it is over ``max_bytes`` or declares more than
    ``max_minutes``, or declares no length at all (it could then be any length)."""
    size = path.stat().st_size
    if size > max_bytes:
        raise InputRefused(f"{name} is {size / MB:.1f} MB; this app takes files up to {max_bytes / MB:g} MB "
                           "(start it with a larger --max-upload-mb to allow more).")
    try:
        seconds = declared_seconds(path)
    except AudioDecodeError:
        return  # not audio: decoding reports it with the decoder's reason
    if seconds <= 0:
        raise InputRefused(f"{name} does not declare its length in its header; this app only decodes files whose "
                           "length it can check first. Convert it (e.g. to FLAC or WAV) and try again.")
    if seconds > max_minutes * 60:
        raise InputRefused(f"{name} is {seconds / 60:.1f} minutes long; this app takes tracks up to {max_minutes:g} "
                           "minutes (start it with a larger --max-minutes to allow more).")
