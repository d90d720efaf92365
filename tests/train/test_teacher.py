"""Teacher-student training: config checks, the two heads' targets, and a tiny run whose dist head
moves towards a frozen random teacher while its cls head learns the labels; resume keeps working."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
import torch.nn.functional as F

from maest.checkpoints import load_checkpoint, load_native, save_native
from maest.configs import MaestConfig
from maest.data.store import MelStore
from maest.frontend import normalize_mel
from maest.model import Maest
from maest.train.config import ConfigError, load_config
from maest.train.demo import demo_labels, make_demo_data
from maest.train.run import train
from maest.train.teacher import TeacherError, check_teacher, teacher_input, teacher_student_loss

CONFIGS = Path(__file__).resolve().parents[2] / "src" / "maest" / "resources" / "train"  # shipped configs
LABELS = demo_labels(4)


def random_teacher(path: Path, mean: float, std: float, classes: int = 4, segment_frames: int = 128) -> Maest:
    """A tiny MAEST with fixed random weights; its head is scaled so its probabilities spread over (0, 1)."""
    torch.manual_seed(123)
    config = MaestConfig(depth=2, width=32, heads=2, segment_frames=segment_frames, num_classes=classes,
                         labels=LABELS[:classes] if classes <= 4 else None, norm_mean=mean, norm_std=std)
    teacher = Maest(config)
    torch.nn.init.normal_(teacher.head[1].weight, std=1.0)
    torch.nn.init.normal_(teacher.head[1].bias, std=1.0)
    save_native(teacher, path)
    return teacher.eval()


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    return make_demo_data(tmp_path_factory.mktemp("demo"), tracks=60, seconds=3.0, classes=4, validation=0.3,
                          test=0.0, seed=0, progress=False)


@pytest.fixture(scope="module")
def teacher_path(demo, tmp_path_factory) -> Path:
    stats = MelStore(demo / "store").stats
    path = tmp_path_factory.mktemp("teacher") / "teacher"
    random_teacher(path, stats["mean"], stats["std"])
    return path


def tiny(demo: Path, out: Path, *overrides: str):
    return load_config(CONFIGS / "tiny.yaml", [
        f"data.root={demo}", f"trainer.output_dir={out}", "trainer.progress_bar=false", "trainer.deterministic=true",
        "trainer.log_every_n_steps=1", "trainer.batch_size=8", "data.samples_per_epoch=64", "swa.enabled=false",
        "optim.warmup_epochs=0", *overrides])


def test_teacher_options_are_checked_at_config_load(tmp_path):
    with pytest.raises(ConfigError, match="no checkpoint at"):
        load_config(CONFIGS / "tiny.yaml", [f"model.teacher={tmp_path / 'missing'}"])
    with pytest.raises(ConfigError, match=r"teacher_weight must be in \[0, 1\]"):
        load_config(CONFIGS / "tiny.yaml", ["model.teacher_weight=1.5"])
    with pytest.raises(ConfigError, match="MAEST student"):
        load_config(CONFIGS / "effnet-b0.yaml", ["model.teacher=discogs-maest-30s-pw-129e"])
    config = load_config(CONFIGS / "maest-30s-passt.yaml")
    assert config.model.teacher is None and config.model.teacher_weight == 0.5
    assert load_config(CONFIGS / "tiny.yaml", ["model.teacher=discogs-maest-30s-pw-73e-ts"]).model.teacher


def test_teacher_must_predict_the_students_labels_from_its_crops(tmp_path):
    teacher = random_teacher(tmp_path / "t", 0.0, 1.0)
    check_teacher(teacher, LABELS, 128)
    with pytest.raises(TeacherError, match="predicts 4 classes but the student has 3 labels"):
        check_teacher(teacher, LABELS[:3], 128)
    with pytest.raises(TeacherError, match="label 0 is"):
        check_teacher(teacher, LABELS[::-1], 128)
    with pytest.raises(TeacherError, match="at most 12 time columns"):
        check_teacher(teacher, LABELS, 256)


def test_teacher_input_is_renormalised_to_the_teachers_statistics():
    raw = torch.rand(2, 96, 40) * 4
    student = normalize_mel(raw, 1.3, 0.7)
    torch.testing.assert_close(teacher_input(student, 1.3, 0.7, 2.06, 1.27), normalize_mel(raw, 2.06, 1.27))
    assert teacher_input(student, 1.3, 0.7, 1.3, 0.7) is student


def test_cls_head_fits_the_labels_and_dist_head_the_teacher(tmp_path):
    net = Maest(MaestConfig(depth=2, width=32, heads=2, segment_frames=128, num_classes=4)).eval()
    mel, labels, teacher = torch.randn(3, 96, 128), torch.randint(0, 2, (3, 4)).float(), torch.rand(3, 4)
    cls_logits, dist_logits = net.token_logits(net.forward_features(mel))
    # forward is unchanged: the published head on the mean of both tokens.
    x = net.norm(net.forward_features(mel))
    torch.testing.assert_close(net(mel), net.head((x[:, 0] + x[:, 1]) / 2))
    loss, labels_loss, teacher_loss = teacher_student_loss(net, teacher, mel, labels, 0.25)
    torch.testing.assert_close(labels_loss, F.binary_cross_entropy_with_logits(cls_logits, labels))
    torch.testing.assert_close(teacher_loss, F.binary_cross_entropy_with_logits(dist_logits, teacher))
    torch.testing.assert_close(loss, 0.75 * labels_loss + 0.25 * teacher_loss)
    # Each head gets gradients from its own target only.
    cls_weight, dist_weight = net.head[1].weight, net.head_dist.weight
    for weight, trained, untouched in ((0.0, cls_weight, dist_weight), (1.0, dist_weight, cls_weight)):
        net.zero_grad(set_to_none=True)
        teacher_student_loss(net, teacher, mel, labels, weight)[0].backward()
        assert trained.grad.abs().sum() > 0
        assert not untouched.grad.any()


class HeadDistances(L.Callback):
    """On the validation centre crops, before and after training: the mean |p_dist - p_teacher| of the
    student's dist head and the BCE of its cls head against the labels."""

    def __init__(self, teacher: Maest):
        self.teacher = teacher
        self.values: list[tuple[float, float]] = []

    def measure(self, trainer, module) -> None:
        data = trainer.datamodule.val_set
        mel = torch.stack([data[i][0] for i in range(len(data))])
        labels = torch.stack([data[i][1] for i in range(len(data))])
        net, training = module.net, module.net.training
        net.eval()
        with torch.no_grad():
            cls_logits, dist_logits = net.token_logits(net.forward_features(mel))
            target = torch.sigmoid(self.teacher(mel))
        net.train(training)
        self.values.append(((torch.sigmoid(dist_logits) - target).abs().mean().item(),
                            F.binary_cross_entropy_with_logits(cls_logits, labels).item()))

    on_train_start = measure
    on_train_end = measure


