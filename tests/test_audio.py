"""Decoding: every real clip, every bad file, windows, downmix and resampling."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from maest import audio
from maest.audio import AudioDecodeError

from conftest import GOOD_CLIPS

DURATIONS = {
    "ambience_12s_16k_mono.wav": 12.0,
    "imperialarmy_20s_22k_mono.mp3": 20.0,
    "menu_0.5s_44k_stereo.wav": 0.5,
    "techbattle_30s_44k_stereo.ogg": 30.0,
    "temple_8s_48k_stereo.flac": 8.0,
}


@pytest.mark.parametrize("clip", GOOD_CLIPS)
def test_real_clips_decode_to_16k_mono(audio_dir, clip):
    signal = audio.load(audio_dir / clip)
    assert signal.dtype == np.float32 and signal.ndim == 1
    assert abs(len(signal) / 16000 - DURATIONS[clip]) < 0.06
    assert np.isfinite(signal).all() and np.abs(signal).max() > 1e-3


@pytest.mark.parametrize("clip,reason", [
    ("empty.wav", "empty"),
    ("not_audio.mp3", "not a readable audio file"),
    ("truncated_techbattle.ogg", "truncated"),
])
def test_bad_files_raise_specific_error(audio_dir, clip, reason):
    with pytest.raises(AudioDecodeError, match=reason) as caught:
        audio.load(audio_dir / clip)
    assert caught.value.path.endswith(clip)
    assert reason in caught.value.reason


def test_missing_file(tmp_path):
    with pytest.raises(AudioDecodeError, match="no such file"):
        audio.load(tmp_path / "nope.wav")


def test_zero_sample_file(tmp_path):
    path = tmp_path / "silent.wav"
    sf.write(path, np.zeros((0, 2), np.float32), 16000)
    with pytest.raises(AudioDecodeError, match="zero audio samples"):
        audio.load(path)


def test_truncated_wav(tmp_path):
    path = tmp_path / "full.wav"
    sf.write(path, np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1, 16000)
    cut = tmp_path / "cut.wav"
    cut.write_bytes(path.read_bytes()[:10000])
    with pytest.raises(AudioDecodeError, match="truncated"):
        audio.load(cut)


@pytest.mark.parametrize("clip", ["techbattle_30s_44k_stereo.ogg", "imperialarmy_20s_22k_mono.mp3", "temple_8s_48k_stereo.flac"])
def test_window_equals_slice_of_whole_file(audio_dir, clip):
    whole, rate = sf.read(audio_dir / clip, dtype="float32", always_2d=True)
    window = audio.load(audio_dir / clip, sample_rate=rate, offset=2.0, duration=3.0)
    expected = whole.mean(axis=1)[2 * rate : 5 * rate]
    np.testing.assert_allclose(window, expected, atol=1e-6)


def test_window_past_the_end(audio_dir):
    with pytest.raises(AudioDecodeError, match="no samples"):
        audio.load(audio_dir / "menu_0.5s_44k_stereo.wav", offset=10.0)


def test_downmix_averages_channels(tmp_path):
    rng = np.random.default_rng(1)
    stereo = rng.uniform(-0.5, 0.5, (8000, 2)).astype(np.float32)
    path = tmp_path / "stereo.wav"
    sf.write(path, stereo, 16000, subtype="FLOAT")
    np.testing.assert_allclose(audio.load(path), stereo.mean(axis=1), atol=1e-7)


@pytest.mark.parametrize("rate", [22050, 44100, 48000, 8000])
def test_resampling_keeps_a_tone(tmp_path, rate):
    seconds, tone = 2.0, 440.0
    t = np.arange(int(seconds * rate)) / rate
    path = tmp_path / f"tone_{rate}.wav"
    sf.write(path, (0.5 * np.sin(2 * np.pi * tone * t)).astype(np.float32), rate, subtype="FLOAT")
    signal = audio.load(path)
    assert abs(len(signal) - 32000) <= 1
    spectrum = np.abs(np.fft.rfft(signal[4000:-4000]))
    peak_hz = np.argmax(spectrum) * 16000 / (len(signal) - 8000)
    assert abs(peak_hz - tone) < 2.0
    assert abs(np.sqrt(np.mean(signal[4000:-4000] ** 2)) - 0.5 / np.sqrt(2)) < 0.01


def test_pyav_path_for_other_containers(tmp_path):
    av = pytest.importorskip("av")
    rate = 44100
    t = np.arange(rate * 2) / rate
    tone = (0.3 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
    path = tmp_path / "tone.m4a"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=rate)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(tone[None], format="flt", layout="mono")
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    signal = audio.load(path)
    assert abs(len(signal) / 16000 - 2.0) < 0.1
    window = audio.load(path, offset=0.5, duration=1.0)
    assert abs(len(window) - 16000) <= 1
    spectrum = np.abs(np.fft.rfft(window))
    assert abs(np.argmax(spectrum) * 16000 / len(window) - 1000) < 3


def _encode_with_pyav(path, codec: str, rate: int, channels: np.ndarray) -> None:
    """Write ``channels`` (channels, samples) float32 with an FFmpeg encoder (PyAV)."""
    av = pytest.importorskip("av")
    layout = {1: "mono", 2: "stereo"}[len(channels)]
    try:
        with av.open(str(path), "w") as container:
            stream = container.add_stream(codec, rate=rate)
            stream.layout = layout
            for first in range(0, channels.shape[1], 960):
                frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(channels[:, first : first + 960]),
                                                   format="fltp", layout=layout)
                frame.sample_rate, frame.pts = rate, first
                for packet in stream.encode(frame):
                    container.mux(packet)
            for packet in stream.encode(None):
                container.mux(packet)
    except (av.error.FFmpegError, ValueError) as error:  # encoder missing from this FFmpeg build
        pytest.skip(f"cannot encode {codec}: {error}")


def test_pyav_files_average_channels_like_soundfile_files(tmp_path):
    """A stereo file read by FFmpeg is the channel mean too (FFmpeg's mono downmix is 3 dB louder)."""
    rng = np.random.default_rng(2)
    stereo = rng.uniform(-0.5, 0.5, (2, 16000)).astype(np.float32)
    path = tmp_path / "stereo.mka"  # Matroska goes through PyAV; PCM float is lossless
    _encode_with_pyav(path, "pcm_f32le", 16000, stereo)
    np.testing.assert_allclose(audio.load(path), stereo.mean(axis=0), atol=1e-7)
    sf.write(tmp_path / "stereo.wav", stereo.T, 16000, subtype="FLOAT")
    np.testing.assert_allclose(audio.load(path), audio.load(tmp_path / "stereo.wav"), atol=1e-7)


@pytest.mark.parametrize("codec,suffix,rate", [("libopus", ".opus", 48000), ("aac", ".m4a", 44100)])
def test_pyav_window_equals_slice_of_whole_decode(tmp_path, codec, suffix, rate):
    """A window decoded after a seek equals the same samples of a whole-file decode (decoder pre-roll)."""
    t = np.arange(int(rate * 6.5)) / rate
    left = 0.3 * np.sin(2 * np.pi * 440 * t * (1 + 0.1 * np.sin(3 * t)))
    right = 0.2 * np.sin(2 * np.pi * 1320 * t)
    path = tmp_path / f"tones{suffix}"
    _encode_with_pyav(path, codec, rate, np.stack([left, right]).astype(np.float32))
    whole = audio.load(path, sample_rate=rate)
    for offset in [1.0, 2.0, 3.37]:
        window = audio.load(path, sample_rate=rate, offset=offset, duration=1.5)
        start = int(round(offset * rate))
        assert len(window) == int(round(1.5 * rate))
        np.testing.assert_allclose(window, whole[start : start + len(window)], atol=1e-4)


def test_file_shorter_than_one_output_sample_is_a_decode_error(tmp_path):
    path = tmp_path / "one_sample.wav"
    sf.write(path, np.full(1, 0.5, np.float32), 44100)
    with pytest.raises(AudioDecodeError, match="shorter than one sample"):
        audio.load(path)
    assert len(audio.load(path, sample_rate=44100)) == 1


def test_ogg_with_bytes_appended_after_its_last_page_still_decodes(audio_dir, tmp_path):
    tagged = tmp_path / "tagged.ogg"
    tagged.write_bytes((audio_dir / "techbattle_30s_44k_stereo.ogg").read_bytes() + b"TAG" + b"\0" * 125)  # ID3v1
    np.testing.assert_array_equal(audio.load(tagged), audio.load(audio_dir / "techbattle_30s_44k_stereo.ogg"))


def test_ogg_cut_exactly_at_a_page_boundary_is_truncated(audio_dir, tmp_path):
    data = (audio_dir / "techbattle_30s_44k_stereo.ogg").read_bytes()
    boundary = data.rfind(b"OggS", 0, len(data) // 2)  # the start of a page in the middle: the page before is complete
    cut = tmp_path / "cut.ogg"
    cut.write_bytes(data[:boundary])
    with pytest.raises(AudioDecodeError, match="end-of-stream"):
        audio.load(cut)
