"""Validation protocols: ``segments`` (the paper's: half-overlapping segments of the whole stored
track, sigmoid outputs averaged per track) equals a direct computation and maest.inference on the
same mel, differs from the centre crop, and logs the same metric names."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch

from maest.data.store import MelStore
from maest.evaluate.metrics import macro_scores
from maest.frontend import normalize_mel
from maest.inference import EmbedOptions, MaestPipeline
from maest.model import Maest
from maest.segments import gather_segments, segment_starts
from maest.train.config import ConfigError, load_config
from maest.train.data import MelDataModule, centre_crop
from maest.train.demo import make_demo_data
from maest.train.module import MaestTraining
from maest.train.network import build_network
from maest.train.validation import probability_bce, track_probabilities

CONFIGS = Path(__file__).resolve().parents[2] / "src" / "maest" / "resources" / "train"  # shipped configs
SEGMENT = 128  # frames of the shipped tiny config; the demo tracks have 312 (5 s): 4 segments each


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    return make_demo_data(tmp_path_factory.mktemp("demo"), tracks=30, seconds=5.0, classes=4, validation=0.4,
                          test=0.0, seed=0, progress=False)


def config(demo: Path, protocol: str, *overrides: str):
    return load_config(CONFIGS / "tiny.yaml", [f"data.root={demo}", f"data.validation_protocol={protocol}",
                                               "trainer.batch_size=5", *overrides])


def spread_network(cfg, labels, mean, std) -> Maest:
    """A random tiny MAEST whose probabilities vary clearly between inputs (scaled head)."""
    torch.manual_seed(0)
    net = build_network(cfg, labels, mean, std)
    torch.nn.init.normal_(net.head[1].weight, std=0.2)
    return net.eval()


def test_protocol_option_is_checked():
    assert load_config(CONFIGS / "maest-30s-passt.yaml").data.validation_protocol == "center"
    with pytest.raises(ConfigError, match="data.validation_protocol must be one of center, segments"):
        load_config(CONFIGS / "tiny.yaml", ["data.validation_protocol=whole"])


def test_track_probabilities_average_segment_sigmoids_across_lengths():
    torch.manual_seed(1)
    net = Maest(_tiny_arch()).eval()
    lengths = [312, 60, 200, SEGMENT, 500]  # long, short (own length), long, exact, long
    tracks = []
    for frames in lengths:
        mel = torch.randn(96, frames)
        segments = segment_starts(frames, SEGMENT, 0.5)
        tracks.append(gather_segments(mel, segments.starts, segments.frames))
    with torch.no_grad():
        got = track_probabilities(net, tracks, batch_size=3)  # batches cross track boundaries
        direct = torch.stack([torch.sigmoid(net(t)).mean(0) for t in tracks])
    assert [len(t) for t in tracks] == [4, 1, 3, 1, 7]
    torch.testing.assert_close(got, direct, rtol=0, atol=1e-6)


def _tiny_arch():
    from maest.configs import MaestConfig

    return MaestConfig(depth=2, width=32, heads=2, segment_frames=SEGMENT, num_classes=4)


def test_probability_bce_matches_torch():
    probs, targets = torch.tensor([[0.2, 1.0, 0.0], [0.9, 0.5, 1e-9]]), torch.tensor([[0.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    torch.testing.assert_close(probability_bce(probs, targets), torch.nn.functional.binary_cross_entropy(probs, targets))


def validate(cfg, net: Maest, swa: bool = False) -> dict[str, float]:
    datamodule = MelDataModule(cfg, segment_frames=SEGMENT)
    module = MaestTraining(cfg, net)
    if swa:  # the SWA copy equals the live weights: its metrics must equal the live ones
        module.swa_snapshots.fill_(1)
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                        enable_model_summary=False)
    (metrics,) = trainer.validate(module, datamodule=datamodule, verbose=False)
    return metrics


def test_segments_protocol_equals_direct_computation_and_differs_from_centre_crop(demo):
    segments_cfg, centre_cfg = config(demo, "segments"), config(demo, "center")
    datamodule = MelDataModule(segments_cfg, segment_frames=SEGMENT)
    datamodule.setup("validate")
    keys, targets = datamodule.val_set.keys, datamodule.val_set.targets.numpy().astype(np.float32)
    net = spread_network(segments_cfg, datamodule.labels, datamodule.mean, datamodule.std)

    # Direct: each stored track, normalised, cut into half-overlapping segments, sigmoid, mean.
    store = MelStore(demo / "store")
    pipeline = MaestPipeline(net, device="cpu")
    direct, centre, inference = [], [], []
    with torch.no_grad():
        for key in keys:
            row = store.index_of(key)
            mel = normalize_mel(torch.from_numpy(store.read(row).astype(np.float32)), datamodule.mean, datamodule.std)
            segments = segment_starts(mel.shape[1], SEGMENT, 0.5)
            assert len(segments) == 4
            direct.append(torch.sigmoid(net(gather_segments(mel, segments.starts, SEGMENT))).mean(0))
            crop = normalize_mel(torch.from_numpy(centre_crop(store, row, SEGMENT).astype(np.float32)),
                                 datamodule.mean, datamodule.std)
            centre.append(torch.sigmoid(net(crop[None]))[0])
            # maest.inference on the same mel: the protocol is the one users get from `maest tag`.
            ((_, result),) = pipeline.run_tracks([(key, mel, 5.0)], "tag", EmbedOptions(blocks=None))
            inference.append(torch.from_numpy(result.track))
    direct, centre, inference = torch.stack(direct), torch.stack(centre), torch.stack(inference)
    torch.testing.assert_close(direct, inference, rtol=0, atol=1e-5)
    print(f"max |segments - centre| probability {(direct - centre).abs().max():.3f}")
    assert (direct - centre).abs().max() > 0.01  # the protocols see different frames (measured 0.030)

    logged = validate(segments_cfg, net, swa=True)
    expected = macro_scores(targets, direct.numpy())
    assert set(logged) == {"val/loss", "val/mAP", "val/ROC-AUC", "val/mAP_swa", "val/ROC-AUC_swa"}
    assert logged["val/mAP"] == pytest.approx(expected["mAP"], abs=1e-6)
    assert logged["val/ROC-AUC"] == pytest.approx(expected["ROC-AUC"], abs=1e-6)
    assert logged["val/mAP_swa"] == pytest.approx(expected["mAP"], abs=1e-6)
    assert logged["val/loss"] == pytest.approx(probability_bce(direct, torch.from_numpy(targets)).item(), abs=1e-5)

    # The default protocol is unchanged: one centre crop per track, BCE on logits.
    logged_centre = validate(centre_cfg, net)
    centre_scores = macro_scores(targets, centre.numpy())
    assert set(logged_centre) == {"val/loss", "val/mAP", "val/ROC-AUC"}
    assert logged_centre["val/mAP"] == pytest.approx(centre_scores["mAP"], abs=1e-6)
    assert logged_centre["val/loss"] == pytest.approx(probability_bce(centre, torch.from_numpy(targets)).item(),
                                                      abs=1e-5)
    print(f"val/loss segments {logged['val/loss']:.4f}, centre {logged_centre['val/loss']:.4f}")
    assert abs(logged_centre["val/loss"] - logged["val/loss"]) > 1e-3
