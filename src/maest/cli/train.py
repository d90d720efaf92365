"""`maest train`: the paper's training recipe (maest.train)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from maest.cli.options import fail, require


def train_command(
    config: Annotated[Path, typer.Option(
        "--config", "-c", help="A shipped config by name (tiny, maest-10s-passt, maest-30s-passt, effnet-b0 ...: "
                            "works from any folder) or the path of an experiment YAML.")],
    overrides: Annotated[Optional[list[str]], typer.Option(
        "--set", help="Override a config key, e.g. --set optim.lr=2e-5 --set data.root=/data/discogs "
                      "(repeatable; values are typed and checked).")] = None,
    devices: Annotated[Optional[int], typer.Option(
        "--devices", help="GPUs (or processes) per node; >1 trains with DDP. Same as --set trainer.devices=N.")] = None,
    num_nodes: Annotated[Optional[int], typer.Option(
        "--num-nodes", help="Nodes (under torchrun or SLURM srun). Same as --set trainer.num_nodes=N.")] = None,
) -> None:
    """Train MAEST (or the EffNet-B0 baseline) with the paper's recipe; resumes from the run's last.ckpt.

    Writes <output_dir>/<name>/: checkpoints/last.ckpt, model/ (SWA weights once SWA started, else
    the live ones) and model-last/ (live weights) for `maest embed/tag --model`, TensorBoard and CSV logs.
    """
    require("train", "lightning", "sklearn", "tensorboard")
    from maest.train.config import ConfigError, load_config

    extra = [f"trainer.devices={devices}"] if devices is not None else []
    extra += [f"trainer.num_nodes={num_nodes}"] if num_nodes is not None else []
    try:
        settings = load_config(config, [*(overrides or []), *extra])
    except ConfigError as error:
        fail(str(error))
    from maest.train.run import train  # before lightning, as it always was imported
    from maest.train.data import TrainDataError

    from lightning.fabric.utilities.rank_zero import rank_zero_only

    try:
        path = train(settings)
    except (ConfigError, TrainDataError, OSError) as error:
        fail(f"{type(error).__name__}: {error}")
    if rank_zero_only.rank == 0:  # under DDP every rank returns here; report once
        typer.echo(f"trained weights: {path}")
