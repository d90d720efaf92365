"""ONNX export: onnxruntime reproduces eager outputs, for any batch size."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from maest.checkpoints.onnx import export_onnx
from maest.configs import MaestConfig
from maest.model import Maest, pool_tokens

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")


def tiny() -> Maest:
    torch.manual_seed(0)
    return Maest(MaestConfig(depth=3, width=64, heads=4, segment_frames=100, num_classes=5)).eval()


def run(path, mel: torch.Tensor) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"mel": mel.numpy()})[0]


@pytest.mark.parametrize("patchout_time", [1, 3])
def test_embedding_graph_matches_eager(tmp_path, patchout_time):
    model = tiny()
    path = export_onnx(model, tmp_path / "embedding.onnx", "embedding", blocks=2, patchout_time=patchout_time)
    for batch in (1, 3):
        mel = torch.randn(batch, 96, 100)
        with torch.no_grad():
            expected = pool_tokens(model.forward_features(mel, blocks=2, patchout_time=patchout_time))
        got = run(path, mel)
        assert got.shape == (batch, 3 * 64)
        np.testing.assert_allclose(got, expected.numpy(), atol=1e-4, rtol=0)


def test_logits_graph_matches_eager_and_keeps_training_mode(tmp_path):
    model = tiny().train()
    path = export_onnx(model, tmp_path / "logits.onnx", "logits")
    assert model.training
    model.eval()
    for batch in (1, 4):
        mel = torch.randn(batch, 96, 100)
        with torch.no_grad():
            expected = model(mel)
        np.testing.assert_allclose(run(path, mel), expected.numpy(), atol=1e-4, rtol=0)
