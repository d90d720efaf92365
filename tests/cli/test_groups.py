"""expand_groups: a group's options stand where its placeholder stood, and the command gets one instance."""

from __future__ import annotations

import inspect

import typer
from typer.testing import CliRunner

from maest.cli import app
from maest.cli.groups import EngineOptions, ProbeOptions, expand_groups
from maest.cli.options import SeedOpt


def test_group_options_take_the_placeholder_place_and_arrive_as_one_instance():
    seen = {}

    @expand_groups
    def command(first: SeedOpt = 0, probe: ProbeOptions = ProbeOptions(), compute: EngineOptions = EngineOptions(),
                last: bool = False) -> None:
        seen.update(first=first, probe=probe, compute=compute, last=last)

    names = list(inspect.signature(command).parameters)
    assert names == ["first", "segments", "epochs", "max_lr", "batch", "dropout", "warmup", "low_quality",
                     "allow_missing", "engine", "ray_address", "concurrency", "last"]
    one = typer.Typer()
    one.command()(command)
    result = CliRunner().invoke(one, ["--epochs", "3", "--low-quality", "--concurrency", "2", "--seed", "5"])
    assert result.exit_code == 0, result.output
    assert seen["first"] == 5 and seen["last"] is False
    assert seen["probe"] == ProbeOptions(epochs=3, low_quality=True)
    assert seen["probe"].overrides() == {"epochs": 3}
    assert seen["compute"] == EngineOptions(concurrency=2)


def test_experiment_help_lists_the_grouped_options_in_the_declared_order():
    result = CliRunner().invoke(app, ["experiment", "blocks", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    flags = ["--protocol", "--segments", "--epochs", "--max-lr", "--probe-batch", "--dropout", "--warmup-epochs",
             "--low-quality", "--allow-missing", "--device", "--batch-size", "--probe-workers", "--seed",
             "--progress", "--precision", "--resampler"]
    positions = [result.output.index(flag) for flag in flags]
    assert positions == sorted(positions)
