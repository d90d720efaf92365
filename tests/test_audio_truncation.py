"""Cut-off and lying MP3/FLAC files are refused; good ones (tags, CBR, VBR, MPEG-2, layer II) are not.

Also: what libmpg123 prints on fd 2 for a bad file stays off the terminal and goes into the reason.
"""

from __future__ import annotations

import os
import struct

import numpy as np
import pytest
import soundfile as sf

from maest import audio
from maest.audio import AudioDecodeError
from maest.audio_headers import _parse_frame, flac_declared_length, mp3_declared_length

CLIP = "imperialarmy_20s_22k_mono.mp3"  # MPEG-2 layer III, 22.05 kHz, LAME Xing header


def _tone(rate: int, seconds: float = 5.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (0.3 * np.sin(2 * np.pi * 440 * t * (1 + 0.2 * np.sin(t)))).astype(np.float32)


def _write_mp3(path, rate: int, mode: str) -> bytes:
    if "MP3" not in sf.available_formats():
        pytest.skip("this libsndfile cannot write MP3")
    sf.write(path, _tone(rate), rate, format="MP3", bitrate_mode=mode, compression_level=0.3)
    return path.read_bytes()


def test_real_mp3_declares_its_gapless_length(audio_dir):
    declared = mp3_declared_length(audio_dir / CLIP)
    assert declared.source == "Xing header" and declared.sample_rate == 22050
    assert declared.frames == 441000  # 768 frames x 576 - LAME delay 576 - padding 792
    whole, rate = sf.read(audio_dir / CLIP, dtype="float32")
    np.testing.assert_allclose(audio.load(audio_dir / CLIP, sample_rate=rate), whole, atol=1e-6)


@pytest.mark.parametrize("keep", [1000, 0.5, 0.9])
def test_cut_real_mp3_is_refused(audio_dir, tmp_path, keep):
    data = (audio_dir / CLIP).read_bytes()
    cut = tmp_path / "cut.mp3"
    cut.write_bytes(data[: keep if isinstance(keep, int) else int(len(data) * keep)])
    with pytest.raises(AudioDecodeError, match="truncated download") as caught:
        audio.load(cut)
    if keep != 1000:
        assert "ends after" in caught.value.reason and "of 20.00 s" in caught.value.reason
    # A window that runs into the cut is refused too; one before it reads.
    if keep == 0.5:
        with pytest.raises(AudioDecodeError, match="truncated"):
            audio.load(cut, offset=8.0, duration=5.0)
        with pytest.raises(AudioDecodeError, match=r"ends before 12.00 s of 20.00 s"):
            audio.load(cut, offset=12.0, duration=5.0)
        assert len(audio.load(cut, offset=2.0, duration=3.0)) == 48000


def test_tagged_mp3_decodes_like_the_untagged_one(audio_dir, tmp_path):
    """ID3v2 before the audio and APEv2 + ID3v1 after it are skipped, not counted as audio."""
    frames = b"TIT2" + struct.pack(">I", 6) + b"\0\0" + b"\0title"
    padding = b"\0" * 3000
    body = frames + padding
    synchsafe = bytes([(len(body) >> s) & 0x7F for s in (21, 14, 7, 0)])
    id3v2 = b"ID3\x03\x00\x00" + synchsafe + body
    ape_items = struct.pack("<II", 5, 0) + b"Title\0" + b"hello"
    ape_footer = b"APETAGEX" + struct.pack("<IIII", 2000, len(ape_items) + 32, 1, 0) + b"\0" * 8
    id3v1 = b"TAG" + b"x" * 125
    tagged = tmp_path / "tagged.mp3"
    tagged.write_bytes(id3v2 + (audio_dir / CLIP).read_bytes() + ape_items + ape_footer + id3v1)
    assert mp3_declared_length(tagged) == mp3_declared_length(audio_dir / CLIP)
    np.testing.assert_array_equal(audio.load(tagged), audio.load(audio_dir / CLIP))


@pytest.mark.parametrize("rate", [44100, 22050, 8000])  # MPEG-1, MPEG-2 and MPEG-2.5 layer III
@pytest.mark.parametrize("mode", ["CONSTANT", "VARIABLE"])
def test_generated_mp3_whole_reads_cut_is_refused(tmp_path, rate, mode):
    data = _write_mp3(tmp_path / "whole.mp3", rate, mode)
    assert mp3_declared_length(tmp_path / "whole.mp3").source == "Xing header"  # Info for CBR, Xing for VBR
    assert len(audio.load(tmp_path / "whole.mp3", sample_rate=rate)) == 5 * rate
    for keep in (0.5, 0.8):
        cut = tmp_path / f"cut{keep}.mp3"
        cut.write_bytes(data[: int(len(data) * keep)])
        with pytest.raises(AudioDecodeError, match="truncated download"):
            audio.load(cut, sample_rate=rate)


@pytest.mark.parametrize("rate", [44100, 22050])
def test_cbr_mp3_without_xing_frame_is_measured_by_its_size(tmp_path, rate):
    data = _write_mp3(tmp_path / "cbr.mp3", rate, "CONSTANT")
    bare = tmp_path / "bare.mp3"
    bare.write_bytes(data[_parse_frame(data[:4]).length :])  # drop the Info frame: a plain CBR stream
    declared = mp3_declared_length(bare)
    assert "kbit/s" in declared.source
    decoded = audio.load(bare, sample_rate=rate)
    assert abs(len(decoded) - declared.frames) <= declared.tolerance
    assert abs(len(decoded) / rate - 5.0) < 0.1
    # A download whose second half was never written (zeros) is refused.
    holey = tmp_path / "holey.mp3"
    holey.write_bytes(bare.read_bytes()[: len(bare.read_bytes()) // 2] + bytes(len(bare.read_bytes()) // 2 + 1))
    with pytest.raises(AudioDecodeError):
        audio.load(holey, sample_rate=rate)
    # Bytes after the last frame that are no tag maest knows: the size no longer measures the audio.
    appended = tmp_path / "appended.mp3"
    appended.write_bytes(bare.read_bytes() + b"\x01" * 50_000)
    assert mp3_declared_length(appended) is None


def test_vbr_mp3_without_xing_frame_decodes_to_its_end(tmp_path):
    """libsndfile stops such a file at a length guessed from the first frame; FFmpeg reads all of it."""
    data = _write_mp3(tmp_path / "vbr.mp3", 44100, "VARIABLE")
    bare = tmp_path / "bare.mp3"
    bare.write_bytes(data[_parse_frame(data[:4]).length :])
    declared = mp3_declared_length(bare)
    assert declared is not None and declared.frames is None  # length unknown: nothing to compare
    assert abs(len(audio.load(bare)) / 16000 - 5.0) < 0.1


def test_layer2_mp3_is_measured_and_accepted(tmp_path):
    av = pytest.importorskip("av")
    rate, tone = 44100, _tone(44100)
    path = tmp_path / "layer2.mp3"
    with av.open(str(path), "w", format="mp2") as container:
        stream = container.add_stream("mp2", rate=rate)
        stream.layout, stream.bit_rate = "mono", 128000
        for first in range(0, len(tone), 1152):
            frame = av.AudioFrame.from_ndarray(tone[None, first : first + 1152].copy(), format="flt", layout="mono")
            frame.sample_rate, frame.pts = rate, first
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    declared = mp3_declared_length(path)
    assert declared.source.startswith("128 kbit/s") and abs(declared.frames / rate - 5.0) < 0.1
    assert abs(len(audio.load(path)) / 16000 - 5.0) < 0.1


def _flac_with_total(tmp_path, total: int | None = None) -> tuple:
    path = tmp_path / "tone.flac"
    sf.write(path, np.stack([_tone(16000, 2.0), _tone(16000, 2.0)[::-1]], axis=1), 16000, subtype="PCM_16")
    data = bytearray(path.read_bytes())
    assert data[:4] == b"fLaC" and data[4] & 0x7F == 0  # STREAMINFO first
    info = 8  # "fLaC" + block header
    if total is not None:  # 36-bit total samples: low 4 bits of byte 13, then bytes 14-17
        data[info + 13] = (data[info + 13] & 0xF0) | (total >> 32)
        data[info + 14 : info + 18] = (total & 0xFFFFFFFF).to_bytes(4, "big")
    path.write_bytes(bytes(data))
    return path, bytes(data)


def test_flac_declaring_more_than_it_holds_is_refused(tmp_path):
    path, _ = _flac_with_total(tmp_path, 32000 + 16000)  # one second more than encoded
    assert flac_declared_length(path).frames == 48000
    with pytest.raises(AudioDecodeError, match=r"ends after 2.00 s of 3.00 s \(per its STREAMINFO\); truncated"):
        audio.load(path, sample_rate=16000)


def test_cut_flac_is_refused_with_where_it_ends(tmp_path):
    path, data = _flac_with_total(tmp_path)
    assert len(audio.load(path)) == 32000
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(AudioDecodeError, match=r"ends after .* s of 2.00 s .*truncated"):
        audio.load(path)


def test_absurd_flac_length_is_refused_before_allocating(tmp_path, monkeypatch):
    path, _ = _flac_with_total(tmp_path, (1 << 36) - 1)  # 49 days at 16 kHz in a few KB
    monkeypatch.setattr(audio, "_read_soundfile", lambda *a: pytest.fail("decoded an absurd header"))
    with pytest.raises(AudioDecodeError, match=r"declares 4294967.* s but its \d+ bytes hold at most"):
        audio.load(path)


def test_huge_claim_reads_in_blocks_with_identical_samples(audio_dir, monkeypatch):
    """The block path (taken when a header claims implausibly much) gives the same samples.

    libmpg123's float output can differ in the last bit with the read size, hence the MP3 tolerance.
    """
    expected = {clip: audio.load(audio_dir / clip) for clip in (CLIP, "temple_8s_48k_stereo.flac")}
    monkeypatch.setattr(audio, "_MAX_FRAMES_PER_BYTE", 0)
    monkeypatch.setattr(audio, "_READ_BLOCK_FRAMES", 100_000)
    for clip, signal in expected.items():
        np.testing.assert_allclose(audio.load(audio_dir / clip), signal, atol=0 if clip.endswith(".flac") else 1e-6)


def test_wav_claiming_hours_in_a_few_kb_is_refused(tmp_path):
    path = tmp_path / "liar.wav"
    sf.write(path, _tone(16000, 0.1), 16000, subtype="PCM_16")
    data = bytearray(path.read_bytes())
    at = data.find(b"data")
    data[at + 4 : at + 8] = struct.pack("<I", 16000 * 2 * 3600 * 3)  # three hours
    path.write_bytes(bytes(data))
    with pytest.raises(AudioDecodeError, match="truncated"):
        audio.load(path)


def test_decoder_noise_stays_off_the_terminal(audio_dir, tmp_path, capfd):
    with pytest.raises(AudioDecodeError, match="decoder said: Note: Illegal Audio-MPEG-Header") as caught:
        audio.load(audio_dir / "not_audio.mp3")
    assert caught.value.reason.count("Trying to resync") == 1
    cut = tmp_path / "cut.mp3"
    cut.write_bytes((audio_dir / CLIP).read_bytes()[:60000])
    with pytest.raises(AudioDecodeError, match="truncated"):
        audio.load(cut)
    audio.info(cut)
    captured = capfd.readouterr()
    assert captured.err == "" and captured.out == ""


def test_other_stderr_output_during_a_decode_passes_through(capfd):
    with audio._decoder_stderr() as captured:
        os.write(2, b"Note: Trying to resync...\n")
        os.write(2, b"maest progress line\n")
    assert "resync" in captured.text
    assert capfd.readouterr().err == "maest progress line\n"