def test_dist_head_tracks_the_teacher_and_resume_reloads_it(demo, teacher_path, tmp_path):
    teacher = load_native(teacher_path).eval()
    distances = HeadDistances(teacher)
    config = tiny(demo, tmp_path, f"model.teacher={teacher_path}", "model.teacher_weight=0.5",
                  "trainer.max_epochs=3")
    path = train(config, callbacks=[distances])
    (dist_before, cls_before), (dist_after, cls_after) = distances.values
    print(f"dist head |p - p_teacher| {dist_before:.3f} -> {dist_after:.3f}; "
          f"cls head BCE on labels {cls_before:.3f} -> {cls_after:.3f}")
    assert dist_after < 0.6 * dist_before, (dist_before, dist_after)  # measured 0.337 -> 0.170
    assert cls_after < cls_before - 0.05, (cls_before, cls_after)  # measured 0.691 -> 0.559

    # The teacher is in neither the checkpoint nor the exported weights: they are the student's alone.
    ckpt = torch.load(tmp_path / "tiny" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    student_keys = {f"net.{k}" for k in load_native(path).state_dict()}
    assert set(ckpt["state_dict"]) == student_keys | {"swa_snapshots"}
    assert ckpt["hyper_parameters"]["config"]["model"]["teacher"] == str(teacher_path)
    assert load_checkpoint(tmp_path / "tiny" / "checkpoints" / "last.ckpt").config == load_native(path).config

    # Resume: the teacher is reloaded from the config and training continues after epoch 2.
    class Epochs(L.Callback):
        def __init__(self):
            self.epochs = []

        def on_train_epoch_start(self, trainer, module):
            self.epochs.append(trainer.current_epoch)
            assert module._teacher and not module._teacher[0].training

    epochs = Epochs()
    train(tiny(demo, tmp_path, f"model.teacher={teacher_path}", "trainer.max_epochs=4"), callbacks=[epochs])
    assert epochs.epochs == [3]


def test_a_teacher_with_other_classes_stops_before_training(demo, tmp_path):
    other = tmp_path / "other"
    random_teacher(other, 0.0, 1.0, classes=5)
    with pytest.raises(TeacherError, match="predicts 5 classes but the student has 4 labels"):
        train(tiny(demo, tmp_path, f"model.teacher={other}", "trainer.max_epochs=1"))
    assert not (tmp_path / "tiny" / "checkpoints").exists()
