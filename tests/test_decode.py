"""One decode path: mels equal the pipeline's, bad files become failure records, decoders travel to workers."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from conftest import BAD_CLIPS, GOOD_CLIPS
from maest import audio
from maest.decode import CentreRawMel, Decoded, DecodeFailure, TrackMel, decode, decode_all, failure_reason
from maest.frontend import SAMPLE_RATE, MelFrontend


def test_bad_files_are_failure_records_not_errors(audio_dir, tmp_path):
    decoder = TrackMel()
    for name in BAD_CLIPS:
        result = decode(audio_dir / name, decoder)
        assert isinstance(result, DecodeFailure) and result.path == str(audio_dir / name) and result.reason
    missing = decode(tmp_path / "gone.wav", decoder)
    assert isinstance(missing, DecodeFailure) and "no such file" in missing.reason
    reasons = {name: decode(audio_dir / name, decoder).reason for name in BAD_CLIPS}
    assert "empty" in reasons["empty.wav"] and "truncated" in reasons["truncated_techbattle.ogg"]
    assert failure_reason(ValueError("odd")) == "ValueError: odd"
    assert failure_reason(audio.AudioDecodeError("x.wav", "empty file")) == "empty file"


def test_track_mel_is_the_frontend_on_the_whole_file(audio_dir):
    path = audio_dir / "ambience_12s_16k_mono.wav"
    mel, duration = decode(path, TrackMel(mean=1.5, std=2.0, chunk_seconds=5))
    samples = audio.load(path, SAMPLE_RATE)
    with torch.no_grad():
        whole = MelFrontend(mean=1.5, std=2.0)(torch.from_numpy(samples)[None])[0]
    assert duration == pytest.approx(len(samples) / SAMPLE_RATE)
    torch.testing.assert_close(mel, whole, atol=1e-4, rtol=1e-4)


def test_decoders_pickle_without_their_frontend_and_workers_agree(audio_dir):
    """What DataLoader workers and Ray tasks receive: a small decoder that gives the same numbers."""
    decoder = TrackMel(min_frames=16)
    decoder(audio_dir / "menu_0.5s_44k_stereo.wav")  # builds the frontend
    copy = pickle.loads(pickle.dumps(decoder))
    assert copy._frontend is None and copy == decoder
    paths = [audio_dir / name for name in ["menu_0.5s_44k_stereo.wav", "empty.wav", "temple_8s_48k_stereo.flac"]]
    here = list(decode_all(paths, decoder, workers=0))
    there = list(decode_all(paths, copy, workers=2))
    assert [i for i, _ in here] == [i for i, _ in there] == [0, 1, 2]
    assert isinstance(here[1][1], DecodeFailure) and here[1][1] == there[1][1]
    for (_, a), (_, b) in zip(here[::2], there[::2]):
        assert isinstance(a, Decoded) and a.duration == b.duration
        torch.testing.assert_close(a.mel, b.mel, atol=0, rtol=0)
    assert pickle.loads(pickle.dumps(here[1][1])) == here[1][1]


def test_centre_raw_mel_is_the_stores_layout(audio_dir):
    path = audio_dir / "techbattle_30s_44k_stereo.ogg"
    mel, seconds = CentreRawMel(keep_seconds=10.0)(path)
    assert mel.dtype == np.float16 and mel.shape[1] == 96 and seconds == pytest.approx(10.0, abs=0.01)
    full, _ = CentreRawMel(keep_seconds=300.0)(audio_dir / GOOD_CLIPS[0])
    assert full.shape[0] > mel.shape[0] * 1.1
    assert decode("a\tb.wav", CentreRawMel()).reason == "ValueError: path contains a tab or newline"
