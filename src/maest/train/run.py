"""``train(config)``: one experiment from a TrainConfig to exported weights, resumable at any epoch.

Works on one CPU, one GPU, several GPUs (DDP) and several nodes: Lightning detects torchrun and SLURM
from their environment variables, so the same call runs under ``torchrun`` or ``srun``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from maest.family import family_of
from maest.train.config import ConfigError, TrainConfig, save_config
from maest.train.data import MelDataModule
from maest.train.module import MaestTraining
from maest.train.network import architecture, build_network
from maest.train.teacher import load_teacher

log = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"
LAST_CHECKPOINT = "last.ckpt"
# Exported weights, loadable by `maest embed/tag --model`: SWA (or live before SWA starts), and live.
EXPORT_NAMES = {"main": "model", "last": "model-last"}


def export_path(run_dir: Path, which: str, net: torch.nn.Module) -> Path:
    """Where ``which`` weights of a run are exported: a native folder (MAEST) or a .safetensors (EffNet)."""
    return run_dir / (EXPORT_NAMES[which] + family_of(net).export_suffix)


def export_weights(module: MaestTraining, run_dir: Path) -> dict[str, Path]:
    """Write the module's main and last weights in maest's format; returns their paths."""
    from maest.checkpoints import save_native

    paths = {}
    for which, net in module.export_networks().items():
        path = export_path(run_dir, which, net)
        save_native(net, path)  # MAEST or EffNet: the native format records the type
        paths[which] = path
    return paths


class ExportWeights(Callback):
    """Export the weights (rank 0) every time a Lightning checkpoint is written."""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        if trainer.is_global_zero:
            export_weights(pl_module, self.run_dir)


def resume_checkpoint(config: TrainConfig) -> Path | None:
    """The checkpoint to resume from: ``resume: auto`` finds ``last.ckpt``; ``never``; or a path."""
    resume = config.trainer.resume
    if resume == "never":
        return None
    if resume == "auto":
        last = config.run_dir / CHECKPOINTS / LAST_CHECKPOINT
        return last if last.is_file() else None
    path = Path(resume)
    if not path.is_file():
        raise ConfigError(f"trainer.resume: no checkpoint at {path} (use auto, never, or a .ckpt path)")
    return path


def precision(config: TrainConfig) -> str:
    """``auto``: bf16 mixed precision where the GPU supports it, else fp16 mixed; 32-bit on CPU."""
    value = config.trainer.precision
    if value != "auto":
        return value
    if config.trainer.accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    return "32-true"


def make_trainer(config: TrainConfig, callbacks: list[Callback] | None = None) -> L.Trainer:
    """The Lightning Trainer of a run: loggers, epoch checkpoints, exports, DDP across devices/nodes."""
    run_dir = config.run_dir
    trainer_config = config.trainer
    if trainer_config.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # required by deterministic cuBLAS
    devices = trainer_config.devices
    many = devices == -1 or devices * trainer_config.num_nodes > 1
    checkpoint = ModelCheckpoint(dirpath=run_dir / CHECKPOINTS, save_last=True, save_top_k=0, every_n_epochs=1)
    return L.Trainer(
        accelerator=trainer_config.accelerator,
        devices=devices,
        num_nodes=trainer_config.num_nodes,
        strategy="ddp" if many else "auto",
        precision=precision(config),
        max_epochs=trainer_config.max_epochs,
        deterministic=trainer_config.deterministic,
        log_every_n_steps=trainer_config.log_every_n_steps,
        enable_progress_bar=trainer_config.progress_bar,
        # The balanced sampler shards itself across ranks; validation uses a DistributedSampler.
        use_distributed_sampler=False,
        logger=[TensorBoardLogger(run_dir, name="tensorboard"), CSVLogger(run_dir, name="csv")],
        callbacks=[checkpoint, ExportWeights(run_dir), LearningRateMonitor(logging_interval="epoch"),
                   *(callbacks or [])],
        default_root_dir=run_dir,
    )


def train(config: TrainConfig, callbacks: list[Callback] | None = None) -> Path:
    """Train (or resume) the experiment; returns the exported main weights (SWA once SWA started).

    Run folder ``<output_dir>/<name>/``: ``config.yaml``, ``checkpoints/last.ckpt`` (exact resume:
    weights, SWA copy, optimizer, schedule, sampler epoch), ``model/`` and ``model-last/`` (native
    weights for ``maest embed/tag --model``), ``tensorboard/`` and ``csv/`` logs.
    """
    L.seed_everything(config.seed, workers=True, verbose=False)
    run_dir = config.run_dir
    resume = resume_checkpoint(config)
    datamodule = MelDataModule(config, segment_frames=0)
    arch = architecture(config, datamodule.labels, datamodule.mean, datamodule.std)
    datamodule.segment_frames = arch.segment_frames
    net = build_network(config, datamodule.labels, datamodule.mean, datamodule.std, initialise=resume is None)
    # The teacher (teacher-student training) is reloaded from the config on every start, resume included.
    teacher = load_teacher(config, datamodule.labels, arch.segment_frames) if config.model.teacher else None
    module = MaestTraining(config, net, teacher)
    trainer = make_trainer(config, callbacks)
    if trainer.is_global_zero:
        save_config(config, run_dir / "config.yaml")
    if resume is not None:
        log.info("resuming %s from %s", config.name, resume)
    trainer.fit(module, datamodule=datamodule, ckpt_path=resume)
    paths = {which: export_path(run_dir, which, net) for which, net in module.export_networks().items()}
    if trainer.is_global_zero:
        paths = export_weights(module, run_dir)
    return paths["main"]
