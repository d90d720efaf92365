"""`maest export`: every target format reloads to the same network (HF via transformers, ONNX via onnxruntime)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from maest.checkpoints import load_checkpoint, save_native
from maest.cli import app
from maest.configs import MaestConfig
from maest.model import Maest


@pytest.fixture(scope="module")
def native(tmp_path_factory):
    torch.manual_seed(0)
    model = Maest(MaestConfig(depth=2, width=32, heads=2, num_classes=3, segment_frames=60,
                              labels=["a", "b", "c"])).eval()
    return save_native(model, tmp_path_factory.mktemp("export") / "native"), model


def export(*args: str) -> None:
    result = CliRunner().invoke(app, ["export", *args])
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output


def test_official_and_native_round_trip(native, tmp_path):
    folder, model = native
    export(str(folder), str(tmp_path / "maest.pt"), "--to", "official")
    export(str(tmp_path / "maest.pt"), str(tmp_path / "again"), "--to", "native")
    reloaded = load_checkpoint(tmp_path / "again")
    for key, value in model.state_dict().items():
        assert torch.equal(value, reloaded.state_dict()[key]), key


def test_hf_export_loads_in_transformers(native, tmp_path):
    transformers = pytest.importorskip("transformers")
    folder, model = native
    export(str(folder), str(tmp_path / "hf"), "--to", "hf")
    hf = transformers.ASTForAudioClassification.from_pretrained(tmp_path / "hf").eval()
    mel = torch.randn(2, 96, hf.config.max_length)
    with torch.no_grad():
        torch.testing.assert_close(hf(mel.transpose(1, 2)).logits, model(mel), atol=1e-5, rtol=0)


def test_onnx_embedding_graph(native, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    folder, model = native
    export(str(folder), str(tmp_path / "emb.onnx"), "--to", "onnx", "--blocks", "1", "--tokens", "avg,cls")
    session = ort.InferenceSession(str(tmp_path / "emb.onnx"))
    mel = torch.randn(3, 96, 60)
    (got,) = session.run(None, {session.get_inputs()[0].name: mel.numpy()})
    with torch.no_grad():
        tokens = model.forward_features(mel, blocks=1)
        expected = torch.cat([tokens[:, 2:].mean(1), tokens[:, 0]], dim=-1).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_bad_target_and_missing_model(native, tmp_path):
    folder, _ = native
    result = CliRunner().invoke(app, ["export", str(folder), str(tmp_path / "x"), "--to", "tflite"])
    assert result.exit_code == 1 and "--to must be" in result.output
    result = CliRunner().invoke(app, ["export", str(tmp_path / "nothing-here"), str(tmp_path / "x")])
    assert result.exit_code == 1 and "CheckpointError" in result.output
