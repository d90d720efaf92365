"""HEAR API: documented shapes, timestamps, scene = mean over time, windows of long audio."""

from __future__ import annotations

import pytest
import torch

from eval_data import tiny_model
from maest import frontend
from maest.hear import HearInputError, get_scene_embeddings, get_timestamp_embeddings, load_model


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
