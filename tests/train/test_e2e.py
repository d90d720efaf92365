"""End to end on CPU: synthetic learnable audio -> store -> train -> exported weights -> embed/tag;
exact resume from last.ckpt; SWA export equals the mean of the live snapshots; EffNet pipeline."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch

from maest.checkpoints import load_native
from maest.data.groundtruth import read_groundtruth
from maest.train.config import load_config
from maest.train.demo import make_demo_data
from maest.metrics import macro_scores
from maest.train.run import train

CONFIGS = Path(__file__).resolve().parents[2] / "src" / "maest" / "resources" / "train"  # shipped configs


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    return make_demo_data(tmp_path_factory.mktemp("demo"), tracks=100, seconds=3.0, classes=4, validation=0.3,
                          test=0.0, seed=0, progress=False)


def tiny_overrides(demo: Path, out: Path) -> list[str]:
    return [f"data.root={demo}", f"trainer.output_dir={out}", "trainer.progress_bar=false",
            "trainer.deterministic=true", "data.samples_per_epoch=64", "trainer.log_every_n_steps=1"]


def tiny(demo: Path, out: Path, *overrides: str):
    return load_config(CONFIGS / "tiny.yaml", [*tiny_overrides(demo, out), *overrides])


class EpochsRun(L.Callback):
    """The epochs a Trainer actually trained."""

    def __init__(self):
        self.epochs = []

    def on_train_epoch_start(self, trainer, module):
        self.epochs.append(trainer.current_epoch)


class LiveSnapshots(L.Callback):
    """The live weights at the end of every training epoch."""

    def __init__(self):
        self.states = []

    def on_train_epoch_end(self, trainer, module):
        self.states.append({k: v.detach().clone() for k, v in module.net.state_dict().items()})


def test_tiny_run_learns_and_exports_weights_for_inference(demo, tmp_path):
    snapshots = LiveSnapshots()
    config = tiny(demo, tmp_path, "trainer.max_epochs=3", "swa.start_epoch=1", "swa.every_epochs=1",
                  "optim.warmup_epochs=1", "optim.lr=5e-3")
    path = train(config, callbacks=[snapshots])
    run = tmp_path / "tiny"
    assert path == run / "model"
    assert (run / "checkpoints" / "last.ckpt").is_file() and (run / "model-last").is_dir()
    assert (run / "csv").is_dir() and (run / "tensorboard").is_dir()

    # SWA took snapshots at the end of epochs 1 and 2: the export is their mean; model-last the live weights.
    swa, last = load_native(path).state_dict(), load_native(run / "model-last").state_dict()
    for name, value in swa.items():
        torch.testing.assert_close(value, (snapshots.states[1][name] + snapshots.states[2][name]) / 2, rtol=0, atol=1e-6)
        assert torch.equal(last[name], snapshots.states[2][name])

    # Tag every validation track from its audio file with the inference API: clearly above chance.
    from maest.inference import load_model

    pipeline = load_model(run / "model-last", device="cpu")
    assert pipeline.labels == [f"Synthetic---Tone {k:02d}" for k in range(1, 5)]
    paths, targets, _ = read_groundtruth(demo / "validation.tsv")
    scores = np.stack([pipeline.predict(str(demo / p)) for p in paths])
    baseline = macro_scores(targets, np.tile(targets.mean(0), (len(paths), 1)))["mAP"]  # label frequencies
    achieved = macro_scores(targets, scores)["mAP"]
    print(f"validation mAP {achieved:.3f}, label-frequency baseline {baseline:.3f}")
    assert achieved > baseline + 0.2, (achieved, baseline)
    embedding = pipeline.embed(str(demo / paths[0]), blocks=2)
    assert embedding.shape == (3 * 32,) and np.isfinite(embedding).all()

    # The Lightning checkpoint itself is a model too: SWA copy by default, live weights with swa=False,
    # with the exported config (heads, labels, normalisation), not one guessed from shapes.
    from maest.checkpoints import load_checkpoint

    for swa_copy, exported in ((True, path), (False, run / "model-last")):
        from_ckpt, reference = load_checkpoint(run / "checkpoints" / "last.ckpt", swa=swa_copy), load_native(exported)
        assert from_ckpt.config == reference.config
        for name, value in reference.state_dict().items():
            assert torch.equal(from_ckpt.state_dict()[name], value), name


def test_resumed_run_ends_with_the_same_weights(demo, tmp_path):
    # SWA snapshots after epochs 0 and 1: the resumed run must restore the average and its count.
    common = ("trainer.max_epochs=2", "swa.start_epoch=0", "swa.every_epochs=1", "data.num_workers=1")
    whole = train(tiny(demo, tmp_path / "whole", *common))
    # "Killed" after the first epoch: a fresh Trainer picks up last.ckpt (resume: auto).
    # The first, cut-short run goes through the command line.
    from typer.testing import CliRunner

    from maest.cli import app

    args = ["train", "--config", str(CONFIGS / "tiny.yaml"), "--devices", "1"]
    for override in tiny_overrides(demo, tmp_path / "cut") + [*common, "trainer.max_epochs=1"]:
        args += ["--set", override]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "trained weights:" in result.output
    second = EpochsRun()
    resumed = train(tiny(demo, tmp_path / "cut", *common), callbacks=[second])
    assert second.epochs == [1]  # the second Trainer resumed after epoch 0
    for name in ("model", "model-last"):
        a = load_native(whole.with_name(name)).state_dict()
        b = load_native(resumed.with_name(name)).state_dict()
        for key in a:
            assert torch.equal(a[key], b[key]), f"{name}: {key} differs after resume"


def test_effnet_baseline_trains_with_the_same_pipeline(demo, tmp_path):
    from maest.checkpoints import load_effnet

    config = load_config(CONFIGS / "effnet-b0.yaml", [
        f"data.root={demo}", f"trainer.output_dir={tmp_path}", "trainer.progress_bar=false", "trainer.devices=1",
        "trainer.max_epochs=1", "trainer.batch_size=8", "data.samples_per_epoch=16", "data.num_workers=0",
        "data.normalization=store", "model.arch.width_mult=0.25", "model.arch.depth_mult=0.34",
        "model.arch.segment_frames=64", "augment.time_masks=2",
    ])
    path = train(config)
    assert path == tmp_path / "effnet-b0" / "model.safetensors"
    from maest.checkpoints import load_checkpoint

    from_ckpt = load_checkpoint(tmp_path / "effnet-b0" / "checkpoints" / "last.ckpt")
    assert from_ckpt.config == load_effnet(path).config
    for name, value in load_effnet(path).state_dict().items():
        assert torch.equal(from_ckpt.state_dict()[name], value), name
    model = load_effnet(path).eval()
    assert model.config.num_classes == 4 and model.config.labels[0] == "Synthetic---Tone 01"
    assert model.forward_features(torch.randn(2, 96, 64)).shape == (2, model.config.embedding_dim)
    # The baseline's penultimate-layer embeddings come through the same embed/tag API and CLI.
    import maest
    from typer.testing import CliRunner

    from maest.cli import app as cli_app

    clip = next((demo / "audio").rglob("*.wav"))
    pipeline = maest.load_model(path, device="cpu")
    segments, starts = pipeline.embed(clip, per_segment=True)
    assert segments.shape == (len(starts), model.config.embedding_dim) and len(starts) > 1
    with torch.no_grad():
        mel, _ = pipeline.mel(clip)
        first = model.forward_features(mel[None, :, :64]).numpy()[0]
    np.testing.assert_allclose(segments[0], first, atol=1e-5)
    np.testing.assert_allclose(pipeline.embed(clip), segments.mean(axis=0), atol=1e-5)
    assert len(pipeline.tag(clip, top_k=2)) == 2
    with pytest.raises(ValueError, match="MAEST models only"):
        pipeline.embed(clip, patchout_time=2)
    result = CliRunner().invoke(cli_app, ["embed", str(clip), "-o", str(tmp_path / "emb"), "--model", str(path)])
    assert result.exit_code == 0, result.output
    np.testing.assert_allclose(np.load(next((tmp_path / "emb").rglob("*.npy"))), pipeline.embed(clip), atol=1e-6)
