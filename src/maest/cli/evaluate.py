"""`maest eval` and `maest experiment ...`: downstream probes and the paper's experiments (maest.evaluate)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Optional

import typer

from maest.cli.options import (
    DEFAULT_MODEL,
    BatchSizeOpt,
    BlocksOpt,
    DecodeWorkersOpt,
    DeviceOpt,
    ModelOpt,
    OldProbeWorkersOpt,
    OverlapOpt,
    PatchoutFreqOpt,
    PrecisionOpt,
    ResamplerOpt,
    PatchoutTimeOpt,
    ProbeWorkersOpt,
    ProgressOpt,
    ProtocolOpt,
    SeedOpt,
    TokensOpt,
    TokenStacksOpt,
    fail,
    renamed_workers,
    require,
    split_list,
    split_token_stacks,
)
from maest.cli.groups import EngineOptions, EvalData, ProbeOptions, RunOptions, expand_groups


@expand_groups
def eval_command(
    ctx: typer.Context,
    data: EvalData,
    output_dir: Annotated[Path, typer.Option("--output-dir", "-o", help="Results (results.md, results.json), cached "
                                             "embeddings and probe runs; a rerun resumes.")],
    model: ModelOpt = DEFAULT_MODEL,
    protocol: ProtocolOpt = "paper",
    grid: Annotated[bool, typer.Option(
        "--grid", help="Run the protocol's grid search (paper, section 4.4), chosen on validation ROC-AUC.")] = False,
    blocks: BlocksOpt = None,
    tokens: TokensOpt = None,
    patchout_time: PatchoutTimeOpt = 1,
    patchout_freq: PatchoutFreqOpt = "",
    overlap: OverlapOpt = 0.5,
    probe: ProbeOptions = ProbeOptions(),
    device: DeviceOpt = None,
    batch_size: BatchSizeOpt = 8,
    decode_workers: DecodeWorkersOpt = 0,
    probe_workers: ProbeWorkersOpt = None,
    workers: OldProbeWorkersOpt = None,
    probe_device: Annotated[str, typer.Option(
        "--probe-device", help="Train probes on cpu (parallel processes) or cuda (one after another).")] = "cpu",
    seed: SeedOpt = 0,
    progress: ProgressOpt = True,
    precision: PrecisionOpt = None,
    resampler: ResamplerOpt = None,
    compute: EngineOptions = EngineOptions(),
) -> None:
    """Embed a dataset's tracks, train the MLP probe, report test ROC-AUC and mAP (Markdown + JSON).

    Defaults: block 7, the protocol's tokens (paper: cls,dist,avg; original-repo: cls) and its segment
    rule (original, as the paper's numbers were made).
    """
    require("eval", "sklearn")
    from maest.evaluate.datasets import DatasetFormatError, MissingAudioError
    from maest.evaluate.runner import run_eval
    from maest.model import parse_tokens

    probe_workers = renamed_workers(ctx, workers, probe_workers, "probe_workers")
    runner = compute.build(ctx, decode_workers)
    try:
        result = run_eval(
            data.dataset, data.metadata, data.audio_root, model, output_dir, protocol=protocol, grid=grid,
            blocks=blocks,
            tokens=parse_tokens(tokens) if tokens else None, patchout_time=patchout_time,
            patchout_freq=split_list(patchout_freq, int), overlap=overlap, segments=probe.segments, device=device,
            batch_size=batch_size,
            decode_workers=decode_workers, probe_workers=probe_workers, probe_device=probe_device,
            allow_missing=probe.allow_missing, seed=seed,
            dataset_options=probe.dataset_options(data.dataset),
            probe_overrides=probe.overrides(), progress=progress,
            precision=precision, resampler=resampler, engine=runner,
        )
    except (MissingAudioError, DatasetFormatError) as error:
        fail(str(error))
    except (OSError, ValueError, RuntimeError) as error:
        fail(f"{type(error).__name__}: {error}")
    finally:
        runner.close()
    typer.echo(result.markdown())
    typer.echo(f"wrote {output_dir / 'results.md'} and {output_dir / 'results.json'}")


experiment_app = typer.Typer(help="The paper's downstream experiments, with plots (PNG) and numbers (CSV, Markdown).",
                             no_args_is_help=True)


@contextmanager
def _one_line_errors() -> Iterator[None]:
    """An experiment's failure (bad input, a file it cannot read or write) as one ``error:`` line, exit status 1."""
    try:
        yield
    except (OSError, ValueError, RuntimeError) as error:
        fail(f"{type(error).__name__}: {error}")


def _block_range(text: str) -> list[int]:
    """'5-12' -> [5, ..., 12]; '5,7,9' -> [5, 7, 9]."""
    try:
        if "-" in text:
            low, _, high = text.partition("-")
            return list(range(int(low), int(high) + 1))
        return split_list(text, int)
    except ValueError:
        fail(f"--blocks must be a range like 5-12 or a list like 5,7,9, got {text!r}")


@experiment_app.command("blocks")
@expand_groups
def experiment_blocks_command(
    ctx: typer.Context,
    data: EvalData,
    output_dir: Annotated[Path, typer.Option(
        "--output-dir", "-o", help="blocks.png, blocks.csv, blocks.md, cached features; a rerun resumes.")],
    model: ModelOpt = DEFAULT_MODEL,
    blocks: Annotated[str, typer.Option(
        "--blocks", help="Blocks to sweep: a range 5-12 or a list 5,7,9 (paper: 5..12).")] = "5-12",
    tokens: TokenStacksOpt = "c,d,a,cd,ca,da,cda",
    protocol: ProtocolOpt = "paper",
    probe: ProbeOptions = ProbeOptions(),
    device: DeviceOpt = None,
    batch_size: BatchSizeOpt = 8,
    run: RunOptions = RunOptions(),
) -> None:
    """Figure 2: probe scores per block and token stack, from one forward pass per segment."""
    from maest.evaluate.experiments import blocks_experiment

    run_keywords = run.keywords(ctx, "workers")
    block_list = _block_range(blocks)
    with _one_line_errors():
        rows = blocks_experiment(
            model=model, output_dir=output_dir, blocks=block_list, token_stacks=split_token_stacks(tokens),
            protocol=protocol, device=device, batch_size=batch_size, **probe.experiment_keywords(data), **run_keywords,
        )
    typer.echo(f"{len(rows)} probes; wrote {output_dir / 'blocks.png'}, {output_dir / 'blocks.csv'}, {output_dir / 'blocks.md'}")


@experiment_app.command("patchout")
@expand_groups
def experiment_patchout_command(
    ctx: typer.Context,
    data: EvalData,
    output_dir: Annotated[Path, typer.Option(
        "--output-dir", "-o", help="patchout.png, patchout.csv, patchout.md, cached features; a rerun resumes.")],
    model: ModelOpt = DEFAULT_MODEL,
    time_patchout: Annotated[str, typer.Option(
        "--time", help="Values of T (keep one time column out of every T).")] = "1,2,3,5,10",
    freq_patchout: Annotated[str, typer.Option(
        "--freq", help="Numbers of frequency rows to drop at T=1: 3 = rows 0,7,8 and 4 = rows 0,1,7,8 "
                       "(the first and last rows, as in the paper).")] = "3,4",
    cross: Annotated[bool, typer.Option("--cross", help="Run every (T, frequency rows) pair instead.")] = False,
    block: Annotated[int, typer.Option("--block", help="Embedding block.")] = 7,
    tokens: TokensOpt = "cda",
    protocol: ProtocolOpt = "paper",
    probe: ProbeOptions = ProbeOptions(),
    device: Annotated[Optional[str], typer.Option(
        "--device", help="Device; throughput is measured on it (default: cuda if available).")] = None,
    batch_size: Annotated[int, typer.Option(
        "--batch-size", min=1, help="Segments per model call (extraction and throughput).")] = 8,
    run: RunOptions = RunOptions(),
) -> None:
    """Figure 3: throughput (segments/s) vs mAP under inference time and frequency patchout."""
    from maest.evaluate.experiments import patchout_experiment

    run_keywords = run.keywords(ctx, "workers")
    with _one_line_errors():
        rows = patchout_experiment(
            model=model, output_dir=output_dir, time_patchout=split_list(time_patchout, int),
            freq_patchout=split_list(freq_patchout, int), cross=cross, block=block, tokens=tokens, protocol=protocol,
            device=device, batch_size=batch_size, **probe.experiment_keywords(data), **run_keywords,
        )
    typer.echo(f"{len(rows)} settings; wrote {output_dir / 'patchout.png'}, {output_dir / 'patchout.csv'}, {output_dir / 'patchout.md'}")


@experiment_app.command("compare")
@expand_groups
def experiment_compare_command(
    ctx: typer.Context,
    data: EvalData,
    models: Annotated[list[str], typer.Option(
        "--model", "-m", help="A checkpoint to compare (repeat the option for each).")],
    output_dir: Annotated[Path, typer.Option(
        "--output-dir", "-o", help="compare.png, compare.csv, compare.md, one eval folder per model.")],
    protocol: ProtocolOpt = "paper",
    blocks: Annotated[Optional[int], typer.Option(
        "--blocks", help="Embedding block (default: the protocol's, 7).")] = None,
    tokens: TokensOpt = None,
    probe: ProbeOptions = ProbeOptions(),
    device: DeviceOpt = None,
    batch_size: BatchSizeOpt = 8,
    run: RunOptions = RunOptions(),
) -> None:
    """A table (and bar chart) of several checkpoints evaluated with the same protocol."""
    from maest.evaluate.experiments import compare_experiment
    from maest.model import parse_tokens

    run_keywords = run.keywords(ctx, "probe_workers")
    with _one_line_errors():
        rows = compare_experiment(
            models=models, output_dir=output_dir, protocol=protocol, blocks=blocks,
            tokens=parse_tokens(tokens) if tokens else None, device=device, batch_size=batch_size,
            **probe.experiment_keywords(data), **run_keywords,
        )
    typer.echo((output_dir / "compare.md").read_text())
    typer.echo(f"{len(rows)} models; wrote {output_dir / 'compare.png'}, {output_dir / 'compare.csv'}")
