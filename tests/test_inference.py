"""Segmenting, chunked mels, and the Python API (embed / tag) on tiny random models."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from conftest import GOOD_CLIPS
from maest import audio, frontend, streaming
from maest.checkpoints import save_native
from maest.configs import MaestConfig
from maest.inference import EmbedOptions, InputAudioError, MaestPipeline, load_model, top_labels
from maest.model import Maest, pool_tokens
from maest.segments import gather_segments, hop_frames, segment_starts

LABELS = ["Rock---Punk", "Electronic---Techno", "Jazz---Bop", "Pop---Ballad", "Classical---Baroque"]


def tiny_config(**overrides) -> MaestConfig:
    values = dict(depth=2, width=32, heads=2, num_classes=5, segment_frames=200, labels=LABELS, name="tiny")
    values.update(overrides)
    return MaestConfig(**values)


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> str:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "tiny"
    save_native(Maest(tiny_config()), path)
    return str(path)


@pytest.fixture(scope="module")
def pipeline(tiny_checkpoint) -> MaestPipeline:
    return load_model(tiny_checkpoint, device="cpu")


def tone(seconds: float, rate: int = 16000, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * 440 * t * (1 + 0.1 * np.sin(t))) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)


# -- segment arithmetic ----------------------------------------------------------------------------
@pytest.mark.parametrize("segment_frames", [16, 200, 312, 1875])
@pytest.mark.parametrize("overlap", [0.0, 0.25, 0.5, 0.75, 0.9])
def test_segments_cover_every_frame(segment_frames, overlap):
    hop = hop_frames(segment_frames, overlap)
    for total in list(range(1, 3 * segment_frames + 7)) + [10 * segment_frames + 1, 225_001]:
        segments = segment_starts(total, segment_frames, overlap)
        starts, length = segments.starts, segments.frames
        assert length == min(total, segment_frames)
        assert starts[0] == 0 and starts[-1] + length == total, (total, starts)
        assert np.all(np.diff(starts) > 0) and np.all(np.diff(starts) <= hop)
        # Regular starts on the hop grid, then at most one extra segment ending on the last frame.
        regular = starts[:-1] if len(starts) > 1 and starts[-1] % hop else starts
        assert np.array_equal(regular, np.arange(len(regular)) * hop)
        covered = np.zeros(total, bool)
        for start in starts:
            covered[start : start + length] = True
        assert covered.all()


def test_segment_rule_examples():
    assert segment_starts(1876, 1875).starts.tolist() == [0, 1]
    assert segment_starts(3751, 1875).starts.tolist() == [0, 938, 1876]
    assert segment_starts(500, 200).starts.tolist() == [0, 100, 200, 300]
    short = segment_starts(33, 1875)
    assert short.starts.tolist() == [0] and short.frames == 33
    centre = segment_starts(1000, 200, crop="center")
    assert centre.starts.tolist() == [400] and centre.frames == 200
    assert segment_starts(150, 200, crop="center").frames == 150
    assert np.allclose(segment_starts(500, 200).start_seconds, [0, 1.6, 3.2, 4.8])
    with pytest.raises(ValueError):
        hop_frames(200, 1.0)
    with pytest.raises(ValueError):
        segment_starts(0, 200)
    with pytest.raises(ValueError):
        segment_starts(100, 200, crop="middle")


def test_gather_segments_equals_slicing():
    mel = torch.randn(96, 700)
    starts = np.array([0, 100, 500])
    out = gather_segments(mel, starts, 200)
    assert out.shape == (3, 96, 200) and out.is_contiguous()
    for i, s in enumerate(starts):
        assert torch.equal(out[i], mel[:, s : s + 200])


# -- chunked mel ---------------------------------------------------------------------------------------
def test_mel_stream_equals_whole_waveform_for_any_block_sizes():
    mel_frontend = frontend.MelFrontend()
    rng = np.random.default_rng(1)
    for samples in [1, 255, 256, 257, 511, 512, 16000, 40_017]:
        waveform = tone(samples / 16000 + 1e-9, seed=samples)[:samples]
        cuts = np.sort(rng.choice(np.arange(1, samples), size=min(5, samples - 1), replace=False)) if samples > 1 else []
        blocks = np.split(waveform, cuts)
        mel, count = streaming.track_mel(iter(blocks), mel_frontend)
        whole = mel_frontend(torch.from_numpy(waveform)[None])[0]
        assert count == samples and mel.shape == whole.shape == (96, frontend.num_frames(samples))
        torch.testing.assert_close(mel, whole, atol=1e-5, rtol=0)


def test_chunked_long_file_mel_equals_whole_file_mel(tmp_path):
    path = tmp_path / "three_minutes.wav"
    sf.write(path, tone(181.3, 22050, seed=2), 22050)
    mel_frontend = frontend.MelFrontend()
    chunked, duration = streaming.file_mel(path, mel_frontend, chunk_seconds=7)
    whole = mel_frontend(torch.from_numpy(audio.load(path))[None])[0]
    assert duration == pytest.approx(181.3, abs=1e-3)
    assert chunked.shape == whole.shape
    torch.testing.assert_close(chunked, whole, atol=1e-4, rtol=0)


def test_stream_audio_blocks_concatenate_to_the_whole_decode(audio_dir):
    for name in ["techbattle_30s_44k_stereo.ogg", "imperialarmy_20s_22k_mono.mp3", "temple_8s_48k_stereo.flac"]:
        blocks = list(streaming.stream_audio(audio_dir / name, chunk_seconds=4))
        whole = audio.load(audio_dir / name)
        assert all(len(b) == 4 * 16000 for b in blocks[:-1])
        joined = np.concatenate(blocks)
        assert len(joined) == len(whole)
        np.testing.assert_allclose(joined, whole, atol=1e-4)


# -- the API ------------------------------------------------------------------------------------------
def test_segments_are_slices_of_the_whole_track_mel(pipeline):
    """Each segment's input is the whole-track mel sliced (the training convention), early exit at blocks."""
    waveform = tone(9.0)
    embeddings, starts = pipeline.embed(waveform, blocks=1, tokens=("avg", "cls"), per_segment=True)
    mel = pipeline.frontend(torch.from_numpy(waveform)[None])[0]
    frames = segment_starts(mel.shape[-1], 200).starts
    assert np.allclose(starts, frames * 0.016)
    with torch.inference_mode():
        manual = torch.stack([
            pool_tokens(pipeline.model.forward_features(mel[None, :, s : s + 200], blocks=1), ("avg", "cls"))[0]
            for s in frames
        ]).numpy()
    assert embeddings.shape == (len(frames), 64)
    np.testing.assert_allclose(embeddings, manual, atol=1e-5)


