"""Runs of options that several commands declare alike, declared once.

A command names a run with one placeholder parameter, e.g. ``probe: ProbeOptions = ProbeOptions()``;
:func:`expand_groups` puts the run's options in its place in the signature typer reads (so ``--help``
lists them at that spot, in the dataclass's order, under their own names) and calls the command
with one dataclass instance holding their values. Nothing here imports torch.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable
from typing import Any, get_type_hints

import typer

from maest.cli.engine import engine_for
from maest.cli.options import (
    AllowMissingOpt,
    AudioRootOpt,
    ConcurrencyOpt,
    DatasetArg,
    DropoutOpt,
    EngineOpt,
    EpochsOpt,
    LowQualityOpt,
    MaxLrOpt,
    MetadataOpt,
    OldProbeWorkersOpt,
    PrecisionOpt,
    ProbeBatchOpt,
    ProbeWorkersOpt,
    ProgressOpt,
    RayAddressOpt,
    ResamplerOpt,
    SeedOpt,
    SegmentsOpt,
    WarmupOpt,
    renamed_workers,
    require,
)


@dataclasses.dataclass(frozen=True)
class EvalData:
    """The dataset an evaluation command reads: its name, split files and audio folder."""

    dataset: DatasetArg
    metadata: MetadataOpt
    audio_root: AudioRootOpt


@dataclasses.dataclass(frozen=True)
class ProbeOptions:
    """The dataset and probe options of ``eval`` and every ``experiment`` command."""

    segments: SegmentsOpt = None
    epochs: EpochsOpt = None
    max_lr: MaxLrOpt = None
    batch: ProbeBatchOpt = None
    dropout: DropoutOpt = None
    warmup: WarmupOpt = None
    low_quality: LowQualityOpt = False
    allow_missing: AllowMissingOpt = False

    def dataset_options(self, dataset: str) -> dict:
        """``--low-quality`` as load options: only MTG-Jamendo has a low-quality release."""
        return {"low_quality": True} if self.low_quality and dataset.startswith("mtg-jamendo-") else {}

    def overrides(self) -> dict:
        """The probe settings given on the command line, under the protocol's names."""
        values = {"epochs": self.epochs, "max_lr": self.max_lr, "batch_size": self.batch, "dropout": self.dropout,
                  "warmup_epochs": self.warmup}
        return {k: v for k, v in values.items() if v is not None}

    def experiment_keywords(self, data: EvalData) -> dict:
        """The keywords every experiment function takes from these options and the dataset."""
        require("eval", "sklearn", "matplotlib")
        return {"dataset": data.dataset, "metadata": data.metadata, "audio_root": data.audio_root,
                "segments": self.segments, "allow_missing": self.allow_missing,
                "dataset_options": self.dataset_options(data.dataset), "probe_overrides": self.overrides()}


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """The worker, seed and precision options that close every ``experiment`` command."""

    probe_workers: ProbeWorkersOpt = None
    workers: OldProbeWorkersOpt = None
    seed: SeedOpt = 0
    progress: ProgressOpt = True
    precision: PrecisionOpt = None
    resampler: ResamplerOpt = None

    def keywords(self, ctx: typer.Context, workers_keyword: str) -> dict:
        """These options as keywords of an experiment function, whose probe workers are ``workers_keyword``
        (``--workers``, the old name of ``--probe-workers``, still counts)."""
        return {workers_keyword: renamed_workers(ctx, self.workers, self.probe_workers, "probe_workers"),
                "seed": self.seed, "progress": self.progress, "precision": self.precision,
                "resampler": self.resampler}


@dataclasses.dataclass(frozen=True)
class EngineOptions:
    """``--engine`` and the options of the Ray engine, on every command that computes tracks."""

    engine: EngineOpt = "local"
    ray_address: RayAddressOpt = None
    concurrency: ConcurrencyOpt = 1

    def build(self, ctx: typer.Context, decode_workers: int):
        """The engine these options name (see :func:`maest.cli.engine.engine_for`); close it when done."""
        return engine_for(ctx, self.engine, decode_workers=decode_workers, ray_address=self.ray_address,
                          concurrency=self.concurrency)


GROUPS = (EvalData, ProbeOptions, RunOptions, EngineOptions)


def expand_groups(command: Callable[..., Any]) -> Callable[..., Any]:
    """``command`` with each parameter typed as one of :data:`GROUPS` spread into that group's options."""
    hints = get_type_hints(command, include_extras=True)
    parameters: list[inspect.Parameter] = []
    groups: dict[str, type] = {}
    for parameter in inspect.signature(command).parameters.values():
        group = hints.get(parameter.name)
        if group not in GROUPS:
            parameters.append(parameter.replace(annotation=hints.get(parameter.name, parameter.annotation)))
            continue
        groups[parameter.name] = group
        group_hints = get_type_hints(group, include_extras=True)
        parameters += [inspect.Parameter(field.name, parameter.kind, annotation=group_hints[field.name],
                                         default=inspect.Parameter.empty if field.default is dataclasses.MISSING
                                         else field.default) for field in dataclasses.fields(group)]

    @functools.wraps(command)
    def grouped(**values: Any) -> Any:
        for name, group in groups.items():
            values[name] = group(**{field.name: values.pop(field.name) for field in dataclasses.fields(group)})
        return command(**values)

    del grouped.__wrapped__  # typer must read the expanded signature, not the command's own
    grouped.__signature__ = inspect.Signature(parameters, return_annotation=None)
    grouped.__annotations__ = {parameter.name: parameter.annotation for parameter in parameters}
    return grouped
