"""Field names per file format, read and written with mutagen: the only module that knows tag layouts.

A field is named once (``GENRE``, ``STYLE``, ``MAEST_SETTINGS``) and stored where each format keeps it:

| format | GENRE | any other FIELD |
|---|---|---|
| MP3, WAV, AIFF (ID3v2.4) | ``TCON`` | ``TXXX:FIELD`` |
| FLAC, Ogg Vorbis, Opus, Speex (Vorbis comments) | ``GENRE`` | ``FIELD`` |
| M4A/MP4/AAC-in-MP4, ALAC (MP4 atoms) | ``©gen`` | ``----:com.apple.iTunes:FIELD`` (freeform) |

Every field holds a list of values (ID3 and Vorbis store several natively, MP4 several atoms' data).
Other formats (raw AAC/ADTS, WMA, APE, WavPack, Matroska ...) are refused with
:class:`UnsupportedFormatError`, never guessed at.
"""

from __future__ import annotations

import os
from typing import Any

import mutagen
from mutagen.aiff import AIFF
from mutagen.flac import FLAC
from mutagen.id3 import ID3, TCON, TXXX
from mutagen.mp3 import MP3
from mutagen.mp4 import MP4, MP4FreeForm
from mutagen.oggopus import OggOpus
from mutagen.oggspeex import OggSpeex
from mutagen.oggvorbis import OggVorbis
from mutagen.wave import WAVE

GENRE = "GENRE"
ID3_FORMATS = (MP3, WAVE, AIFF)
VORBIS_FORMATS = (FLAC, OggVorbis, OggOpus, OggSpeex)
MP4_FREEFORM = "----:com.apple.iTunes:"


class TagWriteError(OSError):
    """A file's tags cannot be read or written (its reason is the message)."""


class UnsupportedFormatError(TagWriteError):
    """A format whose tags maest does not write (the file is left as it is)."""


def open_tags(path: str | os.PathLike) -> Any:
    """The mutagen file object of ``path`` with a tag block to write into (created when absent)."""
    try:
        audio = mutagen.File(path)
    except mutagen.MutagenError as error:
        raise TagWriteError(f"cannot read its tags: {error}") from None
    if audio is None or not isinstance(audio, ID3_FORMATS + VORBIS_FORMATS + (MP4,)):
        kind = "unknown" if audio is None else type(audio).__name__
        raise UnsupportedFormatError(f"maest does not write tags into this format ({kind}); supported: MP3, WAV, "
                                     "AIFF, FLAC, Ogg Vorbis, Opus, Speex, M4A/MP4")
    if audio.tags is None:
        audio.add_tags()
    return audio


def read_field(audio: Any, name: str) -> list[str]:
    """The values of field ``name`` (upper case) in an :func:`open_tags` object; [] when absent."""
    tags = audio.tags
    if isinstance(audio, ID3_FORMATS):
        frame = tags.get("TCON" if name == GENRE else f"TXXX:{name}")
        if frame is None:
            return []
        return [str(v) for v in (frame.genres if name == GENRE else frame.text)]
    if isinstance(audio, MP4):
        key = "\xa9gen" if name == GENRE else MP4_FREEFORM + name
        values = tags.get(key, [])
        return [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in values]
    return list(tags.get(name, []))  # Vorbis comments: keys are case-insensitive


def write_field(audio: Any, name: str, values: list[str]) -> None:
    """Set field ``name`` to ``values`` (all of them; an empty list removes the field)."""
    tags = audio.tags
    if isinstance(audio, ID3_FORMATS):
        key = "TCON" if name == GENRE else f"TXXX:{name}"
        tags.delall(key)
        if values:
            tags.add(TCON(encoding=3, text=list(values)) if name == GENRE
                     else TXXX(encoding=3, desc=name, text=list(values)))
    elif isinstance(audio, MP4):
        key = "\xa9gen" if name == GENRE else MP4_FREEFORM + name
        if values:
            tags[key] = list(values) if name == GENRE else [MP4FreeForm(v.encode("utf-8")) for v in values]
        elif key in tags:
            del tags[key]
    else:
        if values:
            tags[name] = list(values)
        elif name in tags:
            del tags[name]


def save_tags(audio: Any) -> None:
    """Write the tags of ``audio`` into its file, in place (ID3 as v2.4, the version that stores several values)."""
    try:
        if isinstance(audio, ID3_FORMATS):
            audio.save(v2_version=4)
        else:
            audio.save()
    except mutagen.MutagenError as error:
        raise TagWriteError(f"cannot write its tags: {error}") from None