def test_track_embedding_is_the_mean_of_segment_embeddings(pipeline):
    waveform = tone(7.3, seed=5)
    track = pipeline.embed(waveform, blocks=2)
    segments, starts = pipeline.embed(waveform, blocks=2, per_segment=True)
    assert track.shape == (96,) and track.dtype == np.float32
    assert len(segments) == len(starts) > 1
    np.testing.assert_allclose(segments.mean(axis=0), track, atol=1e-6)


def test_patchout_and_token_options_change_outputs_not_shapes(pipeline):
    waveform = tone(4.0)
    base = pipeline.embed(waveform, blocks=2)
    for kwargs in [dict(patchout_time=3), dict(patchout_freq=(0, 1, 8)), dict(crop="center")]:
        other = pipeline.embed(waveform, blocks=2, **kwargs)
        assert other.shape == base.shape and not np.allclose(other, base)
    assert pipeline.embed(waveform, blocks=2, tokens="dist").shape == (32,)
    np.testing.assert_allclose(pipeline.embed(waveform, blocks=2, tokens=("dist",)), base[32:64], atol=1e-6)


def test_centre_crop_is_one_central_segment(pipeline):
    waveform = tone(10.0)
    segments, starts = pipeline.embed(waveform, blocks=2, crop="center", per_segment=True)
    frames = frontend.num_frames(len(waveform))
    assert len(segments) == 1 and starts[0] == pytest.approx((frames - 200) // 2 * 0.016)


def test_batch_composition_does_not_change_a_track(pipeline):
    tracks = {name: pipeline.mel(tone(seconds, seed=i)) for i, (name, seconds) in
              enumerate([("a", 6.0), ("b", 2.1), ("c", 0.4), ("d", 4.3)])}
    options = EmbedOptions(blocks=2)
    alone = {k: dict(pipeline.run_tracks([(k, *v)], "embed", options, batch_size=1))[k] for k, v in tracks.items()}
    for batch_size, order in [(3, list(tracks)), (16, list(tracks)[::-1])]:
        mixed = dict(pipeline.run_tracks([(k, *tracks[k]) for k in order], "embed", options, batch_size))
        for key in tracks:
            np.testing.assert_allclose(mixed[key].outputs, alone[key].outputs, atol=1e-6, rtol=0)


def test_short_and_sub_patch_audio(pipeline):
    """0.1 s is padded with silence to one patch (16 frames); a 2 s track is one short segment."""
    tiny = tone(0.1)
    embedding, starts = pipeline.embed(tiny, blocks=2, per_segment=True)
    padded = np.concatenate([tiny, np.zeros(frontend.samples_for_frames(16) - len(tiny), np.float32)])
    np.testing.assert_allclose(embedding[0], pipeline.embed(padded, blocks=2), atol=1e-6)
    assert starts.tolist() == [0.0]
    segments, _ = pipeline.embed(tone(2.0), blocks=2, per_segment=True)
    assert segments.shape == (1, 96)


def test_waveform_at_another_rate_is_resampled(pipeline):
    at_44k = tone(3.0, rate=44100)
    resampled = pipeline.embed(at_44k, blocks=2, sample_rate=44100)
    np.testing.assert_allclose(resampled, pipeline.embed(audio.resample(at_44k, 44100, 16000), blocks=2), atol=1e-6)
    assert not np.allclose(resampled, pipeline.embed(at_44k, blocks=2), atol=1e-3)  # read as 16 kHz: different


def test_bad_inputs_raise_clear_errors(pipeline):
    with pytest.raises(InputAudioError, match="1-D"):
        pipeline.embed(np.zeros((2, 16000), np.float32), blocks=2)
    with pytest.raises(InputAudioError):
        pipeline.embed(np.zeros(0, np.float32), blocks=2)
    with pytest.raises(InputAudioError, match="shorter than one sample"):
        pipeline.embed(np.full(1, 0.5, np.float32), blocks=2, sample_rate=44100)
    with pytest.raises(ValueError, match="out of range for this 2-block model: pass --blocks 1..2"):
        pipeline.embed(tone(1.0), blocks=7)
    with pytest.raises(ValueError, match="tokens"):
        pipeline.embed(tone(1.0), blocks=2, tokens=("cls", "mean"))
    with pytest.raises(ValueError, match="patchout_freq"):
        pipeline.embed(tone(1.0), blocks=2, patchout_freq=(9,))


def test_tag_is_the_mean_of_segment_sigmoids(pipeline):
    waveform = tone(6.0, seed=9)
    probabilities = pipeline.predict(waveform)
    mel = pipeline.frontend(torch.from_numpy(waveform)[None])[0]
    starts = segment_starts(mel.shape[-1], 200).starts
    with torch.inference_mode():
        manual = torch.sigmoid(pipeline.model(gather_segments(mel, starts, 200))).mean(0).numpy()
    np.testing.assert_allclose(probabilities, manual, atol=1e-6)
    tags = pipeline.tag(waveform, top_k=3)
    assert [label for label, _ in tags] == [LABELS[i] for i in np.argsort(-manual, kind="stable")[:3]]
    assert tags[0][1] == pytest.approx(manual.max(), abs=1e-6)
    assert len(pipeline.tag(waveform, top_k=None)) == 5


def test_labels_fall_back_to_discogs_lists_and_class_names():
    assert MaestPipeline(Maest(tiny_config(labels=None, num_classes=400))).labels[0].count("---") == 1
    assert MaestPipeline(Maest(tiny_config(labels=None))).labels == [f"class_{i}" for i in range(5)]
    assert top_labels(np.array([0.1, 0.9, 0.5]), ["a", "b", "c"], 2) == [("b", 0.9), ("c", 0.5)]


def test_real_clips_embed_through_the_api(pipeline, audio_dir):
    for name in GOOD_CLIPS:
        segments, starts = pipeline.embed(audio_dir / name, blocks=2, per_segment=True)
        duration = audio.info(audio_dir / name).duration
        assert segments.shape[1] == 96 and np.isfinite(segments).all()
        assert starts[-1] <= duration
    with pytest.raises(audio.AudioDecodeError):
        pipeline.embed(audio_dir / "empty.wav", blocks=2)  # options are checked first (the spec)


def test_lazy_top_level_api(tiny_checkpoint):
    import maest

    assert maest.load_model is load_model
    assert callable(maest.extract)


def test_stream_audio_without_margin_reaches_the_end(tmp_path):
    """margin_seconds=0 on a file of whole blocks: the last block ends the stream, no empty window."""
    path = tmp_path / "eight.wav"
    waveform = tone(8.0)
    sf.write(path, waveform, 16000, subtype="FLOAT")
    blocks = list(streaming.stream_audio(path, chunk_seconds=4, margin_seconds=0))
    assert [len(b) for b in blocks] == [64000, 64000]
    np.testing.assert_array_equal(np.concatenate(blocks), waveform)
    with pytest.raises(ValueError, match="margin_seconds"):
        next(streaming.stream_audio(path, chunk_seconds=4, margin_seconds=-1))


def test_options_are_checked_before_any_work(pipeline):
    for bad in [dict(overlap=1.0), dict(overlap=-0.1), dict(crop="middle")]:
        with pytest.raises(ValueError, match="overlap|crop"):
            EmbedOptions(**bad)


def test_non_finite_waveform_is_refused(pipeline):
    waveform = tone(2.0)
    waveform[100] = np.nan
    with pytest.raises(InputAudioError, match="NaN"):
        pipeline.embed(waveform, blocks=2)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error of a torch without CUDA")
def test_cuda_on_a_torch_without_cuda_is_one_clear_error(tiny_checkpoint, tmp_path):
    from maest.inference import DeviceUnavailableError, resolve_device

    for device in ("cuda", "cuda:1", torch.device("cuda")):
        with pytest.raises(DeviceUnavailableError, match=r"CUDA is not available in this torch build \(.*\); use --device cpu"):
            resolve_device(device)
    with pytest.raises(DeviceUnavailableError, match="CUDA is not available"):
        load_model(tiny_checkpoint, device="cuda")
    with pytest.raises(DeviceUnavailableError, match="unknown device"):
        resolve_device("gpu")
    assert resolve_device("cpu") == torch.device("cpu") and resolve_device(None) == torch.device("cpu")
    from typer.testing import CliRunner

    from maest.cli import app

    result = CliRunner().invoke(app, ["embed", str(tmp_path), "-o", str(tmp_path / "out"), "-m", tiny_checkpoint,
                                      "--device", "cuda", "--no-progress"])
    assert result.exit_code == 1 and "CUDA is not available in this torch build" in result.output
    assert "Traceback" not in result.output
