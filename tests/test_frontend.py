"""The mel frontend against Essentia's TensorflowInputMusiCNN and melspectrogram extractor."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from maest import audio, frontend
from maest.frontend import MelFrontend, num_frames

from conftest import GOOD_CLIPS

TOLERANCE = 1e-4

es = pytest.importorskip("essentia.standard")


def essentia_frames(signal: np.ndarray) -> np.ndarray:
    """Essentia's per-frame transform on frames 1, 2, ... of the extractor (frame 0 is half padding)."""
    algorithm = es.TensorflowInputMusiCNN()
    frames = es.FrameGenerator(signal.astype(np.float32), frameSize=512, hopSize=256, startFromZero=True)
    return np.stack([algorithm(frame) for frame in frames])


def essentia_extractor(signal: np.ndarray, tmp_path) -> np.ndarray:
    """The original preprocessing: Essentia's melspectrogram extractor on a 16 kHz file."""
    from essentia.pytools.extractors.melspectrogram import melspectrogram

    path = tmp_path / "signal.wav"
    sf.write(path, signal, 16000, subtype="FLOAT")
    return melspectrogram(
        str(path), sample_rate=16000, frame_size=512, hop_size=256, window_type="hann",
        low_frequency_bound=0, high_frequency_bound=8000, number_bands=96,
        warping_formula="slaneyMel", weighting="linear", normalize="unit_tri",
        bands_type="power", compression_type="shift_scale_log",
    )


def ours(signal: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return MelFrontend(normalize=False)(torch.from_numpy(signal)[None])[0].numpy().T


@pytest.mark.parametrize("clip", GOOD_CLIPS)
def test_clips_equal_essentia_extractor(audio_dir, clip, tmp_path):
    signal = audio.load(audio_dir / clip)
    mel = ours(signal)
    reference = essentia_extractor(signal, tmp_path)
    assert mel.shape == reference.shape == (num_frames(len(signal)), 96)
    assert np.abs(mel - reference).max() <= TOLERANCE


@pytest.mark.parametrize("length,seed", [(16000, 0), (16128, 1), (16129, 2), (4000, 3), (40000, 4)])
def test_random_signals_equal_essentia(length, seed, tmp_path):
    rng = np.random.default_rng(seed)
    # Noise with a loud and a quiet part exercises both ends of log10(1 + 10000 x).
    signal = (rng.standard_normal(length) * np.where(np.arange(length) < length // 2, 0.5, 1e-3)).astype(np.float32)
    mel = ours(signal)
    per_frame = essentia_frames(signal)
    assert np.abs(mel[1 : 1 + len(per_frame)] - per_frame).max() <= TOLERANCE
    reference = essentia_extractor(signal, tmp_path)
    assert mel.shape == reference.shape
    assert np.abs(mel - reference).max() <= TOLERANCE


def test_frame_count_formula():
    for n, expected in [(16000, 64), (16128, 64), (16129, 65), (480000, 1876), (0, 1), (1, 2), (256, 2)]:
        assert num_frames(n) == expected
        assert MelFrontend()(torch.zeros(1, n)).shape == (1, 96, expected)
    for frames in [2, 64, 1875]:
        assert num_frames(frontend.samples_for_frames(frames)) == frames


def test_normalisation_contract():
    signal = torch.randn(2, 8000) * 0.1
    raw = MelFrontend(normalize=False)(signal)
    normalised = MelFrontend()(signal)
    expected = (raw - 2.06755686098554) / (1.268292820667291 * 2)
    torch.testing.assert_close(normalised, expected)


def test_batch_rows_are_independent():
    signal = torch.randn(3, 20000) * 0.2
    batched = MelFrontend()(signal)
    for i in range(3):
        torch.testing.assert_close(batched[i : i + 1], MelFrontend()(signal[i : i + 1]), atol=1e-5, rtol=0)


def test_filterbank_equals_essentia_melbands():
    melbands = es.MelBands(
        inputSize=257, numberBands=96, sampleRate=16000, lowFrequencyBound=0, highFrequencyBound=8000,
        warpingFormula="slaneyMel", weighting="linear", normalize="unit_tri", type="power", log=False,
    )
    basis = np.eye(257, dtype=np.float32)
    reference = np.stack([melbands(basis[j]) for j in range(257)], axis=1)
    assert np.abs(frontend.mel_filterbank() - reference).max() < 1e-6


def test_rejects_wrong_rank():
    with pytest.raises(ValueError, match="batch, samples"):
        MelFrontend()(torch.zeros(100))
