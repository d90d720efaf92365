"""`maest embed` and `maest tag`: embeddings and tags of whole tracks (maest.extraction, maest.inference)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from maest.cli.options import (
    DEFAULT_MODEL,
    BatchSizeOpt,
    BlocksOpt,
    ConcurrencyOpt,
    CropOpt,
    DecodeWorkersOpt,
    DeviceOpt,
    EngineOpt,
    ExtensionsOpt,
    ModelOpt,
    OldDecodeWorkersOpt,
    OverlapOpt,
    PatchoutFreqOpt,
    PatchoutTimeOpt,
    PrecisionOpt,
    RayAddressOpt,
    ResamplerOpt,
    SegmentsOpt,
    TokensOpt,
    fail,
    renamed_workers,
    require,
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
    segments: SegmentsOpt = "maest",
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
    precision: PrecisionOpt = None,
    engine: EngineOpt = "local",
    ray_address: RayAddressOpt = None,
    concurrency: ConcurrencyOpt = 1,
    resampler: ResamplerOpt = None,
) -> None:
    """Embed every audio file into OUTPUT: resumable, bad files listed in OUTPUT/failures.tsv."""
    from maest.extraction import ExtractError, extract
    from maest.model import parse_tokens

    if engine not in ("local", "ray"):
        fail(f"--engine must be local or ray, got {engine!r}")
    if engine == "local" and (ray_address is not None or concurrency != 1):
        fail("--ray-address and --concurrency apply to --engine ray only")

    decode_workers = renamed_workers(ctx, workers, decode_workers, "decode_workers")
    shard_pair = None
    if shard is not None:
        try:
            index, count = (int(part) for part in shard.split("/"))
            shard_pair = (index, count)
        except ValueError:
            fail(f"--shard must look like 0/4, got {shard!r}")
    common = dict(
        blocks=blocks, tokens=list(parse_tokens(tokens)), patchout_time=patchout_time,
        patchout_freq=split_list(patchout_freq, int), overlap=overlap, crop=crop, segments=segments,
        per_segment=per_segment, output_format=output_format, extensions=split_list(extensions) if extensions else None,
        batch_size=batch_size, device=device, shard=shard_pair, progress=progress, precision=precision,
        resampler=resampler,
    )
    try:
        if engine == "ray":
            from maest.distributed import extract_ray

            summary = extract_ray(paths, output, model, address=ray_address, concurrency=concurrency, **common)
        else:
            summary = extract(paths, output, model, workers=decode_workers, **common)
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
    model: Annotated[Optional[str], typer.Option(
        "--model", "-m", help=f"Registry name, Hugging Face id or local checkpoint path (default: {DEFAULT_MODEL}, "
                              "or with --head the model the head was fitted on).")] = None,
    top_k: Annotated[int, typer.Option("--top-k", min=1, help="Labels to show per track, most probable first.")] = 5,
    output_format: Annotated[str, typer.Option(
        "--format", help="table (readable), json (one object per track) or tsv (path, label, probability[, on]).")] = "table",
    head: Annotated[Optional[Path], typer.Option(
        "--head", help="An own-label head (maest head fit): its labels, with on/off by its thresholds, instead of "
                       "the model's.")] = None,
    plot: Annotated[Optional[Path], typer.Option(
        "--plot", help="Also write OUT/<name>.png per track: a timeline of the top labels over the segments and "
                       "the track-level bars (top 10, or --top-k if larger).")] = None,
    overlap: OverlapOpt = 0.5,
    crop: CropOpt = None,
    segments: SegmentsOpt = "maest",
    extensions: ExtensionsOpt = None,
    batch_size: BatchSizeOpt = 8,
    device: DeviceOpt = None,
    decode_workers: DecodeWorkersOpt = 0,
    workers: OldDecodeWorkersOpt = None,
    precision: PrecisionOpt = None,
    resampler: ResamplerOpt = None,
) -> None:
    """Print the most probable Discogs styles (or the checkpoint's, or a head's labels) of each track."""
    from maest.extraction import run_files
    from maest.inference import load_model, top_labels

    decode_workers = renamed_workers(ctx, workers, decode_workers, "decode_workers")
    if output_format not in ("table", "json", "tsv"):
        fail(f"--format must be table, json or tsv, got {output_format!r}")
    if plot is not None:
        require("eval", "matplotlib")
    try:
        fitted = None
        if head is not None:
            from maest.heads import load_head, model_for_head
            from maest.heads.spec import run_spec
            from maest.heads.tag import check_head_options, head_tags

            check_head_options(overlap, crop, segments)
            fitted = load_head(head)
            pipeline = model_for_head(fitted, model, device, batch_size, precision)
            mode, options = "embed", run_spec(fitted.spec, resampler)
        else:
            pipeline = load_model(model or DEFAULT_MODEL, device, batch_size, precision)
            mode, options = "tag", pipeline.spec(blocks=None, overlap=overlap, crop=crop, segments=segments,
                                                 resampler=resampler)
        results = run_files(paths, pipeline, mode, options, split_list(extensions) if extensions else None,
                            batch_size, workers=decode_workers)
        plots_written: set[Path] = set()
        succeeded = failed = 0
        for path, result, reason in results:
            if reason is not None:
                failed += 1
                typer.echo(f"failed: {path}: {reason}", err=True)
                continue
            succeeded += 1
            if fitted is not None:  # the head reads the track's mean embedding (as it was fitted)
                per_segment = fitted.predict(result.outputs)
                top = head_tags(fitted, result.track)[:top_k]
            else:
                per_segment = result.outputs
                top = [(label, p, None) for label, p in top_labels(result.track, pipeline.labels, top_k)]
            _print_tags(path, top, output_format)
            if plot is not None:
                _plot(pipeline, path, per_segment, result, max(top_k, 10), fitted, plot, plots_written)
    except (OSError, ValueError, RuntimeError) as error:
        fail(f"{type(error).__name__}: {error}")
    if plot is not None and plots_written:
        typer.echo(f"wrote {len(plots_written)} plots to {plot}", err=True)
    if succeeded == 0:
        fail(f"no track was tagged ({failed} failed)")


def _print_tags(path: str, top: list, output_format: str) -> None:
    """One track's tags; ``on`` is None without a head."""
    import json

    if output_format == "json":
        tags = [{"label": label, "probability": round(p, 6), **({} if on is None else {"on": on})}
                for label, p, on in top]
        # allow_nan=False: the output stays valid JSON (NaN results are failures, see run_files)
        typer.echo(json.dumps({"path": path, "tags": tags}, ensure_ascii=False, allow_nan=False))
    elif output_format == "tsv":
        for label, p, on in top:
            typer.echo(f"{path}\t{label}\t{p:.6f}" + ("" if on is None else f"\t{'on' if on else 'off'}"))
    else:
        typer.echo(path)
        for label, p, on in top:
            typer.echo(f"  {p:6.3f}  {label}" + ("" if on is None else ("  (on)" if on else "")))


def _plot(pipeline, path: str, per_segment, result, top_k: int, head, out_dir: Path, written: set[Path]) -> None:
    """``out_dir/<name>.png`` (``<name>-2.png``... when two tracks share a name) from outputs already computed."""
    from maest import plots

    stem, target, n = Path(path).stem, out_dir / f"{Path(path).stem}.png", 1
    while target in written:
        n += 1
        target = out_dir / f"{stem}-{n}.png"
    figure = plots.track_timeline(pipeline, Path(path).name, per_segment, result.start_seconds, result.duration,
                                  top_k, head)
    written.add(plots.save_figure(figure, target))
