"""Training data: `maest discogs-labels`, `maest prepare` (the mel store) and `maest demo-data` (maest.data)."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated, Optional

import typer

from maest.cli.options import DecodeWorkersOpt, OldDecodeWorkersOpt, ProgressOpt, fail, renamed_workers


def discogs_labels_command(
    out_dir: Annotated[Path, typer.Argument(
        help="Directory for train.tsv, validation.tsv, test.tsv, labels.json, summary.json.")],
    mapping: Annotated[Optional[Path], typer.Option(
        "--mapping", help="CSV/TSV of 'track path, Discogs release id[, duration seconds]' (optional header).")] = None,
    releases: Annotated[Optional[Path], typer.Option(
        "--releases", help="Discogs releases dump (releases.xml.gz), streamed.")] = None,
    masters: Annotated[Optional[Path], typer.Option(
        "--masters", help="Discogs masters dump (masters.xml.gz): releases naming an unknown master become their own group.")] = None,
    tags: Annotated[Optional[Path], typer.Option(
        "--tags", help="Instead of Discogs: your own 'path<TAB>tag1,tag2[<TAB>artist]' file.")] = None,
    top_n: Annotated[int, typer.Option(
        "--top-n", help="Keep the N most frequent labels over the pool of tracks (paper: 400).")] = 400,
    max_styles: Annotated[int, typer.Option(
        "--max-styles", help="Drop masters (or tagged tracks) with more labels than this; 0: no limit.")] = 5,
    min_duration: Annotated[float, typer.Option(
        "--min-duration", help="Keep only tracks longer than this many seconds (when the mapping has durations; paper: 20).")] = 20.0,
    validation: Annotated[float, typer.Option(
        "--validation", help="Validation size: a fraction of the tracks if < 1, else a track count (paper: 40000).")] = 0.1,
    test: Annotated[float, typer.Option(
        "--test", help="Test size: a fraction of the tracks if < 1, else a track count (paper: 40000).")] = 0.1,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the artist-disjoint split.")] = 0,
    progress: ProgressOpt = True,
) -> None:
    """Build Discogs style ground truth (master-level labels, artist-disjoint splits) from the XML dumps."""
    import json

    from maest.data import discogs, groundtruth

    if tags is None and (mapping is None or releases is None):
        fail("give --mapping and --releases (Discogs dumps), or --tags (your own labels)")
    if tags is not None and (mapping is not None or releases is not None):
        fail("--tags replaces --mapping/--releases: give one or the other")
    problems = discogs.Problems()
    try:
        if tags is not None:
            tracks = groundtruth.read_tag_file(tags)
        else:
            tracks = discogs.discogs_tracks(mapping, releases, masters, min_duration, problems, progress)
        summary = discogs.build_groundtruth(out_dir, tracks, top_n, max_styles, validation, test, seed, problems)
    except (OSError, ValueError) as error:  # DiscogsError, GroundTruthError and bad sizes are ValueErrors
        fail(str(error))
    typer.echo(json.dumps(summary, indent=2, ensure_ascii=False))
    typer.echo(f"wrote {out_dir}/{{train,validation,test}}.tsv, labels.json, summary.json")


def prepare_command(
    ctx: typer.Context,
    store_dir: Annotated[Path, typer.Argument(help="Mel store directory (created, or resumed if it exists).")],
    lists: Annotated[list[Path], typer.Option(
        "--list", help="Track list: a split file from discogs-labels or one path per line (first tab column). Repeatable.")],
    audio_root: Annotated[Optional[Path], typer.Option(
        "--audio-root", help="Directory the listed paths are relative to (default: as written).")] = None,
    crop: Annotated[str, typer.Option(
        "--crop", help="'center30': keep the central 30 s (as the paper's Discogs data); "
                       "'full': whole track, at most the central 300 s.")] = "center30",
    decode_workers: DecodeWorkersOpt = 4,
    workers: OldDecodeWorkersOpt = None,
    shard_size_mb: Annotated[float, typer.Option(
        "--shard-size-mb", help="Shard size; a killed run redoes at most one shard.")] = 512.0,
    stats_split: Annotated[Optional[Path], typer.Option(
        "--stats-split", help="Split whose tracks give the mean/std saved in store.json (default: the --list named "
                              "train.tsv, if any; else all stored tracks).")] = None,
    retry_failed: Annotated[bool, typer.Option(
        "--retry-failed", help="Try files that failed in an earlier run again (e.g. after fixing them).")] = False,
    progress: ProgressOpt = True,
) -> None:
    """Decode audio to raw log-mel float16 shards for training; resumable, bad files go to failures.tsv."""
    from maest.data import groundtruth, store

    decode_workers = renamed_workers(ctx, workers, decode_workers, "decode_workers")
    try:
        paths = [p for path in lists for p in groundtruth.read_paths(path)]
        report = store.build_store(paths, store_dir, audio_root, crop, decode_workers, shard_size_mb, progress,
                                   retry_failed)
        typer.echo(
            f"added {report.added} tracks ({report.audio_seconds / 3600:.2f} h of audio), skipped {report.skipped} "
            f"already stored, {report.failed} failed, {report.shards_written} shards in {report.elapsed_seconds:.1f} s"
        )
        for key, reason in list(report.failures.items())[:10]:
            typer.echo(f"  failed: {key}: {reason}", err=True)
        if report.failed:
            typer.echo(f"all failures: {store_dir / 'failures.tsv'}", err=True)
        if stats_split is None:
            stats_split = next((p for p in lists if p.name == "train.tsv"), None)
        mels = store.MelStore(store_dir)
        if stats_split is not None:
            keys = [k for k in groundtruth.read_paths(stats_split) if k in mels]
        else:
            keys = list(mels.keys)
        if keys:
            stats = store.compute_stats(mels, keys, save=True, progress=progress)
            typer.echo(f"mel mean {stats['mean']:.6f}, std {stats['std']:.6f} over {stats['tracks']} tracks "
                       f"({'from ' + str(stats_split) if stats_split else 'all stored tracks'}): saved in store.json")
        else:
            typer.echo(f"no stored track of {stats_split} to compute the mel mean/std from: store.json has none", err=True)
    except (OSError, ValueError, store.StoreError) as error:
        fail(str(error))


def demo_data_command(
    out_dir: Annotated[Path, typer.Argument(
        help="Folder for the dataset (audio/, train/validation/test.tsv, labels.json, store/).")],
    tracks: Annotated[int, typer.Option("--tracks", help="Number of synthetic tracks.")] = 240,
    seconds: Annotated[float, typer.Option("--seconds", help="Length of each track.")] = 6.0,
    classes: Annotated[int, typer.Option("--classes", help="Number of labels (tones), 2 to 12.")] = 6,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the audio and the split.")] = 0,
    progress: ProgressOpt = True,
) -> None:
    """Write a small synthetic dataset with learnable labels, ready for `maest train --config tiny`."""
    from maest.train.demo import DemoDataError, make_demo_data

    try:
        make_demo_data(out_dir, tracks, seconds, classes, seed=seed, progress=progress)
    except (DemoDataError, OSError) as error:
        fail(str(error))
    # an absolute data.root and a shipped config name: the printed command works from any folder
    typer.echo(f"wrote a {tracks}-track synthetic dataset to {out_dir}; train on it with "
               f"maest train --config tiny --set data.root={shlex.quote(str(out_dir.resolve()))}")
