"""EfficientNet-B0 baseline: shapes, parameter count of the reference architecture, training, I/O."""

from __future__ import annotations

import torch

from maest.checkpoints import load_effnet, save_effnet
from maest.effnet import EffNet, EffNetConfig

# torchvision's efficientnet_b0 (1000 classes) has 5,288,548 parameters; a 1-channel stem has
# 2 * 3 * 3 * 32 = 576 fewer.
TORCHVISION_B0_PARAMS = 5_288_548
ONE_CHANNEL_STEM_SAVING = 576


def test_parameter_count_matches_efficientnet_b0():
    model = EffNet(EffNetConfig(num_classes=1000))
    assert sum(p.numel() for p in model.parameters()) == TORCHVISION_B0_PARAMS - ONE_CHANNEL_STEM_SAVING


def test_shapes_and_embedding():
    torch.manual_seed(0)
    model = EffNet(EffNetConfig(num_classes=7)).eval()
    mel = torch.randn(2, 96, 32)
    features = model.forward_features(mel)
    assert features.shape == (2, 1280) == (2, model.config.embedding_dim)
    logits = model(mel)
    assert logits.shape == (2, 7)
    torch.testing.assert_close(logits, model.classifier(features))
    assert model(torch.randn(1, 96, 48)).shape == (1, 7)  # any crop length


def test_trains_one_step_and_round_trips(tmp_path):
    torch.manual_seed(0)
    model = EffNet(EffNetConfig(num_classes=4, width_mult=0.25, depth_mult=0.34)).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    mel, targets = torch.randn(4, 96, 32), (torch.rand(4, 4) > 0.5).float()
    loss = torch.nn.functional.binary_cross_entropy_with_logits(model(mel), targets)
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    optimizer.step()
    changed = [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])]
    assert "classifier.weight" in changed and "stem.0.weight" in changed
    path = save_effnet(model, tmp_path / "effnet.safetensors")
    loaded = load_effnet(path).eval()
    model.eval()
    torch.testing.assert_close(loaded(mel), model(mel))
    assert loaded.config == model.config
