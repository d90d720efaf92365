"""`maest embed` and `maest tag`: embeddings and tags of whole tracks (maest.extraction, maest.inference)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from maest.cli.options import (
    DEFAULT_MODEL,
    BatchSizeOpt,
    CropOpt,
    DecodeWorkersOpt,
    DeviceOpt,
    EmbedBlocksOpt,
    ExtensionsOpt,
    ModelOpt,
    OldDecodeWorkersOpt,
    OverlapOpt,
    PatchoutFreqOpt,
    PatchoutTimeOpt,
    PrecisionOpt,
    ResamplerOpt,
    SegmentsOpt,
    TokensOpt,
    fail,
    renamed_workers,
    require,
    split_list,
)
from maest.cli.groups import EngineOptions, expand_groups
from maest.cli.write_tags import (DryRunOpt, FailuresOpt, GenreFieldOpt, KeepMtimeOpt, LayoutOpt, ProgressFlagOpt,
                                  ReplaceOpt, StyleFieldOpt, ThresholdOpt, WriteRequest, WriteTagsOpt,
                                  write_tags_command)

PathsArg = Annotated[list[Path], typer.Argument(help="Audio files and/or folders (searched recursively).")]


@expand_groups
def embed_command(
    ctx: typer.Context,
    paths: PathsArg,
    output: Annotated[Path, typer.Option("-o", "--output", help="Output folder; a rerun into it skips finished tracks.")],
    model: ModelOpt = DEFAULT_MODEL,
    blocks: EmbedBlocksOpt = "auto",
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
    compute: EngineOptions = EngineOptions(),
    resampler: ResamplerOpt = None,
) -> None:
    """Embed every audio file into OUTPUT: resumable, bad files listed in OUTPUT/failures.tsv."""
    from maest.extraction import ExtractError, extract
    from maest.model import parse_tokens

    decode_workers = renamed_workers(ctx, workers, decode_workers, "decode_workers")
    runner = compute.build(ctx, decode_workers)
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
        with runner:
            summary = extract(paths, output, model, engine=runner, **common)
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


@expand_groups
def tag_command(
    ctx: typer.Context,
    paths: PathsArg,
    model: Annotated[Optional[str], typer.Option(
        "--model", "-m", help=f"Registry name, Hugging Face id or local checkpoint path (default: {DEFAULT_MODEL}, "
                              "or with --head the model the head was fitted on).")] = None,
    top_k: Annotated[int, typer.Option("--top-k", min=1, help="Labels to show per track, most probable first.")] = 5,
    output_format: Annotated[str, typer.Option(
        "--format", help="table (readable), json (JSON Lines: one JSON object per line, one line per track) or tsv "
                        "(path, label, probability[, on]; tab, newline and backslash in paths escaped as \\t \\n \\\\).")] = "table",
    head: Annotated[Optional[Path], typer.Option(
        "--head", help="An own-label head (maest head fit): its labels, with on/off by its thresholds, instead of "
                       "the model's.")] = None,
    plot: Annotated[Optional[Path], typer.Option(
        "--plot", help="Also write OUT/<name>.png per track: a timeline of the top labels over the segments and "
                       "the track-level bars (top 10, or --top-k if larger). A name taken by another track's plot, "
                       "or too long, gets a hash of the track's path: OUT/<name>-<hash>.png.")] = None,
    plot_scale: Annotated[str, typer.Option(
        "--plot-scale", help="fixed: colours and bars span probability 0..1, so plots compare; auto: each plot "
                             "spans its own maximum (faint tags readable).")] = "fixed",
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
    compute: EngineOptions = EngineOptions(),
    write_tags: WriteTagsOpt = False,
    threshold: ThresholdOpt = 0.1,
    layout: LayoutOpt = "split",
    genre_field: GenreFieldOpt = "GENRE",
    style_field: StyleFieldOpt = "STYLE",
    replace: ReplaceOpt = False,
    dry_run: DryRunOpt = False,
    keep_mtime: KeepMtimeOpt = False,
    failures: FailuresOpt = Path("failures.tsv"),
    progress: ProgressFlagOpt = True,
) -> None:
    """Print the most probable Discogs styles (or the checkpoint's, or a head's labels) of each track;
    with --write-tags, write them into the files' own tags instead."""
    from maest.extraction import run_files
    from maest.extraction.engines import load_pipeline
    from maest.extraction.run import precision_phrase
    from maest.inference import top_labels

    decode_workers = renamed_workers(ctx, workers, decode_workers, "decode_workers")
    if write_tags:
        if plot is not None or output_format != "table":
            fail("--plot and --format do not apply with --write-tags")
        if compute.engine != "local":
            fail("--write-tags runs on the local engine only (files are written where they lie); "
                 "leave out --engine")
        request = WriteRequest(threshold, layout, genre_field, style_field, replace, dry_run, keep_mtime, failures,
                               progress)
        return write_tags_command(paths, model, head, top_k, request, overlap=overlap, crop=crop, segments=segments,
                                  extensions=extensions, batch_size=batch_size, device=device,
                                  decode_workers=decode_workers, precision=precision, resampler=resampler)
    runner = compute.build(ctx, decode_workers)
    if output_format not in ("table", "json", "tsv"):
        fail(f"--format must be table, json or tsv, got {output_format!r}")
    if plot_scale not in ("fixed", "auto"):
        fail(f"--plot-scale must be fixed or auto, got {plot_scale!r}")
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
            pipeline = model_for_head(fitted, model, *_placed(runner, device, precision, batch_size))
            mode, options = "embed", run_spec(fitted.spec, resampler)
        else:
            pipeline = load_pipeline(runner, model or DEFAULT_MODEL, device, batch_size, precision)
            mode, options = "tag", pipeline.spec(blocks=None, overlap=overlap, crop=crop, segments=segments,
                                                 resampler=resampler)
        results = run_files(paths, pipeline, mode, options, split_list(extensions) if extensions else None,
                            batch_size, engine=runner)
        plots_written: set[Path] = set()
        plot_failures = 0
        succeeded = failed = 0
        for path, result, reason in results:
            if reason is not None:
                failed += 1
                typer.echo(f"failed: {path}: {reason}", err=True)
                continue
            succeeded += 1
            on = None
            if fitted is not None:  # the head reads the track's mean embedding (as it was fitted)
                per_segment = fitted.predict(result.outputs)
                tags = head_tags(fitted, result.track)
                top, on = tags[:top_k], {label for label, _, decided in tags if decided}
            else:
                per_segment = result.outputs
                top = [(label, p, None) for label, p in top_labels(result.track, pipeline.labels, top_k)]
            _print_tags(path, top, output_format)
            if plot is not None:
                try:
                    _plot(pipeline, path, per_segment, result, max(top_k, 10), fitted, plot, plots_written,
                          plot_scale, on)
                except (OSError, ValueError) as error:  # one plot that cannot be written costs that plot only
                    plot_failures += 1
                    typer.echo(f"plot failed: {path}: {type(error).__name__}: {error}", err=True)
    except (OSError, ValueError, RuntimeError) as error:
        fail(f"{type(error).__name__}: {error}")
    finally:
        runner.close()  # a cluster the engine started stops with the command
    if plot is not None and (plots_written or plot_failures):
        count = len(plots_written)
        typer.echo(f"wrote {count} plot{'' if count == 1 else 's'} to {plot}"
                   + (f"; {plot_failures} failed (see 'plot failed' above)" if plot_failures else ""), err=True)
    if succeeded == 0:
        fail(f"no track was tagged ({failed} failed)")
    typer.echo(f"{succeeded} tagged, {failed} failed; {precision_phrase(pipeline)}", err=True)


