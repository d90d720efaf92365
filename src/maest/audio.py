"""Decode any audio file a music collection holds -> float32 mono at the model's sample rate.

WAV/FLAC/Ogg/MP3 (and anything else libsndfile reads) go through soundfile, which seeks, so a
window (``offset``/``duration``) decodes only that window. Other containers (m4a/AAC, Opus, WebM,
WMA, ...) go through PyAV (FFmpeg), which seeks to a packet half a second before the window (decoder
pre-roll) and drops the samples before it. Channels are averaged (for both readers); resampling
is Essentia's loader's (libsamplerate sinc_medium, :mod:`maest.resample`) or soxr's. Every
failure is an :class:`AudioDecodeError` naming the file and the reason. MP3 and FLAC files shorter
than their headers declare (cut-off downloads) are failures too (:mod:`maest.audio_headers`); what
the C decoders print on the way is kept out of the terminal and added to the reason of a failure.
"""

from __future__ import annotations

import contextlib
import os
import re
import struct
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from maest import resample as resampling
from maest.audio_headers import DeclaredLength, flac_declared_length, mp3_declared_length

SOUNDFILE_EXTENSIONS = {".wav", ".flac", ".ogg", ".oga", ".mp3", ".aiff", ".aif", ".aifc", ".au", ".w64", ".caf"}
AUDIO_EXTENSIONS = SOUNDFILE_EXTENSIONS | {
    ".m4a", ".mp4", ".aac", ".opus", ".webm", ".wma", ".mka", ".mkv", ".ac3", ".alac", ".ape", ".wv",
}
# Decoding starts this long before a requested window in PyAV-read files (see ``_read_pyav``).
PYAV_PREROLL_SECONDS = 0.5
# A header claiming more sample frames per file byte than this is read in blocks, not into one
# buffer of the claimed size (real files hold < 10; a corrupt header can claim billions).
_MAX_FRAMES_PER_BYTE = 64
_READ_BLOCK_FRAMES = 1 << 20


