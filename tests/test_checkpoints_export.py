"""``maest.checkpoints.export``: every target reloads to the same network (HF via transformers, ONNX via
onnxruntime); bad targets and misplaced options are refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from maest import checkpoints
from maest.checkpoints import load_checkpoint
from maest.configs import MaestConfig
from maest.model import Maest


@pytest.fixture(scope="module")
def model() -> Maest:
    torch.manual_seed(0)
    return Maest(MaestConfig(depth=2, width=32, heads=2, num_classes=3, segment_frames=60, labels=["a", "b", "c"])).eval()


def assert_same_weights(expected: Maest, got: Maest) -> None:
    state = got.state_dict()
    for key, value in expected.state_dict().items():
        assert torch.equal(value, state[key]), key


@pytest.mark.parametrize("to, name", [("native", "native"), ("native", "weights.safetensors"), ("official", "maest.pt")])
def test_native_and_official_round_trip(model, tmp_path, to, name):
    written = checkpoints.export(model, tmp_path / name, to=to)
    assert written == tmp_path / name and written.exists()
    assert_same_weights(model, load_checkpoint(written))


def test_default_target_is_native(model, tmp_path):
    written = checkpoints.export(model, tmp_path / "default")
    assert (written / "config.json").is_file()
    assert load_checkpoint(written).config.labels == ["a", "b", "c"]


def test_hf_target_loads_in_transformers(model, tmp_path):
    transformers = pytest.importorskip("transformers")
    written = checkpoints.export(model, tmp_path / "hf", to="hf")
    hf = transformers.ASTForAudioClassification.from_pretrained(written).eval()
    mel = torch.randn(2, 96, hf.config.max_length)
    with torch.no_grad():
        torch.testing.assert_close(hf(mel.transpose(1, 2)).logits, model(mel), atol=1e-5, rtol=0)


def test_onnx_target_passes_its_options(model, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    written = checkpoints.export(model, tmp_path / "emb.onnx", to="onnx", graph="embedding", blocks=1, tokens=("avg", "cls"))
    session = ort.InferenceSession(str(written))
    mel = torch.randn(3, 96, 60)
    (got,) = session.run(None, {session.get_inputs()[0].name: mel.numpy()})
    with torch.no_grad():
        tokens = model.forward_features(mel, blocks=1)
        expected = torch.cat([tokens[:, 2:].mean(1), tokens[:, 0]], dim=-1).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-4)
    logits = checkpoints.export(model, tmp_path / "logits.onnx", to="onnx", graph="logits")
    (got,) = ort.InferenceSession(str(logits)).run(None, {"mel": mel.numpy()})
    with torch.no_grad():
        np.testing.assert_allclose(got, model(mel).numpy(), atol=1e-4)


def test_refusals(model, tmp_path):
    with pytest.raises(ValueError, match="native, hf, official, onnx"):
        checkpoints.export(model, tmp_path / "x", to="tflite")
    with pytest.raises(TypeError, match="graph: options of the onnx target"):
        checkpoints.export(model, tmp_path / "x", to="native", graph="logits")
    with pytest.raises(TypeError, match="only MAEST"):
        checkpoints.export(torch.nn.Linear(2, 2), tmp_path / "x")
    assert not (tmp_path / "x").exists()
