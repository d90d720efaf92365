"""The input path against its peers: libsamplerate (PyPI samplerate) and Essentia's file pipeline."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from maest import audio, resample
from maest.frontend import MelFrontend

samplerate = pytest.importorskip("samplerate")

# Essentia's file pipeline vs maest's, all frames but the last five (the resamplers flush their
# tails differently): the criterion.
MEL_MAX, MEL_MEAN = 5e-3, 1e-4


def noise(samples: int, seed: int) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(samples) * 0.3).astype(np.float32)


@pytest.mark.parametrize("from_rate", [44100, 48000, 22050, 11025, 8000, 32000, 96000])
def test_exact_ratio_equals_libsamplerate_sinc_medium(from_rate):
    """At the exact ratio the polyphase FIR is libsamplerate's arithmetic: equal to float32 rounding."""
    x = noise(20011, from_rate)
    reference = samplerate.resample(x, 16000 / from_rate, "sinc_medium")
    ours = resample.sinc_medium(torch.from_numpy(x), from_rate, 16000, ratio=16000 / from_rate).numpy()
    assert ours.shape == reference.shape
    assert np.abs(ours - reference).max() < 2e-6


@pytest.mark.parametrize("from_rate", [44100, 48000, 22050, 11025, 44056])
def test_essentia_ratio_equals_libsamplerate_at_that_ratio(from_rate):
    """Essentia hands libsamplerate to/from in float32; the drift it causes is followed (44056 Hz:
    16000/44056 needs 2000 phases, so a nearby fraction is the grid and its drift is followed too)."""
    x = noise(200_003, from_rate + 1)
    ratio = resample.essentia_ratio(from_rate, 16000)
    assert ratio != 16000 / from_rate
    reference = samplerate.resample(x, ratio, "sinc_medium")
    ours = resample.resample(x, from_rate, 16000)
    assert ours.shape == reference.shape
    difference = np.abs(ours - reference)
    # Full-band noise is the worst case of the first-order shift correction (at most 1/64 sample).
    assert difference.max() < 4e-4 and np.sqrt(np.mean(difference**2)) < 2e-5


def test_window_gets_the_whole_file_outputs():
    x = noise(44100 * 9, 3)
    whole = resample.resample(x, 44100, 16000)
    for start_s in [1, 4]:
        window = resample.resample(x[44100 * start_s :], 44100, 16000, start_sample=44100 * start_s)
        expected = whole[16000 * start_s :]
        assert window.shape == expected.shape
        # The window has no audio before its start (streaming decodes a margin and drops it): past
        # the filter's half-length (126 inputs, 46 outputs) it equals the whole-file pass.
        assert np.abs(window[64:] - expected[64:]).max() < 1e-6


@pytest.mark.parametrize("samples", [1, 2, 3, 440, 441, 442, 4409])
def test_odd_and_tiny_lengths(samples):
    x = noise(samples, samples)
    for from_rate in [44100, 48000, 22050, 8000]:
        ratio = resample.essentia_ratio(from_rate, 16000)
        reference = samplerate.resample(x, ratio, "sinc_medium")
        ours = resample.resample(x, from_rate, 16000)
        assert ours.shape == reference.shape == (int(np.floor(samples * ratio)),)
        if ours.size:
            assert np.abs(ours - reference).max() < 1e-4


def test_passthrough_dtypes_and_batches():
    x = noise(16001, 7)
    np.testing.assert_array_equal(resample.resample(x, 16000, 16000), x)
    np.testing.assert_array_equal(resample.resample(x.astype(np.float64), 16000, 16000), x)
    single = resample.resample(x, 44100, 16000)
    assert single.dtype == np.float32
    np.testing.assert_allclose(resample.resample(x.astype(np.float64), 44100, 16000), single, atol=1e-7)
    batch = resample.sinc_medium(torch.from_numpy(np.stack([x, 0.5 * x])), 44100, 16000).numpy()
    np.testing.assert_allclose(batch[0], single, atol=1e-6)
    np.testing.assert_allclose(batch[1], 0.5 * single, atol=1e-6)


def test_downmix_is_the_channel_mean():
    rng = np.random.default_rng(0)
    stereo = rng.standard_normal((44101, 2)).astype(np.float32)
    np.testing.assert_array_equal(resample.downmix(stereo), stereo.mean(axis=1, dtype=np.float32))
    surround = rng.standard_normal((1001, 6)).astype(np.float32)
    np.testing.assert_allclose(resample.downmix(surround), surround.mean(axis=1), atol=2.4e-7, rtol=0)  # 2 ulp
    mono = stereo[:, :1]
    np.testing.assert_array_equal(resample.downmix(mono), mono[:, 0])
    assert resample.downmix(stereo.astype(np.float64)).dtype == np.float32