class AudioDecodeError(RuntimeError):
    """A file could not be decoded into usable audio; ``path`` and ``reason`` say which and why."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"cannot decode {self.path}: {reason}")


@dataclass(frozen=True)
class AudioInfo:
    """What is known about a file without decoding it."""

    sample_rate: int
    channels: int
    frames: int

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate if self.sample_rate else 0.0


class _Captured:
    text = ""


_STDERR_LOCK = threading.Lock()


@contextlib.contextmanager
def _decoder_stderr() -> Iterator[_Captured]:
    """Send what C libraries write to fd 2 (libmpg123's "Note: Trying to resync...") to a buffer.

    fd 2 is process-wide, so one thread at a time holds it (DataLoader workers are processes with
    their own fd 2). Python's own stderr writes made meanwhile are passed through afterwards.
    """
    captured = _Captured()
    try:
        with _STDERR_LOCK:
            try:
                sys.stderr.flush()
                saved = os.dup(2)
            except (OSError, ValueError, AttributeError):  # no fd 2 (closed or replaced): nothing to hide
                yield captured
                return
            try:
                with tempfile.TemporaryFile() as sink:
                    os.dup2(sink.fileno(), 2)
                    try:
                        yield captured
                    finally:
                        os.dup2(saved, 2)
                        sink.seek(0)
                        captured.text = sink.read().decode("utf-8", "replace")
            finally:
                os.close(saved)
    finally:
        passed = [line for line in captured.text.splitlines(keepends=True) if not _is_decoder_noise(line)]
        if passed:
            sys.stderr.write("".join(passed))


def _is_decoder_noise(line: str) -> bool:
    return line.startswith(("Note: ", "Warning: ", "Error: ", "[src/", "[libmpg123", "mpg123", "FLAC__"))


def _noise_summary(text: str, limit: int = 3) -> str:
    """The first ``limit`` distinct decoder lines, short, for a failure reason ("" if none)."""
    lines = list(dict.fromkeys(line.strip()[:120] for line in text.splitlines() if line.strip()))
    if not lines:
        return ""
    more = f" (+{len(lines) - limit} more)" if len(lines) > limit else ""
    return "; decoder said: " + " | ".join(lines[:limit]) + more


def _check_file(path: Path) -> None:
    if not path.exists():
        raise AudioDecodeError(path, "no such file")
    if not path.is_file():
        raise AudioDecodeError(path, "not a regular file")
    if path.stat().st_size == 0:
        raise AudioDecodeError(path, "empty file (0 bytes)")


def _decoder_message(error: Exception, path: Path) -> str:
    """A decoder's error without the file's path (the message names it once) or misleading wording.

    libsndfile says "File does not exist or is not a regular file (possibly a pipe?)" for any
    existing file whose bytes it cannot parse (e.g. text named ``.mp3``); :func:`_check_file` has
    already ruled those out, so that sentence only means the format was not recognised.
    """
    text = str(error)
    for quoted in (repr(str(path)), f"'{path}'", f'"{path}"'):
        text = text.replace(f"Error opening {quoted}: ", "").replace(f": {quoted}", "").replace(quoted, "the file")
    if "possibly a pipe?" in text:
        text = "format not recognised"
    text = re.sub(r"^\[Errno -?\d+\] ", "", text).strip().rstrip(".")
    return text[:1].lower() + text[1:]


def _ogg_truncation(path: Path) -> str | None:
    """Reason an Ogg file is cut off (last page incomplete or no end-of-stream page), else None.

    libsndfile and FFmpeg both decode a cut-off Ogg download up to the break without complaint,
    which would silently embed a fraction of the track.
    """
    size = path.stat().st_size
    with open(path, "rb") as f:
        f.seek(max(0, size - 65536 * 2))
        tail_start = f.tell()
        tail = f.read()
    position = tail.rfind(b"OggS")
    if position < 0:
        return "no Ogg page found"
    header = tail[position : position + 27]
    if len(header) < 27:
        return "file ends inside an Ogg page header (truncated download?)"
    flags, n_segments = header[5], header[26]
    lacing = tail[position + 27 : position + 27 + n_segments]
    if len(lacing) < n_segments:
        return "file ends inside an Ogg page (truncated download?)"
    page_end = tail_start + position + 27 + n_segments + sum(lacing)
    if page_end > size:
        return f"file ends inside an Ogg page ({page_end - size} bytes missing; truncated download?)"
    if not flags & 0x04:
        return "Ogg stream has no end-of-stream page (truncated download?)"
    return None  # complete; bytes after the end-of-stream page (e.g. an appended tag) are ignored


def _wav_truncation(path: Path) -> str | None:
    """Reason a RIFF/WAVE file holds less data than its header declares, else None."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        while True:
            chunk = f.read(8)
            if len(chunk) < 8:
                return None
            chunk_id, chunk_size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if chunk_id == b"data":
                if chunk_size != 0xFFFFFFFF and f.tell() + chunk_size > size:
                    missing = f.tell() + chunk_size - size
                    return f"WAV data chunk is {missing} bytes shorter than its header says (truncated?)"
                return None
            f.seek(chunk_size + (chunk_size & 1), os.SEEK_CUR)


def info(path: str | os.PathLike) -> AudioInfo:
    """Sample rate, channels and length of a file, read from its header where possible."""
    path = Path(path)
    _check_file(path)
    try:
        import soundfile as sf

        with _decoder_stderr():
            i = sf.info(str(path))
        return AudioInfo(int(i.samplerate), int(i.channels), int(i.frames))
    except Exception:
        pass
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise AudioDecodeError(path, "no audio stream")
            stream = container.streams.audio[0]
            rate = int(stream.codec_context.sample_rate or stream.rate or 0)
            if stream.duration is not None and stream.time_base is not None:
                seconds = float(stream.duration * stream.time_base)
            elif container.duration is not None:
                seconds = container.duration / 1_000_000
            else:
                seconds = 0.0
            return AudioInfo(rate, int(stream.codec_context.channels or 1), int(round(seconds * rate)))
    except AudioDecodeError:
        raise
    except Exception as error:  # any FFmpeg failure is a decode failure of this file
        raise AudioDecodeError(path, f"not a readable audio file ({error})") from None


def _read_soundfile(path: Path, offset: float | None, duration: float | None) -> tuple[np.ndarray, int]:
    import soundfile as sf

    with sf.SoundFile(str(path)) as f:
        rate = f.samplerate
        start = int(round((offset or 0.0) * rate))
        if start > 0:
            if start >= f.frames:
                return np.zeros((0, f.channels), np.float32), rate
            f.seek(start)
        try:
            data = _read_frames(f, path, start, duration)
        except Exception as error:  # where libsndfile stopped tells how much of a cut file decoded
            try:
                position = f.tell()
            except Exception:
                raise error from None
            raise _DecodeStopped(position, error) from None
    return data, rate


class _DecodeStopped(Exception):
    """libsndfile failed after decoding up to sample frame ``position`` (e.g. a cut FLAC)."""

    def __init__(self, position: int, error: Exception):
        super().__init__(str(error))
        self.position = position


def _read_frames(f, path: Path, start: int, duration: float | None) -> np.ndarray:
    """Read to the end (or ``duration`` s) from ``start``; blocks when the header claims implausibly much."""
    claimed = f.frames - max(start, 0)
    frames = claimed if duration is None else min(claimed, int(round(duration * f.samplerate)))
    if frames <= _MAX_FRAMES_PER_BYTE * path.stat().st_size:
        return f.read(frames=-1 if duration is None else frames, dtype="float32", always_2d=True)
    blocks = []  # grow with what decodes instead of allocating what a corrupt header claims
    while frames > 0:
        block = f.read(frames=min(frames, _READ_BLOCK_FRAMES), dtype="float32", always_2d=True)
        blocks.append(block)
        frames -= len(block)
        if len(block) < _READ_BLOCK_FRAMES:
            break
    return np.concatenate(blocks) if blocks else np.zeros((0, f.channels), np.float32)


def _read_pyav(path: Path, offset: float | None, duration: float | None) -> tuple[np.ndarray, int]:
    import av

    with av.open(str(path)) as container:
        if not container.streams.audio:
            raise AudioDecodeError(path, "no audio stream")
        stream = container.streams.audio[0]
        rate = int(stream.codec_context.sample_rate)
        start_s = offset or 0.0
        if start_s > 0:
            # The first frames decoded after a seek are wrong (AAC overlap-add, Opus pre-roll), so
            # seek PYAV_PREROLL_SECONDS before the window; samples before it are dropped below.
            target = max(0.0, start_s - PYAV_PREROLL_SECONDS)
            container.seek(int(target * 1_000_000), any_frame=False, backward=True)
        end_s = None if duration is None else start_s + duration
        # Float planar at the file's own layout; channels are averaged here, as for soundfile files
        # (FFmpeg's own mono downmix weighs stereo channels by 1/sqrt(2): 3 dB louder).
        resampler = av.AudioResampler(format="fltp")
        pieces: list[np.ndarray] = []
        first_time: float | None = None
        decoded = 0
        for frame in container.decode(stream):
            if first_time is None:
                first_time = float(frame.pts * frame.time_base) if frame.pts is not None else 0.0
            for out in resampler.resample(frame):
                pieces.append(out.to_ndarray().mean(axis=0, dtype=np.float32))
                decoded += out.samples
            if end_s is not None and first_time + decoded / rate >= end_s:
                break
        for out in resampler.resample(None):
            pieces.append(out.to_ndarray().mean(axis=0, dtype=np.float32))
    data = np.concatenate(pieces) if pieces else np.zeros(0, np.float32)
    skip = max(0, int(round((start_s - (first_time or 0.0)) * rate)))
    data = data[skip:]
    if duration is not None:
        data = data[: int(round(duration * rate))]
    return data[:, None].astype(np.float32, copy=False), rate


def load(
    path: str | os.PathLike,
    sample_rate: int = 16000,
    offset: float | None = None,
    duration: float | None = None,
    resampler: str | None = None,
) -> np.ndarray:
    """Decode ``path`` to float32 mono at ``sample_rate`` Hz.

    ``resampler``: ``"essentia"`` (libsamplerate's sinc_medium, the published models' training
    input) or ``"soxr"`` (maest's resampler before); None reads ``maest.resample.DEFAULT_RESAMPLER``.

    ``offset`` and ``duration`` (seconds) select a window; only that window is decoded where the
    format can seek. Raises :class:`AudioDecodeError` for missing, empty, truncated or non-audio
    files and for windows that hold no samples.
    """
    path = Path(path)
    _check_file(path)
    if offset is not None and offset < 0:
        raise ValueError(f"offset must be >= 0, got {offset}")
    if duration is not None and duration <= 0:
        raise ValueError(f"duration must be > 0, got {duration}")
    suffix = path.suffix.lower()
    truncation = _ogg_truncation(path) if suffix in {".ogg", ".oga", ".opus"} else None
    if suffix == ".wav":
        truncation = _wav_truncation(path)
    if truncation:
        raise AudioDecodeError(path, truncation)
    declared = _declared_length(path, suffix)

    data: np.ndarray | None = None
    rate = 0
    errors: list[str] = []
    captured = _Captured()
    stopped_at: int | None = None
    # libsndfile reads a variable-bitrate MP3 without a Xing header only up to the length it guessed
    # from the first frame's bitrate (a fraction of the track, silently); FFmpeg reads all of it.
    unknown_length = declared is not None and declared.frames is None
    if suffix in SOUNDFILE_EXTENSIONS and not unknown_length:
        try:
            with _decoder_stderr() as captured:
                data, rate = _read_soundfile(path, offset, duration)
        except Exception as error:  # libsndfile failed; FFmpeg may still read it
            errors.append(f"soundfile: {_decoder_message(error, path)}")
            # libsndfile reports 0 after an MP3 error, whatever decoded: only a position it reached counts.
            stopped_at = error.position if isinstance(error, _DecodeStopped) and error.position > 0 else None
    noise = _noise_summary(captured.text)  # libmpg123's notes: only shown in a failure's reason
    if data is None:
        try:
            data, rate = _read_pyav(path, offset, duration)
        except AudioDecodeError:
            raise
        except Exception as error:
            errors.append(f"ffmpeg: {_decoder_message(error, path)}")
            if declared is not None and declared.frames is not None and stopped_at is not None \
                    and declared.frames - stopped_at > declared.tolerance:
                raise AudioDecodeError(path, _ends_early(stopped_at, declared) + f" ({errors[0]})" + noise) from None
            raise AudioDecodeError(path, "not a readable audio file (" + "; ".join(errors) + ")" + noise) from None
    if declared is not None and declared.frames is not None and rate == declared.sample_rate:
        start = int(round((offset or 0.0) * rate))
        wanted = declared.frames if duration is None else min(declared.frames, start + int(round(duration * rate)))
        ends = start + len(data)
        if wanted - ends > declared.tolerance:
            raise AudioDecodeError(path, _ends_early(ends, declared, before=len(data) == 0) + noise)

    mono = resampling.downmix(data)
    if mono.size == 0:
        what = "no samples in the requested window" if offset else "zero audio samples"
        raise AudioDecodeError(path, what + noise)
    if not np.all(np.isfinite(mono)):
        raise AudioDecodeError(path, "decoded samples contain NaN or infinity")
    resampled = resample(mono, rate, sample_rate, resampler, int(round((offset or 0.0) * rate)))
    if resampled.size == 0:  # e.g. one sample at 44.1 kHz
        raise AudioDecodeError(path, f"{mono.size} sample(s) at {rate} Hz is shorter than one sample at {sample_rate} Hz")
    return resampled


def _ends_early(frames: int, declared: DeclaredLength, before: bool = False) -> str:
    """The reason for a file that decodes to ``frames`` (or, ``before``, not even to there)."""
    return (f"ends {'before' if before else 'after'} {frames / declared.sample_rate:.2f} s of "
            f"{declared.seconds:.2f} s (per its {declared.source}); truncated download?")


def _declared_length(path: Path, suffix: str) -> DeclaredLength | None:
    """The length an MP3/FLAC header declares; refuses one the file's size cannot hold."""
    reader = {".mp3": mp3_declared_length, ".flac": flac_declared_length}.get(suffix)
    declared = reader(path) if reader else None
    if declared is not None and declared.frames is not None and declared.frames > declared.max_frames:
        raise AudioDecodeError(path, f"its {declared.source} declares {declared.seconds:.1f} s but its "
                                     f"{path.stat().st_size} bytes hold at most {declared.max_frames / declared.sample_rate:.1f} s "
                                     "(corrupt header or truncated download?)")
    return declared


def resample(
    audio: np.ndarray, from_rate: int, to_rate: int, resampler: str | None = None, start_sample: int = 0
) -> np.ndarray:
    """Mono float32 resampling; see :func:`maest.resample.resample` (identity when rates match)."""
    return resampling.resample(audio, from_rate, to_rate, resampler, start_sample)