def _placed(runner, device: str | None, precision: str | None, batch_size: int) -> tuple:
    """``(device, batch_size, precision)`` of the driver's pipeline on ``runner`` (Ray: the CPU)."""
    device, precision = runner.placement(device, precision)
    return device, batch_size, precision


def _print_tags(path: str, top: list, output_format: str) -> None:
    """One track's tags; ``on`` is None without a head."""
    import json

    if output_format == "json":
        tags = [{"label": label, "probability": round(p, 6), **({} if on is None else {"on": on})}
                for label, p, on in top]
        # allow_nan=False: the output stays valid JSON (NaN results are failures, see run_files)
        typer.echo(json.dumps({"path": path, "tags": tags}, ensure_ascii=False, allow_nan=False))
    elif output_format == "tsv":
        from maest.cli.tsv import tsv_field

        for label, p, on in top:  # tab/newline in a path or label are escaped (\\t, \\n): one row per tag
            typer.echo(f"{tsv_field(path)}\t{tsv_field(label)}\t{p:.6f}" + ("" if on is None else f"\t{'on' if on else 'off'}"))
    else:
        typer.echo(path)
        for label, p, on in top:
            typer.echo(f"  {p:6.3f}  {label}" + ("" if on is None else ("  (on)" if on else "")))


def _plot(pipeline, path: str, per_segment, result, top_k: int, head, out_dir: Path, written: set[Path],
          scale: str, on) -> None:
    """A track's plot from outputs already computed, named by :func:`maest.plot_files.plot_path`
    (``<name>.png``, or ``<name>-<hash>.png`` when another track has that name), titled with its path."""
    from maest import plots
    from maest.plot_files import display_name, plot_path, track_source

    target = plot_path(out_dir, path, written)
    figure = plots.track_timeline(pipeline, display_name(path), per_segment, result.start_seconds, result.duration,
                                  top_k, head, scale, on)
    written.add(plots.save_figure(figure, target, track_source(path)))
