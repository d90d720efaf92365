"""The LightningModule of the recipe: BCE on mixup + SpecAugment batches, AdamW, per-epoch schedule,
SWA copy, and macro mAP / ROC-AUC of both the live and the SWA weights on validation."""

from __future__ import annotations

import random

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from maest.train.augment import SpecAugment, mixup
from maest.train.config import ConfigError, TrainConfig
from maest.family import family_of
from maest.metrics import macro_scores
from maest.train.schedule import schedule_for
from maest.train.swa import averaged_copy, swa_due, update_average
from maest.train.teacher import teacher_probabilities, teacher_student_loss
from maest.train.validation import probability_bce, track_probabilities

WEIGHTS = ("live", "swa")
NETWORK_KEY = "maest_network"  # read by maest.checkpoints.official when loading a training checkpoint


class MaestTraining(L.LightningModule):
    """Trains ``net`` (MAEST or EffNet); ``net_swa`` holds the running average (original key names).

    ``teacher`` (``maest.train.teacher.load_teacher``), required when ``model.teacher`` is set,
    supervises the dist head (teacher-student training).
    """

    def __init__(self, config: TrainConfig, net: nn.Module, teacher: nn.Module | None = None):
        super().__init__()
        if (teacher is None) != (config.model.teacher is None):
            raise ConfigError("a teacher module is passed exactly when model.teacher is set "
                              "(load it with maest.train.teacher.load_teacher)")
        self.config = config
        self.save_hyperparameters({"config": config.to_dict()})
        self.net = net
        if hasattr(net, "head_dist") and teacher is None:
            # MAEST's head_dist is kept for checkpoint compatibility but unused without a teacher:
            # freeze it so DDP does not wait for its gradients.
            net.head_dist.requires_grad_(False)
        # A plain tuple, not a submodule: the teacher stays out of checkpoints, exports, DDP and
        # train()/eval() switching (it is always in eval mode and reloaded from the config).
        self._teacher: tuple[nn.Module, ...] = (teacher,) if teacher is not None else ()
        self.net_swa = averaged_copy(net) if config.swa.enabled else None
        # Snapshots folded into net_swa so far; a buffer so checkpoints carry it.
        self.register_buffer("swa_snapshots", torch.zeros((), dtype=torch.long))
        aug = config.augment
        self.spec_augment = SpecAugment(aug.time_masks, aug.time_mask_frames, aug.freq_masks, aug.freq_mask_bands)
        self._outputs: dict[str, list[torch.Tensor]] = {}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Store the network's architecture (plain values) so ``--model last.ckpt`` rebuilds it exactly:
        heads, labels and normalisation cannot be read from tensor shapes."""
        checkpoint[NETWORK_KEY] = {"type": family_of(self.net).name, "config": self.net.config.to_dict()}

    @property
    def swa_started(self) -> bool:
        return self.net_swa is not None and int(self.swa_snapshots) > 0

    def export_networks(self) -> dict[str, nn.Module]:
        """The weights to publish: ``main`` (SWA once started, else live) and ``last`` (live)."""
        return {"main": self.net_swa if self.swa_started else self.net, "last": self.net}

    # -- optimisation ---------------------------------------------------------------------------
    def configure_optimizers(self):
        optim = self.config.optim
        exempt = self.net.no_weight_decay()
        trained = [(n, p) for n, p in self.net.named_parameters() if p.requires_grad]
        decay = [p for n, p in trained if n not in exempt]
        no_decay = [p for n, p in trained if n in exempt]
        groups = [{"params": decay, "weight_decay": optim.weight_decay},
                  {"params": no_decay, "weight_decay": 0.0}]
        cls = torch.optim.AdamW if optim.optimizer == "adamw" else torch.optim.Adam
        optimizer = cls([g for g in groups if g["params"]], lr=optim.lr)
        schedule = schedule_for(optim.lr, optim.final_lr, optim.warmup_epochs, optim.warmup_shape,
                                optim.decay_start_epoch, optim.decay_epochs)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}

    def on_train_batch_start(self, batch, batch_idx: int) -> None:
        # The global RNGs (patchout, mixup, SpecAugment, dropout) restart from (seed, epoch, rank) at
        # each epoch's first step (after the loader's iterator drew its worker seed, which Lightning
        # does at a different moment on resume): a run resumed from an epoch checkpoint continues
        # exactly, with no RNG state to restore.
        if batch_idx != 0:
            return
        seed = (self.config.seed * 1_000_003 + self.current_epoch * 1009 + self.global_rank) % 2**31
        torch.manual_seed(seed)
        np.random.seed(seed)
        random.seed(seed)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        mel, targets, _ = batch
        mel = self.spec_augment(mel)
        if self.config.augment.mixup_alpha > 0:
            mixed = mixup(mel, targets, self.config.augment.mixup_alpha)
            mel, targets = mixed.inputs, mixed.targets
        if self._teacher:
            loss = self._teacher_student_loss(mel, targets)
        else:
            logits = self.net(mel)  # train mode: structured patchout and a random time-encoding window
            loss = F.binary_cross_entropy_with_logits(logits.float(), targets.float())
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=mel.shape[0],
                 sync_dist=True)
        return loss

    def _teacher_student_loss(self, mel: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The teacher sees the student's augmented batch, without patchout (eval mode)."""
        arch = self.net.config
        probs = teacher_probabilities(self._teacher[0], mel, arch.norm_mean, arch.norm_std)
        loss, labels_loss, teacher_loss = teacher_student_loss(self.net, probs, mel, targets,
                                                               self.config.model.teacher_weight)
        for name, value in (("loss_labels", labels_loss), ("loss_teacher", teacher_loss)):
            self.log(f"train/{name}", value, on_step=True, on_epoch=True, batch_size=mel.shape[0], sync_dist=True)
        return loss

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        # SWA snapshot after the epoch's last step, before its validation, so both are evaluated.
        last = batch_idx + 1 >= self.trainer.num_training_batches
        swa = self.config.swa
        if last and self.net_swa is not None and swa_due(self.current_epoch, swa.start_epoch, swa.every_epochs):
            self.swa_snapshots.fill_(update_average(self.net_swa, self.net, int(self.swa_snapshots)))

    # -- validation ------------------------------------------------------------------------------
    def on_validation_epoch_start(self) -> None:
        self._outputs = {"index": [], "targets": [], "live": [], "swa": []}

    def validation_step(self, batch, batch_idx: int) -> None:
        mel, targets, index = batch
        self._outputs["index"].append(index)
        self._outputs["targets"].append(targets)
        if self.config.data.validation_protocol == "segments":
            # mel: one stack of segments per track; probabilities averaged per track (paper protocol).
            chunk = self.config.data.val_batch_size or self.config.trainer.batch_size
            probs = track_probabilities(self.net, mel, chunk)
            self._outputs["live"].append(probs)
            self.log("val/loss", probability_bce(probs, targets),
                     on_epoch=True, sync_dist=True, batch_size=len(mel))
            if self.swa_started:
                self._outputs["swa"].append(track_probabilities(self.net_swa, mel, chunk))
            return
        live = self.net(mel).float()
        self._outputs["live"].append(torch.sigmoid(live))
        self.log("val/loss", F.binary_cross_entropy_with_logits(live, targets.float()),
                 on_epoch=True, sync_dist=True, batch_size=mel.shape[0])
        if self.swa_started:
            self._outputs["swa"].append(torch.sigmoid(self.net_swa(mel).float()))

    def on_validation_epoch_end(self) -> None:
        if not self._outputs["index"]:
            return
        gathered = {k: self._gather(torch.cat(v)) for k, v in self._outputs.items() if v}
        # Distributed shards are padded with repeats: keep the first occurrence of each track.
        _, first = np.unique(gathered["index"].cpu().numpy(), return_index=True)
        targets = gathered["targets"].cpu().numpy()[first]
        for weights in WEIGHTS:
            if weights in gathered:
                scores = macro_scores(targets, gathered[weights].cpu().numpy()[first])
                suffix = "" if weights == "live" else "_swa"
                # Identical on every rank (computed from gathered outputs); sync_dist only silences DDP.
                self.log(f"val/mAP{suffix}", scores["mAP"], prog_bar=True, sync_dist=True)
                self.log(f"val/ROC-AUC{suffix}", scores["ROC-AUC"], sync_dist=True)
        self._outputs = {}

    def _gather(self, values: torch.Tensor) -> torch.Tensor:
        if self.trainer.world_size == 1:
            return values
        return self.all_gather(values).flatten(0, 1)
