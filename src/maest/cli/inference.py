"""`maest embed` and `maest tag`: embeddings and tags of whole tracks (maest.extraction, maest.inference)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from maest.cli.options import (
    DEFAULT_MODEL,
    BatchSizeOpt,
    BlocksOpt,
    CropOpt,
    DecodeWorkersOpt,
    DeviceOpt,
    ExtensionsOpt,
    ModelOpt,
    OldDecodeWorkersOpt,
    OverlapOpt,
    PatchoutFreqOpt,
    PatchoutTimeOpt,
    TokensOpt,
    fail,
    renamed_workers,
    split_list,
)

PathsArg = Annotated[list[Path], typer.Argument(help="Audio files and/or folders (searched recursively).")]


def embed_command(
    ctx: typer.Context,
    paths: PathsArg,
    output: Annotated[Path, typer.Option("-o", "--output", help="Output folder; a rerun into it skips finished tracks.")],
    model: ModelOpt = DEFAULT_MODEL,
    blocks: BlocksOpt = 7,
    tokens: TokensOpt = "cls,dist,avg",
    patchout_time: PatchoutTimeOpt = 1,
    patchout_freq: PatchoutFreqOpt = "",
    overlap: OverlapOpt = 0.5,
    crop: CropOpt = None,
    per_segment: Annotated[bool, typer.Option(
        "--per-segment", help="Save one embedding per segment (npy: (segments, dim); npz/parquet add them beside the mean).")] = False,
    output_format: Annotated[str, typer.Option(
        "--format", help="npy: one file per track mirroring the input tree; npz: + segment start times; parquet: one table.")] = "npy",
    extensions: ExtensionsOpt = None,
    batch_size: BatchSizeOpt = 8,
    device: DeviceOpt = None,
    decode_workers: DecodeWorkersOpt = 2,
    workers: OldDecodeWorkersOpt = None,
    shard: Annotated[Optional[str], typer.Option(
        "--shard", help="I/N: take every N-th file starting at the I-th (0-based), for N processes or GPUs sharing OUTPUT.")] = None,
    progress: Annotated[bool, typer.Option(
        "--progress/--no-progress", help="Show a progress bar (files, hours of audio, audio s/s).")] = True,
) -> None:
    """Embed every audio file into OUTPUT: resumable, bad files listed in OUTPUT/failures.tsv."""
    from maest.extraction import ExtractError, extract
    from maest.model import parse_tokens

    decode_workers = renamed_workers(ctx, workers, decode_workers, "decode_workers")
    shard_pair = None
    if shard is not None:
        try:
            index, count = (int(part) for part in shard.split("/"))
            shard_pair = (index, count)
        except ValueError:
            fail(f"--shard must look like 0/4, got {shard!r}")
    try:
        summary = extract(
            paths, output, model, blocks=blocks, tokens=list(parse_tokens(tokens)), patchout_time=patchout_time,
            patchout_freq=split_list(patchout_freq, int), overlap=overlap, crop=crop, per_segment=per_segment,
            output_format=output_format, extensions=split_list(extensions) if extensions else None,
            batch_size=batch_size, device=device, workers=decode_workers, shard=shard_pair, progress=progress,
        )
    except (OSError, ValueError, ExtractError) as error:  # CheckpointError is a RuntimeError: caught below
        fail(str(error))
    except RuntimeError as error:
        fail(f"{type(error).__name__}: {error}")
    for path, reason in summary.failures[:10]:
        typer.echo(f"  failed: {path}: {reason}", err=True)
    if summary.failures:
        name = f"failures.shard-{shard_pair[0]}-of-{shard_pair[1]}.tsv" if shard_pair else "failures.tsv"
        typer.echo(f"all failures: {output / name}", err=True)
    typer.echo(summary.line())
    if summary.succeeded == 0 and summary.skipped == 0:
        fail("no track was embedded")


def tag_command(
    ctx: typer.Context,
    paths: PathsArg,
    model: ModelOpt = DEFAULT_MODEL,
    top_k: Annotated[int, typer.Option("--top-k", min=1, help="Labels to show per track, most probable first.")] = 5,
    output_format: Annotated[str, typer.Option(
        "--format", help="table (readable), json (one object per track) or tsv (path, label, probability).")] = "table",
    overlap: OverlapOpt = 0.5,
    crop: CropOpt = None,
    extensions: ExtensionsOpt = None,
    batch_size: BatchSizeOpt = 8,
    device: DeviceOpt = None,
    decode_workers: DecodeWorkersOpt = 0,
    workers: OldDecodeWorkersOpt = None,
) -> None:
    """Print the most probable Discogs styles (or the checkpoint's labels) of each track."""
    import json

    from maest.extraction import tag_files
    from maest.inference import load_model, top_labels

    decode_workers = renamed_workers(ctx, workers, decode_workers, "decode_workers")
    if output_format not in ("table", "json", "tsv"):
        fail(f"--format must be table, json or tsv, got {output_format!r}")
    try:
        pipeline = load_model(model, device, batch_size)
        results = tag_files(paths, pipeline, overlap=overlap, crop=crop,
                            extensions=split_list(extensions) if extensions else None,
                            batch_size=batch_size, workers=decode_workers)
        succeeded = failed = 0
        for path, probabilities, reason in results:
            if reason is not None:
                failed += 1
                typer.echo(f"failed: {path}: {reason}", err=True)
                continue
            succeeded += 1
            top = top_labels(probabilities, pipeline.labels, top_k)
            if output_format == "json":
                typer.echo(json.dumps({"path": path, "tags": [{"label": l, "probability": round(p, 6)} for l, p in top]},
                                      ensure_ascii=False))
            elif output_format == "tsv":
                for label, probability in top:
                    typer.echo(f"{path}\t{label}\t{probability:.6f}")
            else:
                typer.echo(path)
                for label, probability in top:
                    typer.echo(f"  {probability:6.3f}  {label}")
    except (OSError, ValueError, RuntimeError) as error:
        fail(f"{type(error).__name__}: {error}")
    if succeeded == 0:
        fail(f"no track was tagged ({failed} failed)")
