"""The frozen teacher of teacher-student training (the paper's footnote; ``discogs-maest-30s-pw-73e-ts``).

A trained model's sigmoid outputs on the student's own augmented batch are the targets of the
student's dist head, while its cls head learns the labels:
``loss = (1 - w) BCE(cls logits, labels) + w BCE(dist logits, teacher probabilities)``.
The teacher is loaded from ``model.teacher`` at every start (fresh or resumed) and is never part
of the student's checkpoints or exported weights.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from maest.train.config import ConfigError, TrainConfig


class TeacherError(ConfigError):
    """The teacher cannot supervise this student (other classes, labels or input length)."""


def load_teacher(config: TrainConfig, labels: list[str], segment_frames: int) -> nn.Module:
    """The frozen, eval-mode teacher named by ``model.teacher``, checked against the student's labels."""
    from maest.checkpoints import CheckpointError, load_checkpoint

    source = config.model.teacher
    if source is None:
        raise TeacherError("model.teacher is null: there is no teacher to load")
    try:
        teacher = load_checkpoint(source)
    except CheckpointError as error:
        raise TeacherError(f"model.teacher {source!r} cannot be loaded: {error}") from error
    check_teacher(teacher, labels, segment_frames, source)
    return teacher.eval().requires_grad_(False)


def check_teacher(teacher: nn.Module, labels: list[str], segment_frames: int, source: str = "the teacher") -> None:
    """Fail unless ``teacher`` predicts the student's classes, in its order, from its input crops."""
    from maest.model import Maest

    arch = teacher.config
    if arch.num_classes != len(labels):
        raise TeacherError(f"model.teacher {source} predicts {arch.num_classes} classes but the student has "
                           f"{len(labels)} labels: use a teacher trained on the same label list")
    if arch.labels is not None and list(arch.labels) != list(labels):
        first = next(i for i, (a, b) in enumerate(zip(arch.labels, labels)) if a != b)
        raise TeacherError(f"model.teacher {source}: label {first} is {arch.labels[first]!r} but the student's is "
                           f"{labels[first]!r}; write labels.json in the teacher's order")
    if isinstance(teacher, Maest):
        columns, grid = arch.conv_time_columns(segment_frames), arch.time_grid
        if columns > grid:
            raise TeacherError(f"model.teacher {source} takes at most {grid} time columns but the student's "
                               f"{segment_frames}-frame crops have {columns}: use a teacher of at least the "
                               f"student's segment length")


def teacher_input(mel: torch.Tensor, mean: float, std: float, teacher_mean: float, teacher_std: float) -> torch.Tensor:
    """Re-normalise a batch normalised with ``(mean, std)`` to the teacher's own normalisation."""
    if (mean, std) == (teacher_mean, teacher_std):
        return mel
    # raw = 2 std x + mean; teacher input = (raw - teacher_mean) / (2 teacher_std)
    return mel * (std / teacher_std) + (mean - teacher_mean) / (2.0 * teacher_std)


@torch.no_grad()
def teacher_probabilities(teacher: nn.Module, mel: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    """Sigmoid outputs of the eval-mode teacher (no patchout, no dropout) on the student's batch."""
    param = next(teacher.parameters())
    if param.device != mel.device:
        teacher.to(mel.device)
    teacher.eval()
    arch = teacher.config
    x = teacher_input(mel, mean, std, arch.norm_mean, arch.norm_std).to(param.dtype)
    return torch.sigmoid(teacher(x).float())


def teacher_student_loss(net: nn.Module, teacher_probs: torch.Tensor, mel: torch.Tensor, targets: torch.Tensor,
                         weight: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(loss, labels loss, teacher loss)``: the cls head fits ``targets``, the dist head ``teacher_probs``."""
    cls_logits, dist_logits = net.token_logits(net.forward_features(mel))
    labels_loss = F.binary_cross_entropy_with_logits(cls_logits.float(), targets.float())
    teacher_loss = F.binary_cross_entropy_with_logits(dist_logits.float(), teacher_probs.float())
    return (1.0 - weight) * labels_loss + weight * teacher_loss, labels_loss, teacher_loss
