"""HEAR API: documented shapes, timestamps, scene = mean over time, windows of long audio."""

from __future__ import annotations

import pytest
import torch

from eval_data import tiny_model
from maest import frontend
from maest.hear import HearInputError, HearOptionError, get_scene_embeddings, get_timestamp_embeddings, load_model


@pytest.fixture(scope="module")
def hear_model(tmp_path_factory):
    torch.set_num_threads(1)
    return load_model(str(tiny_model(tmp_path_factory.mktemp("hear") / "model")), blocks=2)


def test_attributes(hear_model):
    assert hear_model.sample_rate == 16000
    assert hear_model.scene_embedding_size == hear_model.timestamp_embedding_size == 32
    assert hear_model.hop_ms == 160.0


@pytest.mark.parametrize("samples", [800, 16000, 3 * 16000 + 123])
def test_shapes_and_timestamps(hear_model, samples):
    audio = 0.1 * torch.randn(3, samples, generator=torch.Generator().manual_seed(0))
    embeddings, timestamps = get_timestamp_embeddings(audio, hear_model)
    columns = max(1, (max(frontend.num_frames(samples), 16) - 16) // 10 + 1)
    assert embeddings.shape == (3, columns, 32) and timestamps.shape == (3, columns)
    assert timestamps[0, 0] == 120.0
    if columns > 1:
        torch.testing.assert_close(timestamps[:, 1:] - timestamps[:, :-1], torch.full((3, columns - 1), 160.0))
    scene = get_scene_embeddings(audio, hear_model)
    assert scene.shape == (3, 32)
    torch.testing.assert_close(scene, embeddings.mean(dim=1))
    assert torch.isfinite(embeddings).all()


def test_long_audio_windows_and_batching(hear_model):
    # 3 s = 189 frames = 18 columns: windows of 64 frames hold 5 columns, so 4 windows are stitched.
    audio = 0.1 * torch.randn(2, 3 * 16000, generator=torch.Generator().manual_seed(1))
    embeddings, _ = get_timestamp_embeddings(audio, hear_model)
    assert embeddings.shape[1] == 18
    mel = hear_model.frontend(audio)
    with torch.inference_mode():
        first = hear_model.model.forward_features(mel[:, :, :64], 2)[:, 2:].reshape(2, 9, 5, 32).mean(1)
    torch.testing.assert_close(embeddings[:, :5], first)
    # A sound's embedding does not depend on the others in its batch.
    alone, _ = get_timestamp_embeddings(audio[1:], hear_model)
    torch.testing.assert_close(alone[0], embeddings[1], atol=1e-5, rtol=1e-5)


def test_bad_input(hear_model):
    with pytest.raises(HearInputError):
        get_scene_embeddings(torch.zeros(16000), hear_model)
    with pytest.raises(HearInputError):
        get_scene_embeddings(torch.zeros(2, 0), hear_model)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_model_on_gpu_takes_cpu_audio(tmp_path):
    """load_model(device='cuda'): the frontend is on the model's device, CPU audio comes back on the CPU."""
    model = load_model(str(tiny_model(tmp_path / "model")), blocks=2, device="cuda")
    audio = 0.1 * torch.randn(2, 16000, generator=torch.Generator().manual_seed(0))
    embeddings, _ = get_timestamp_embeddings(audio, model)
    assert embeddings.device.type == "cpu"
    cpu, _ = get_timestamp_embeddings(audio, load_model(str(tiny_model(tmp_path / "model")), blocks=2, device="cpu"))
    torch.testing.assert_close(embeddings, cpu, atol=1e-4, rtol=1e-4)


# -- finer timestamps by shifted passes (hop_ms) ---------------------------------------------------
@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return str(tiny_model(tmp_path_factory.mktemp("hear-fine") / "model"))


def delayed(audio: torch.Tensor, samples: int) -> torch.Tensor:
    """The clip starting ``samples`` later (silence before it)."""
    return torch.cat([torch.zeros(audio.shape[0], samples), audio], dim=1)


@pytest.mark.parametrize("samples", [800, 16000, 3 * 16000 + 123])
def test_hop_80ms_even_timestamps_are_the_default_and_odd_ones_its_80ms_shift(hear_model, model_path, samples):
    fine = load_model(model_path, blocks=2, hop_ms=80)
    assert fine.hop_ms == 80.0 and fine.passes == 2
    audio = 0.1 * torch.randn(2, samples, generator=torch.Generator().manual_seed(2))
    default, default_times = get_timestamp_embeddings(audio, hear_model)
    embeddings, timestamps = get_timestamp_embeddings(audio, fine)
    assert embeddings.shape[1] in (2 * default.shape[1] - 1, 2 * default.shape[1])
    torch.testing.assert_close(embeddings[:, ::2], default, atol=1e-6, rtol=1e-6)  # pass 0 is the default run
    torch.testing.assert_close(timestamps[:, ::2], default_times[:, : (embeddings.shape[1] + 1) // 2])
    assert timestamps[0, 0] == 120.0
    if timestamps.shape[1] > 1:
        torch.testing.assert_close(timestamps[:, 1:] - timestamps[:, :-1], torch.full_like(timestamps[:, 1:], 80.0))
    if samples < 16000:
        return  # shorter than one patch: padded to one column, pass 1 has none
    # The odd timestamps see the clip 80 ms later: those of a clip delayed by 80 ms (1280 samples, 5 frames)
    # are the default embeddings of the undelayed clip, at timestamps 80 ms later.
    shifted, shifted_times = get_timestamp_embeddings(delayed(audio, 1280), fine)
    torch.testing.assert_close(shifted[:, 1::2][:, : default.shape[1]], default, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(shifted_times[:, 1::2][:, : default.shape[1]], default_times + 80.0)


def test_hop_40ms_runs_four_passes_each_a_40ms_shift(hear_model, model_path, monkeypatch):
    fine = load_model(model_path, blocks=2, hop_ms=40)
    assert fine.hop_ms == 40.0 and fine.passes == 4
    audio = 0.1 * torch.randn(2, 2 * 16000, generator=torch.Generator().manual_seed(3))
    default, _ = get_timestamp_embeddings(audio, hear_model)
    embeddings, timestamps = get_timestamp_embeddings(audio, fine)
    torch.testing.assert_close(timestamps[:, 1:] - timestamps[:, :-1], torch.full_like(timestamps[:, 1:], 40.0))
    assert 4 * default.shape[1] - 3 <= embeddings.shape[1] <= 4 * default.shape[1]
    torch.testing.assert_close(embeddings[:, ::4], default, atol=1e-6, rtol=1e-6)
    # Pass k (k * 640 samples = 2.5 k frames, so passes 1 and 3 read a mel computed half a frame later):
    # a clip delayed by k * 40 ms gives the default embeddings at timestamps k, k + 4, ...
    for k in (1, 2, 3):
        shifted, _ = get_timestamp_embeddings(delayed(audio, k * 640), fine)
        torch.testing.assert_close(shifted[:, k::4][:, : default.shape[1]], default, atol=1e-5, rtol=1e-5)
    # Four times the model calls of the default (2 s = 126 frames, 12 columns: 3 windows of 5 columns).
    calls = []
    for model in (hear_model, fine):
        forward = model.model.forward_features
        monkeypatch.setattr(model.model, "forward_features", lambda *a, f=forward, **k: calls.append(1) or f(*a, **k))
        calls.clear()
        get_timestamp_embeddings(audio, model)
        monkeypatch.undo()
        if model is hear_model:
            default_calls = len(calls)
    assert default_calls == 3 and len(calls) == 4 * 3


@pytest.mark.parametrize("hop_ms", [30, 0, -40, 160 / 3])
def test_hop_that_does_not_divide_the_column_hop_is_refused(model_path, hop_ms):
    with pytest.raises(HearOptionError, match="use one of 160, 80, 40, 32, 20, 16, 10"):
        load_model(model_path, blocks=2, hop_ms=hop_ms)


def test_default_hop_is_160ms_one_pass(model_path):
    assert load_model(model_path, blocks=2).passes == 1
    assert load_model(model_path, blocks=2, hop_ms=160).passes == 1
