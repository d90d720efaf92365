"""The length an MP3 or FLAC file declares, read from a few KB of its headers, to catch cut-off files.

libmpg123 and libflac decode a cut-off download up to the break without complaint (an MP3 cut at
1000 bytes "decodes" to 28 ms), and trust a header's length enough to allocate for it. What the
headers promise is compared with what decodes (:func:`maest.audio.load`): MP3 from the Xing/Info
(LAME) or VBRI frame count, or, for constant bitrate without such a frame, bitrate x audio bytes;
FLAC from STREAMINFO's total samples. Each also bounds the length the file's size can hold, so an
absurd header is refused before a huge buffer is allocated.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

# kbit/s by [MPEG-1?][layer 1..3][index]; MPEG-2 and 2.5 share a table.
_BITRATES = {
    (True, 1): (0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (True, 2): (0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (True, 3): (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (False, 1): (0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (False, 2): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
    (False, 3): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_SAMPLE_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}  # by version bits
_HEAD_BYTES = 4096  # bytes read after the ID3v2 tag to find the first frame
_PROBE_BYTES = 8192  # bytes read at the middle and the end of a file to check its bitrate is constant
# Samples a Xing/VBRI frame count may be off by: one MPEG-1 frame (encoders differ on whether the
# count includes the Xing frame itself).
_XING_TOLERANCE = 1152
# The smallest FLAC frame: sync + header (6 bytes), one byte per constant subframe, CRC-16.
_MIN_FLAC_FRAME_BYTES = 9


@dataclass(frozen=True)
class DeclaredLength:
    """What a header says about the decoded length: ``frames`` samples (per channel) at ``sample_rate``.

    ``frames`` is None for a variable-bitrate MP3 without a Xing/VBRI frame: its length is unknown
    until it is decoded to the end. ``tolerance`` (samples) absorbs encoder delay/padding and estimation slack; ``max_frames`` is the
    most the file's bytes can hold, whatever the header says.
    """

    frames: int | None
    sample_rate: int
    tolerance: int
    max_frames: int
    source: str  # where the length comes from, for messages: "Xing header", "STREAMINFO", ...

    @property
    def seconds(self) -> float:
        return (self.frames or 0) / self.sample_rate


@dataclass(frozen=True)
class _Frame:
    mpeg1: bool
    layer: int
    bitrate: int  # kbit/s; 0 for free format
    sample_rate: int
    samples: int  # per frame
    length: int  # bytes, with padding
    mono: bool
    crc: bool

    def same_stream(self, other: "_Frame") -> bool:
        return (self.mpeg1, self.layer, self.sample_rate) == (other.mpeg1, other.layer, other.sample_rate)


def _parse_frame(head: bytes) -> _Frame | None:
    """The MPEG audio frame header in the first 4 bytes of ``head``, or None if it is not one."""
    if len(head) < 4 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return None
    version, layer_bits = (head[1] >> 3) & 3, (head[1] >> 1) & 3
    bitrate_index, rate_index = head[2] >> 4, (head[2] >> 2) & 3
    if version == 1 or layer_bits == 0 or bitrate_index == 15 or rate_index == 3:
        return None
    mpeg1, layer = version == 3, 4 - layer_bits
    bitrate = _BITRATES[(mpeg1, layer)][bitrate_index]
    sample_rate = _SAMPLE_RATES[version][rate_index]
    samples = 384 if layer == 1 else 1152 if layer == 2 or mpeg1 else 576
    padding = (head[2] >> 1) & 1
    if layer == 1:
        length = (12 * bitrate * 1000 // sample_rate + padding) * 4
    else:
        length = samples // 8 * bitrate * 1000 // sample_rate + padding
    return _Frame(mpeg1, layer, bitrate, sample_rate, samples, length, head[3] >> 6 == 3, not head[1] & 1)


def _chain(data: bytes, start: int, count: int) -> list[_Frame] | None:
    """``count`` frames of one stream back to back from ``start`` (a real sync), else None."""
    frames: list[_Frame] = []
    position = start
    while len(frames) < count:
        frame = _parse_frame(data[position : position + 4])
        if frame is None or frame.bitrate == 0 or (frames and not frame.same_stream(frames[0])):
            return None
        frames.append(frame)
        position += frame.length
        if position + 4 > len(data):
            break  # the data ends here; what was seen is consistent
    return frames if len(frames) >= min(count, 2) else None


def _find_chain(data: bytes, count: int = 4) -> tuple[int, list[_Frame]] | None:
    """Where the first run of ``count`` chained frames in ``data`` starts, and its frames.

    A random 0xFFE sync in audio data or a tag rarely chains to ``count`` frames.
    """
    position = data.find(b"\xff")
    while 0 <= position < len(data) - 4:
        frames = _chain(data, position, count)
        if frames:
            return position, frames
        position = data.find(b"\xff", position + 1)
    return None


def _id3v2_end(f) -> int:
    """Offset after the ID3v2 tag(s) at the start of the file (0 without one)."""
    offset = 0
    while True:
        f.seek(offset)
        head = f.read(10)
        if len(head) < 10 or head[:3] != b"ID3" or any(b & 0x80 for b in head[6:10]):
            return offset
        size = (head[6] << 21) | (head[7] << 14) | (head[8] << 7) | head[9]
        offset += 10 + size + (10 if head[5] & 0x10 else 0)  # footer flag


def _trailing_tag_bytes(f, size: int) -> int:
    """Bytes of ID3v1, APEv2 and Lyrics3v2 tags at the end of an MP3 (not audio)."""
    tail_bytes = 0
    f.seek(max(0, size - 128))
    if f.read(3) == b"TAG":
        tail_bytes = 128
    for _ in range(2):  # APE and Lyrics3 can come in either order before ID3v1
        f.seek(max(0, size - tail_bytes - 32))
        footer = f.read(32)
        if footer[:8] == b"APETAGEX":
            tag_size, flags = struct.unpack("<I", footer[12:16])[0], struct.unpack("<I", footer[20:24])[0]
            tail_bytes += tag_size + (32 if flags & 0x80000000 else 0)
        elif footer[-9:] == b"LYRICS200" and footer[-15:-9].isdigit():
            tail_bytes += int(footer[-15:-9]) + 15
    return min(tail_bytes, size)


def _lame_delay_padding(frame_data: bytes, after_xing: int) -> int:
    """Encoder delay + padding from a LAME/FFmpeg tag after the Xing fields (0 if absent)."""
    tag = frame_data[after_xing : after_xing + 24]
    # libmpg123 trims delay/padding for any LAME-style tag, whatever encoder name it carries.
    if len(tag) < 24 or not all(32 <= byte < 127 for byte in tag[:4]):
        return 0
    delay = (tag[21] << 4) | (tag[22] >> 4)
    padding = ((tag[22] & 0x0F) << 8) | tag[23]
    return delay + padding


def mp3_declared_length(path: str | os.PathLike) -> DeclaredLength | None:
    """Length an MP3 declares (Xing/Info, VBRI, or constant bitrate x size), or None if it cannot tell.

    ``frames`` is None for variable bitrate without a Xing/VBRI frame. None for free-format streams, files whose first
    frame is not found in the first few KB after the ID3v2 tag, and streams whose only bitrate is
    the lowest one (variable-bitrate encoders write those for silence).
    """
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        audio_start = _id3v2_end(f)
        f.seek(audio_start)
        head = f.read(_HEAD_BYTES)
        found = _find_chain(head)
        if found is None:
            return None
        first_at, chain = audio_start + found[0], found[1]
        first = chain[0]
        audio_end = size - _trailing_tag_bytes(f, size)
        audio_bytes = max(0, audio_end - first_at)
        min_bitrate = min(b for b in _BITRATES[(first.mpeg1, first.layer)] if b)
        min_frame = first.samples // 8 * min_bitrate * 1000 // first.sample_rate
        max_frames = (audio_bytes // max(min_frame, 1) + 2) * first.samples
        frame_data = head[first_at - audio_start : first_at - audio_start + first.length]

        if first.layer == 3:
            side_info = (17 if first.mono else 32) if first.mpeg1 else (9 if first.mono else 17)
            xing_at = 4 + side_info + (2 if first.crc else 0)
            if frame_data[xing_at : xing_at + 4] in (b"Xing", b"Info"):
                flags = struct.unpack(">I", frame_data[xing_at + 4 : xing_at + 8])[0]
                if flags & 1:
                    count = struct.unpack(">I", frame_data[xing_at + 8 : xing_at + 12])[0]
                    after = xing_at + 8 + 4 * bool(flags & 1) + 4 * bool(flags & 2) + 100 * bool(flags & 4) + 4 * bool(flags & 8)
                    frames = count * first.samples - _lame_delay_padding(frame_data, after)
                    return DeclaredLength(max(frames, 0), first.sample_rate, _XING_TOLERANCE, max_frames, "Xing header")
                return None  # a Xing frame without a frame count: length unknown
        if frame_data[36:40] == b"VBRI":
            count = struct.unpack(">I", frame_data[50:54])[0]
            return DeclaredLength(count * first.samples, first.sample_rate, _XING_TOLERANCE, max_frames, "VBRI header")

        # No header: constant bitrate only if frames at the start, middle and end all agree, and
        # frames reach the end (else unknown bytes there, e.g. an appended tag, would count as audio).
        bitrates = {frame.bitrate for frame in chain}
        reaches_end = False
        for probe_at in (first_at + audio_bytes // 2, max(first_at, audio_end - _PROBE_BYTES)):
            f.seek(probe_at)
            data = f.read(min(_PROBE_BYTES, max(0, audio_end - probe_at)))
            probe = _find_chain(data)
            if probe is not None and probe[1][0].same_stream(first):
                bitrates |= {frame.bitrate for frame in probe[1]}
                if probe_at + len(data) >= audio_end:  # the tail: do frames run on to the end?
                    to_end = _chain(data, probe[0], len(data))
                    reaches_end = to_end is not None
                    bitrates |= {frame.bitrate for frame in to_end or []}
    if len(bitrates) > 1:  # libsndfile would stop at its estimate from the first frame's bitrate
        return DeclaredLength(None, first.sample_rate, 0, max_frames, "variable bitrate without a Xing header")
    if not reaches_end or first.bitrate == min_bitrate:
        return None
    frames = int(audio_bytes * 8 / (first.bitrate * 1000) * first.sample_rate)
    tolerance = 8 * first.samples + frames // 100  # unknown junk or tags at the end
    return DeclaredLength(frames, first.sample_rate, tolerance, max_frames, f"{first.bitrate} kbit/s x {audio_bytes} bytes")


def flac_declared_length(path: str | os.PathLike) -> DeclaredLength | None:
    """Total samples from a FLAC's STREAMINFO (None if unknown: 0, or no STREAMINFO found)."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        start = _id3v2_end(f)
        f.seek(start)
        if f.read(4) != b"fLaC":
            return None
        block = f.read(4 + 34)
        if len(block) < 38 or block[0] & 0x7F != 0:
            return None
        info = block[4:]
        sample_rate = int.from_bytes(info[10:13], "big") >> 4
        total = int.from_bytes(info[13:18], "big") & ((1 << 36) - 1)
        # Metadata blocks (pictures, seek tables) are not audio: skip them for the size bound.
        position = start + 4
        last = False
        while not last:
            f.seek(position)
            header = f.read(4)
            if len(header) < 4:
                break
            last = bool(header[0] & 0x80)
            position += 4 + int.from_bytes(header[1:4], "big")
    if total == 0 or sample_rate == 0:
        return None
    # STREAMINFO's own min frame size and max block size are not trusted for the bound: a frame
    # takes at least _MIN_FLAC_FRAME_BYTES and holds at most 65535 samples.
    max_frames = (max(0, size - position) // _MIN_FLAC_FRAME_BYTES + 1) * 65535
    return DeclaredLength(total, sample_rate, 0, max_frames, "STREAMINFO")