def test_switch_and_unknown_resampler(tmp_path):
    path = tmp_path / "noise.wav"
    x = noise(44100, 9)
    sf.write(path, x, 44100, subtype="FLOAT")
    import soxr

    np.testing.assert_array_equal(audio.load(path, resampler="soxr"), soxr.resample(x, 44100, 16000, quality="HQ"))
    assert resample.DEFAULT_RESAMPLER == "essentia"
    np.testing.assert_array_equal(audio.load(path), audio.load(path, resampler="essentia"))
    np.testing.assert_array_equal(audio.load(path), resample.resample(x, 44100, 16000))
    with pytest.raises(resample.UnknownResamplerError, match="essentia, soxr"):
        audio.load(path, resampler="sinc_best")


# -- against Essentia's file pipeline (the training input) -----------------------------------------
es = pytest.importorskip("essentia.standard")


def essentia_mel(path) -> np.ndarray:
    from essentia.pytools.extractors.melspectrogram import melspectrogram

    return melspectrogram(
        str(path), sample_rate=16000, frame_size=512, hop_size=256, window_type="hann",
        low_frequency_bound=0, high_frequency_bound=8000, number_bands=96,
        warping_formula="slaneyMel", weighting="linear", normalize="unit_tri",
        bands_type="power", compression_type="shift_scale_log",
    )


def mel_difference(signal: np.ndarray, reference: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        mel = MelFrontend(normalize=False)(torch.from_numpy(signal)[None])[0].numpy().T
    frames = min(len(mel), len(reference)) - 5
    assert frames > 0 and abs(len(mel) - len(reference)) <= 1
    return np.abs(mel[:frames] - reference[:frames])


def converted(audio_dir, tmp_path, clip: str, rate: int, suffix: str, seconds: float = 8.0):
    """A real clip's first ``seconds`` at ``rate`` (soxr) written as ``suffix`` with soundfile."""
    data, source_rate = sf.read(audio_dir / clip, dtype="float32", always_2d=True)
    data = data[: int(seconds * source_rate)]
    if rate != source_rate:
        import soxr

        data = soxr.resample(data, source_rate, rate, quality="VHQ").astype(np.float32)
    path = tmp_path / f"{clip.split('_')[0]}_{rate}{suffix}"
    sf.write(path, np.clip(data, -1, 1), rate, **({"format": "MP3"} if suffix == ".mp3" else {}))
    return path


CONVERSIONS = [  # (clip, rate, format): every rate in every non-MP3 format, from real clips
    ("techbattle_30s_44k_stereo.ogg", 44100, ".flac"),
    ("techbattle_30s_44k_stereo.ogg", 22050, ".wav"),
    ("techbattle_30s_44k_stereo.ogg", 48000, ".ogg"),
    ("temple_8s_48k_stereo.flac", 48000, ".wav"),
    ("temple_8s_48k_stereo.flac", 22050, ".flac"),
    ("temple_8s_48k_stereo.flac", 44100, ".ogg"),
    ("imperialarmy_20s_22k_mono.mp3", 22050, ".ogg"),
    ("imperialarmy_20s_22k_mono.mp3", 44100, ".wav"),
    ("imperialarmy_20s_22k_mono.mp3", 48000, ".flac"),
]


@pytest.mark.parametrize("clip", ["techbattle_30s_44k_stereo.ogg", "temple_8s_48k_stereo.flac", "menu_0.5s_44k_stereo.wav"])
def test_real_clips_equal_essentia_file_pipeline(audio_dir, clip):
    difference = mel_difference(audio.load(audio_dir / clip), essentia_mel(audio_dir / clip))
    assert difference.max() < MEL_MAX and difference.mean() < MEL_MEAN


@pytest.mark.parametrize("clip,rate,suffix", CONVERSIONS)
def test_converted_clips_equal_essentia_file_pipeline(audio_dir, tmp_path, clip, rate, suffix):
    path = converted(audio_dir, tmp_path, clip, rate, suffix)
    difference = mel_difference(audio.load(path), essentia_mel(path))
    assert difference.max() < MEL_MAX and difference.mean() < MEL_MEAN
    # soxr, maest's resampler before, is far from the training input in the top bands.
    assert mel_difference(audio.load(path, resampler="soxr"), essentia_mel(path)).max() > MEL_MAX


@pytest.mark.parametrize("rate", [22050, 44100, 48000])
def test_mp3_resampling_equals_essentia(audio_dir, tmp_path, rate):
    """MP3 at each rate: maest's resampler on Essentia's own decode meets the criterion exactly;
    through soundfile's decoder (mpg123; Essentia's FFmpeg fixed-point decoder differs by up to one
    16-bit step) the mean difference is the decoder's, a little above the criterion."""
    path = converted(audio_dir, tmp_path, "imperialarmy_20s_22k_mono.mp3", rate, ".mp3") if rate != 22050 else audio_dir / "imperialarmy_20s_22k_mono.mp3"
    reference = essentia_mel(path)
    decoded, decoded_rate, channels = es.AudioLoader(filename=str(path))()[:3]
    mono = resample.downmix(decoded[:, :channels])
    difference = mel_difference(resample.resample(mono, int(decoded_rate), 16000), reference)
    assert difference.max() < MEL_MAX and difference.mean() < MEL_MEAN
    through_soundfile = mel_difference(audio.load(path), reference)
    assert through_soundfile.max() < MEL_MAX and through_soundfile.mean() < 3 * MEL_MEAN
