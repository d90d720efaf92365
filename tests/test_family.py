"""Model families: MAEST and EffNet through one interface, and a third family added in one place."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest
import torch
from torch import nn

from maest import family as families
from maest.checkpoints import CheckpointError, load_checkpoint, save_native
from maest.configs import MaestConfig, ModelIdentity
from maest.effnet import EffNet, EffNetConfig
from maest.family import FAMILIES, FamilyError, ModelFamily, family_of, get_family
from maest.heads.spec import spec_for
from maest.inference import EmbedOptions, MaestPipeline
from maest.model import Maest, pool_tokens

LABELS = ["a", "b", "c"]


def tone(seconds: float = 3.0, rate: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * np.sin(2 * np.pi * 97 * t)).astype(np.float32)


@pytest.fixture(scope="module")
def maest_pipeline() -> MaestPipeline:
    torch.manual_seed(0)
    config = MaestConfig(depth=3, width=32, heads=2, num_classes=3, segment_frames=200, labels=LABELS, name="tiny")
    return MaestPipeline(Maest(config), "cpu")


@pytest.fixture(scope="module")
def effnet_pipeline() -> MaestPipeline:
    torch.manual_seed(0)
    return MaestPipeline(EffNet(EffNetConfig(num_classes=3, width_mult=0.25, depth_mult=0.34)), "cpu")


def test_each_network_has_its_family_and_names_resolve(maest_pipeline, effnet_pipeline):
    assert family_of(maest_pipeline.model) is get_family("maest") is maest_pipeline.family
    assert family_of(effnet_pipeline.model) is get_family("effnet") is effnet_pipeline.family
    with pytest.raises(FamilyError, match="no model family for a Linear"):
        family_of(nn.Linear(2, 2))
    with pytest.raises(FamilyError, match="unknown model family 'vit'"):
        get_family("vit")


def test_maest_family_is_the_transformer_contract(maest_pipeline):
    family, model, config = maest_pipeline.family, maest_pipeline.model, maest_pipeline.config
    assert (family.has_blocks, family.has_tokens, family.has_patchout, family.converts) == (True, True, True, True)
    assert family.min_frames(config) == 16 and family.depth(config) == 3 and family.default_blocks(config) == 3
    assert family.embedding_dim(config, ("cls", "avg")) == 64
    assert family.describe_embedding(3, ("cls", "dist", "avg")) == "block 3, cls+dist+avg"
    mel = torch.randn(2, 96, 200)
    with torch.inference_mode():
        expected = pool_tokens(model.forward_features(mel, 2), ("avg", "cls"))
        assert torch.equal(family.embed(model, mel, 2, ("avg", "cls")), expected)
        assert torch.equal(family.logits(model, mel), model(mel))
        assert family.block_features(model, mel, [1, 3]).shape == (2, 2, 96)
    with pytest.raises(FamilyError, match="blocks must be in 1..3"):
        family.check_options(config, 4, 1, ())
    with pytest.raises(FamilyError, match="drops every frequency row"):
        family.check_options(config, 3, 1, tuple(range(config.conv_freq_rows())))


def test_effnet_family_refuses_what_does_not_apply(effnet_pipeline):
    family, model, config = effnet_pipeline.family, effnet_pipeline.model, effnet_pipeline.config
    assert (family.has_blocks, family.has_tokens, family.has_patchout, family.converts) == (False,) * 4
    assert family.depth(config) is None and family.default_blocks(config) is None
    assert family.embedding_dim(config, ("cls",)) == config.embedding_dim == 320  # width_mult 0.25, not 1280
    mel = torch.randn(1, 96, 32)
    with torch.inference_mode():
        assert torch.equal(family.embed(model, mel, None, ("cls",)), model.forward_features(mel))
        assert torch.equal(family.logits(model, mel), model(mel))
    with pytest.raises(FamilyError, match="patchout applies to MAEST models only"):
        effnet_pipeline.embed(tone(0.5), patchout_time=2)
    with pytest.raises(FamilyError, match="per-block features apply to MAEST models only, not to EffNet"):
        effnet_pipeline.block_features([1], EmbedOptions())
    # the head spec takes the embedding width from the family (the pipeline's real output)
    assert spec_for(effnet_pipeline, effnet_pipeline.spec()).dim == effnet_pipeline.embed(tone(0.5)).shape[0]


# -- a third family, added only through maest.family's table ------------------------------------
@dataclass
class BandMeanConfig(ModelIdentity):
    _TYPES: ClassVar[dict[str, type]] = {"n_mels": int, "segment_frames": int, "num_classes": int}
    n_mels: int = 96
    segment_frames: int = 100
    num_classes: int = 3
    name: str = "band-mean"


class BandMean(nn.Module):
    """Per-band mean over time, then a linear classifier."""

    def __init__(self, config: BandMeanConfig):
        super().__init__()
        self.config = config
        self.classifier = nn.Linear(config.n_mels, config.num_classes)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.classifier(mel.mean(-1))


class BandMeanFamily(ModelFamily):
    name, network, config = "band-mean", BandMean, BandMeanConfig
    has_blocks = has_tokens = has_patchout = converts = False
    export_suffix = ".safetensors"

    def min_frames(self, config):
        return 4

    def depth(self, config):
        return None

    def default_blocks(self, config):
        return None

    def embedding_dim(self, config, tokens):
        return config.n_mels

    def describe_embedding(self, blocks, tokens):
        return "band means"

    def check_options(self, config, blocks, patchout_time, patchout_freq):
        if patchout_time != 1 or patchout_freq:
            raise FamilyError("no patchout for band means")

    def embed(self, model, mel, blocks, tokens, patchout_time=1, patchout_freq=()):
        return mel.mean(-1)

    def logits(self, model, mel, patchout_time=1, patchout_freq=()):
        return model(mel)


def test_a_third_family_runs_through_the_pipeline_heads_and_checkpoints(monkeypatch, tmp_path):
    monkeypatch.setitem(FAMILIES, "band-mean", BandMeanFamily())
    torch.manual_seed(0)
    net = BandMean(BandMeanConfig(labels=LABELS))
    pipeline = MaestPipeline(net, "cpu")
    assert pipeline.family.name == "band-mean" and pipeline.labels == LABELS and pipeline.min_frames == 4
    embeddings, starts = pipeline.embed(tone(), per_segment=True)
    mel, _ = pipeline.mel(tone())
    assert embeddings.shape == (len(starts), 96)
    np.testing.assert_allclose(embeddings[0], mel[:, :100].mean(-1).numpy(), rtol=1e-6)
    tags = pipeline.tag(tone(), top_k=None)
    assert sorted(label for label, _ in tags) == LABELS
    assert spec_for(pipeline, pipeline.spec(tokens=("cls",))).dim == 96
    # the native format records and reads the family's name with no change to maest.checkpoints
    path = save_native(net, tmp_path / "band.safetensors")
    loaded = load_checkpoint(path)
    assert isinstance(loaded, BandMean) and torch.equal(loaded.classifier.weight, net.classifier.weight)
    monkeypatch.delitem(FAMILIES, "band-mean")
    with pytest.raises(CheckpointError, match="unknown network type 'band-mean'"):
        load_checkpoint(path)
    assert families.family_of(Maest(MaestConfig(depth=1, width=32, heads=2))).name == "maest"


def test_no_family_branches_outside_the_family_table():
    """Code outside maest.family, the checkpoint readers and training's network builder asks the family
    (``pipeline.family``) instead of testing the network's class: a third family then needs no edits there."""
    import re
    from pathlib import Path

    import maest

    package = Path(maest.__file__).resolve().parent
    allowed = ("family.py", "checkpoints/", "train/")
    pattern = re.compile(r"\bis_effnet\b|isinstance\([^)]*\b(EffNet|Maest)\b")
    found = [f"{path.relative_to(package)}:{number}: {line.strip()}"
             for path in sorted(package.rglob("*.py")) if not str(path.relative_to(package)).startswith(allowed)
             for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if pattern.search(line)]
    assert not found, "ask pipeline.family / maest.family.family_of instead:\n" + "\n".join(found)
