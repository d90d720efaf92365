"""`maest tag --write-tags` (chosen labels into the files' own tags) and `maest untag` (undo): maest.library."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Optional

import typer

from maest.cli.options import DEFAULT_MODEL, ExtensionsOpt, fail, split_list

WriteTagsOpt = Annotated[bool, typer.Option(
    "--write-tags", help="Write the chosen labels into each file's tags (MP3/WAV/AIFF: ID3v2.4 TCON + TXXX:STYLE; "
                         "FLAC/Ogg/Opus: GENRE + STYLE; M4A: ©gen + iTunes STYLE atom), keeping the audio and the "
                         "user's own values; see README 'Your music library'.")]
ThresholdOpt = Annotated[float, typer.Option(
    "--threshold", min=0.0, max=1.0, help="With --write-tags: labels at or above this probability (at most --top-k; "
                                          "the top one always), or a head's own on/off.")]
LayoutOpt = Annotated[str, typer.Option(
    "--layout", help="With --write-tags: split (Electronic---Techno -> GENRE=Electronic, STYLE=Techno) or joined "
                     "(STYLE=Electronic---Techno).")]
GenreFieldOpt = Annotated[str, typer.Option("--genre-field", help="With --write-tags: the genre field's name.")]
StyleFieldOpt = Annotated[str, typer.Option(
    "--style-field", help="With --write-tags: the style field's name (a head's labels go here too).")]
ReplaceOpt = Annotated[bool, typer.Option(
    "--replace", help="With --write-tags: the genre/style fields hold maest's labels only (default: the values "
                      "already there are kept, maest's are added after them).")]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="With --write-tags: print what would change, write nothing.")]
KeepMtimeOpt = Annotated[bool, typer.Option(
    "--keep-mtime", help="With --write-tags: keep each file's modification time.")]
FailuresOpt = Annotated[Path, typer.Option(
    "--failures", help="With --write-tags: the TSV that lists files not tagged and why (merged across runs).")]
ProgressFlagOpt = Annotated[bool, typer.Option("--progress/--no-progress", help="With --write-tags: a progress bar.")]


@dataclass(frozen=True)
class WriteRequest:
    """The tag command's --write-tags flags, handed over whole."""

    threshold: float = 0.1
    layout: str = "split"
    genre_field: str = "GENRE"
    style_field: str = "STYLE"
    replace: bool = False
    dry_run: bool = False
    keep_mtime: bool = False
    failures: Path = Path("failures.tsv")
    progress: bool = True


def write_tags_command(paths: list[Path], model: Optional[str], head: Optional[Path], top_k: int, request: WriteRequest,
                       *, overlap: float, crop: Optional[str], segments: str, extensions: Optional[str],
                       batch_size: int, device: Optional[str], decode_workers: int, precision: Optional[str],
                       resampler: Optional[str] = None) -> None:
    """Run ``maest tag --write-tags``: load the model (or the head's), tag the collection, print the changes."""
    from maest.library import TagChoice, write_collection_tags

    try:
        choice = TagChoice(threshold=request.threshold, top_k=top_k, layout=request.layout,
                           genre_field=request.genre_field, style_field=request.style_field)
    except ValueError as error:
        fail(str(error))
    try:
        fitted = None
        if head is not None:
            from maest.heads import load_head, model_for_head

            fitted = load_head(head)
            pipeline = model_for_head(fitted, model, device, batch_size, precision)
        else:
            from maest.inference import load_model

            pipeline = load_model(model or DEFAULT_MODEL, device, batch_size, precision)
        summary = write_collection_tags(
            paths, pipeline, choice, head=fitted, overlap=overlap, crop=crop, segments=segments,
            replace=request.replace, dry_run=request.dry_run, keep_mtime=request.keep_mtime,
            extensions=split_list(extensions) if extensions else None, batch_size=batch_size, workers=decode_workers,
            failures_file=request.failures, progress=request.progress, report=_print_change,
            resampler=resampler)
    except (OSError, ValueError, RuntimeError) as error:
        fail(f"{type(error).__name__}: {error}")
    for path, reason in summary.failures[:10]:
        typer.echo(f"  failed: {path}: {reason}", err=True)
    if summary.failures:
        typer.echo(f"all failures: {request.failures}", err=True)
    typer.echo(summary.line(request.dry_run))
    if summary.written + summary.unchanged + summary.skipped == 0:
        fail("no file was tagged")


def _print_change(change) -> None:
    lines = change.lines()
    if lines:
        typer.echo(change.path)
        for line in lines:
            typer.echo(line)


def untag_command(
    paths: Annotated[list[Path], typer.Argument(help="Audio files and/or folders (searched recursively).")],
    dry_run: DryRunOpt = False,
    keep_mtime: KeepMtimeOpt = False,
    extensions: ExtensionsOpt = None,
) -> None:
    """Undo `maest tag --write-tags`: remove the values maest added (listed in MAEST_ADDED); yours stay."""
    from maest.extraction import find_audio
    from maest.library import TagWriteError, remove_maest_tags

    items, missing = find_audio(paths, split_list(extensions) if extensions else None)
    changed = untouched = 0
    failed = len(missing)
    for path, reason in missing:
        typer.echo(f"failed: {path}: {reason}", err=True)
    for item in items:
        try:
            change = remove_maest_tags(item.path, dry_run=dry_run, keep_mtime=keep_mtime)
        except TagWriteError as error:
            failed += 1
            typer.echo(f"failed: {item.path}: {error}", err=True)
            continue
        if change.changes:
            changed += 1
            _print_change(change)
        else:
            untouched += 1
    typer.echo(f"{'would change' if dry_run else 'untagged'} {changed} files, {untouched} without maest tags, "
               f"{failed} failed")
    if failed:
        raise typer.Exit(1)
