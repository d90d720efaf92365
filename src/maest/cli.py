"""Command line: thin wrappers that map flags onto library calls and show progress."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

app = typer.Typer(
    name="maest",
    help="MAEST music audio embeddings and Discogs style tags: extract, tag, train and evaluate.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


@app.callback()
def _root() -> None:
    """MAEST music audio embeddings and Discogs style tags: extract, tag, train and evaluate."""


# Commands are grouped by concern below; each calls one library function.

_EVAL_DATASETS = "mtg-jamendo-genre, mtg-jamendo-instrument, mtg-jamendo-moodtheme, mtg-jamendo-top50tags, mtt, msd, msd-cals"
_EVAL_METADATA = ("Split files: MTG-Jamendo's data/splits (or split-0/) folder; MTT folder of train/validation/test.tsv + tags.txt, "
                  "annotations_final.csv, or folder with binary.npy + tags.npy + split arrays; MSD folder of *.cP pickles + "
                  "50tagList.txt + 7digital maps; MSD-CALS folder of {train,valid,test}_ids.npy + _binaries.npy.")


# Options shared by several commands (eval, the experiments, prepare, demo-data).
DatasetArg = Annotated[str, typer.Argument(help=f"Dataset: {_EVAL_DATASETS}.")]
MetadataOpt = Annotated[Path, typer.Option("--metadata", help=_EVAL_METADATA)]
AudioRootOpt = Annotated[Path, typer.Option("--audio-root", help="Folder the split files' audio paths are relative to.")]
EpochsOpt = Annotated[Optional[int], typer.Option("--epochs", help="Override the protocol's probe epochs.")]
MaxLrOpt = Annotated[Optional[float], typer.Option("--max-lr", help="Override the protocol's maximum learning rate.")]
ProbeBatchOpt = Annotated[Optional[int], typer.Option("--probe-batch", help="Override the protocol's probe batch size.")]
DropoutOpt = Annotated[Optional[float], typer.Option("--dropout", help="Override the protocol's probe dropout.")]
WarmupOpt = Annotated[Optional[int], typer.Option("--warmup-epochs", help="Override the probe's warm-up epochs (10; keep below --epochs).")]
LowQualityOpt = Annotated[bool, typer.Option("--low-quality", help="MTG-Jamendo: read the .low.mp3 audio release.")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed of probe initialisation, shuffling and dropout.")]
ProgressOpt = Annotated[bool, typer.Option("--progress/--no-progress", help="Show progress bars.")]


# --- training data: labels and the mel store (maest.data) ---
def _fail(message: str) -> None:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(1)


def _require(extra: str, *modules: str) -> None:
    """Fail with the install command when an optional dependency of a command is missing."""
    import importlib.util

    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        _fail(f"this command needs {', '.join(missing)}: pip install 'maest[{extra}]'")


@app.command("discogs-labels")
def discogs_labels_command(
    out_dir: Path = typer.Argument(..., help="Directory for train.tsv, validation.tsv, test.tsv, labels.json, summary.json."),
    mapping: Path | None = typer.Option(None, "--mapping", help="CSV/TSV of 'track path, Discogs release id[, duration seconds]' (optional header)."),
    releases: Path | None = typer.Option(None, "--releases", help="Discogs releases dump (releases.xml.gz), streamed."),
    masters: Path | None = typer.Option(None, "--masters", help="Discogs masters dump (masters.xml.gz): releases naming an unknown master become their own group."),
    tags: Path | None = typer.Option(None, "--tags", help="Instead of Discogs: your own 'path<TAB>tag1,tag2[<TAB>artist]' file."),
    top_n: int = typer.Option(400, "--top-n", help="Keep the N most frequent labels over the pool of tracks (paper: 400)."),
    max_styles: int = typer.Option(5, "--max-styles", help="Drop masters (or tagged tracks) with more labels than this; 0: no limit."),
    min_duration: float = typer.Option(20.0, "--min-duration", help="Keep only tracks longer than this many seconds (when the mapping has durations; paper: 20)."),
    validation: float = typer.Option(0.1, "--validation", help="Validation size: a fraction of the tracks if < 1, else a track count (paper: 40000)."),
    test: float = typer.Option(0.1, "--test", help="Test size: a fraction of the tracks if < 1, else a track count (paper: 40000)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the artist-disjoint split."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars while reading the dumps."),
) -> None:
    """Build Discogs style ground truth (master-level labels, artist-disjoint splits) from the XML dumps."""
    import json

    from maest.data import discogs, groundtruth

    if tags is None and (mapping is None or releases is None):
        _fail("give --mapping and --releases (Discogs dumps), or --tags (your own labels)")
    if tags is not None and (mapping is not None or releases is not None):
        _fail("--tags replaces --mapping/--releases: give one or the other")
    problems = discogs.Problems()
    try:
        if tags is not None:
            tracks = groundtruth.read_tag_file(tags)
        else:
            tracks = discogs.discogs_tracks(mapping, releases, masters, min_duration, problems, progress)
        summary = discogs.build_groundtruth(out_dir, tracks, top_n, max_styles, validation, test, seed, problems)
    except (OSError, ValueError) as error:  # DiscogsError, GroundTruthError and bad sizes are ValueErrors
        _fail(str(error))
    typer.echo(json.dumps(summary, indent=2, ensure_ascii=False))
    typer.echo(f"wrote {out_dir}/{{train,validation,test}}.tsv, labels.json, summary.json")


@app.command("prepare")
def prepare_command(
    store_dir: Path = typer.Argument(..., help="Mel store directory (created, or resumed if it exists)."),
    lists: list[Path] = typer.Option(..., "--list", help="Track list: a split file from discogs-labels or one path per line (first tab column). Repeatable."),
    audio_root: Path | None = typer.Option(None, "--audio-root", help="Directory the listed paths are relative to (default: as written)."),
    crop: str = typer.Option("center30", "--crop", help="'center30': keep the central 30 s (as the paper's Discogs data); 'full': whole track, at most the central 300 s."),
    workers: int = typer.Option(4, "--workers", help="Decoding processes (0: decode in this process)."),
    shard_size_mb: float = typer.Option(512.0, "--shard-size-mb", help="Shard size; a killed run redoes at most one shard."),
    stats_split: Path | None = typer.Option(None, "--stats-split", help="Split whose tracks give the mean/std saved in store.json (default: the --list named train.tsv, if any; else all stored tracks)."),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="Try files that failed in an earlier run again (e.g. after fixing them)."),
    progress: ProgressOpt = True,
) -> None:
    """Decode audio to raw log-mel float16 shards for training; resumable, bad files go to failures.tsv."""
    from maest.data import groundtruth, store

    try:
        paths = [p for path in lists for p in groundtruth.read_paths(path)]
        report = store.build_store(paths, store_dir, audio_root, crop, workers, shard_size_mb, progress, retry_failed)
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
        _fail(str(error))


# --- inference: embeddings and tags of whole tracks (maest.inference, maest.extraction) ---
def _split_list(text: str | None, convert=str) -> list:
    """'a,b, c' -> ['a', 'b', 'c'] (converted); '' or None -> []."""
    return [convert(part.strip()) for part in (text or "").split(",") if part.strip()]


@app.command("embed")
def embed_command(
    paths: list[Path] = typer.Argument(..., help="Audio files and/or folders (searched recursively)."),
    output: Path = typer.Option(..., "-o", "--output", help="Output folder; a rerun into it skips finished tracks."),
    model: str = typer.Option("discogs-maest-30s-pw-129e", "--model", "-m", help="Registry name, Hugging Face id or local checkpoint path."),
    blocks: int = typer.Option(7, "--blocks", help="Blocks to run, 1-based: 7 = the paper's 'block 7' (original transformer_block=6)."),
    tokens: str = typer.Option("cls,dist,avg", "--tokens", help="Tokens to stack, in order, from cls, dist, avg (768 dims each)."),
    patchout_time: int = typer.Option(1, "--patchout-time", help="Keep one time column of the patch grid out of every T (1: all; paper: 1, 2, 3, 5, 10)."),
    patchout_freq: str = typer.Option("", "--patchout-freq", help="Frequency rows of the patch grid to drop, e.g. 0,1,8 (rows 0..8)."),
    overlap: float = typer.Option(0.5, "--overlap", help="Overlap of consecutive segments, in [0, 1); the last segment always ends at the track's end."),
    crop: str | None = typer.Option(None, "--crop", help="'center': one segment from the centre of each track (the paper's training input) instead of all."),
    per_segment: bool = typer.Option(False, "--per-segment", help="Save one embedding per segment (npy: (segments, dim); npz/parquet add them beside the mean)."),
    output_format: str = typer.Option("npy", "--format", help="npy: one file per track mirroring the input tree; npz: + segment start times; parquet: one table."),
    extensions: str | None = typer.Option(None, "--ext", help="Extensions to take from folders, e.g. mp3,wav (default: every format maest decodes)."),
    batch_size: int = typer.Option(8, "--batch-size", help="Segments per model call, across files."),
    device: str | None = typer.Option(None, "--device", help="cpu, cuda, cuda:1 ... (default: cuda if available)."),
    workers: int = typer.Option(2, "--workers", help="Processes decoding audio and computing mels while the model runs (0: none)."),
    shard: str | None = typer.Option(None, "--shard", help="I/N: take every N-th file starting at the I-th (0-based), for N processes or GPUs sharing OUTPUT."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar (files, hours of audio, audio s/s)."),
) -> None:
    """Embed every audio file into OUTPUT: resumable, bad files listed in OUTPUT/failures.tsv."""
    from maest.extraction import ExtractError, extract

    shard_pair = None
    if shard is not None:
        try:
            index, count = (int(part) for part in shard.split("/"))
            shard_pair = (index, count)
        except ValueError:
            _fail(f"--shard must look like 0/4, got {shard!r}")
    try:
        summary = extract(
            paths, output, model, blocks=blocks, tokens=_split_list(tokens), patchout_time=patchout_time,
            patchout_freq=_split_list(patchout_freq, int), overlap=overlap, crop=crop, per_segment=per_segment,
            output_format=output_format, extensions=_split_list(extensions) if extensions else None,
            batch_size=batch_size, device=device, workers=workers, shard=shard_pair, progress=progress,
        )
    except (OSError, ValueError, ExtractError) as error:  # CheckpointError is a RuntimeError: caught below
        _fail(str(error))
    except RuntimeError as error:
        _fail(f"{type(error).__name__}: {error}")
    for path, reason in summary.failures[:10]:
        typer.echo(f"  failed: {path}: {reason}", err=True)
    if summary.failures:
        name = f"failures.shard-{shard_pair[0]}-of-{shard_pair[1]}.tsv" if shard_pair else "failures.tsv"
        typer.echo(f"all failures: {output / name}", err=True)
    typer.echo(summary.line())
    if summary.succeeded == 0 and summary.skipped == 0:
        _fail("no track was embedded")


@app.command("tag")
def tag_command(
    paths: list[Path] = typer.Argument(..., help="Audio files and/or folders (searched recursively)."),
    model: str = typer.Option("discogs-maest-30s-pw-129e", "--model", "-m", help="Registry name, Hugging Face id or local checkpoint path."),
    top_k: int = typer.Option(5, "--top-k", help="Labels to show per track, most probable first."),
    output_format: str = typer.Option("table", "--format", help="table (readable), json (one object per track) or tsv (path, label, probability)."),
    overlap: float = typer.Option(0.5, "--overlap", help="Overlap of consecutive segments; probabilities are averaged over segments."),
    crop: str | None = typer.Option(None, "--crop", help="'center': tag one segment from the centre of each track."),
    extensions: str | None = typer.Option(None, "--ext", help="Extensions to take from folders, e.g. mp3,wav."),
    batch_size: int = typer.Option(8, "--batch-size", help="Segments per model call, across files."),
    device: str | None = typer.Option(None, "--device", help="cpu, cuda, ... (default: cuda if available)."),
    workers: int = typer.Option(0, "--workers", help="Processes decoding audio while the model runs."),
) -> None:
    """Print the most probable Discogs styles (or the checkpoint's labels) of each track."""
    import json

    from maest.extraction import tag_files
    from maest.inference import load_model, top_labels

    if output_format not in ("table", "json", "tsv"):
        _fail(f"--format must be table, json or tsv, got {output_format!r}")
    try:
        pipeline = load_model(model, device, batch_size)
        results = tag_files(paths, pipeline, overlap=overlap, crop=crop,
                            extensions=_split_list(extensions) if extensions else None,
                            batch_size=batch_size, workers=workers)
        succeeded = failed = 0
        for path, probabilities, reason in results:
            if reason is not None:
                failed += 1
                typer.echo(f"failed: {path}: {reason}", err=True)
                continue
            succeeded += 1
            top = top_labels(probabilities, pipeline.labels, top_k)
            if output_format == "json":
                typer.echo(json.dumps({"path": path, "tags": [{"label": l, "probability": round(p, 6)} for l, p in top]}, ensure_ascii=False))
            elif output_format == "tsv":
                for label, probability in top:
                    typer.echo(f"{path}\t{label}\t{probability:.6f}")
            else:
                typer.echo(path)
                for label, probability in top:
                    typer.echo(f"  {probability:6.3f}  {label}")
    except (OSError, ValueError, RuntimeError) as error:
        _fail(f"{type(error).__name__}: {error}")
    if succeeded == 0:
        _fail(f"no track was tagged ({failed} failed)")


# --- downstream evaluation and the paper's experiments (maest.evaluate) ---
def _eval_overrides(epochs: int | None, max_lr: float | None, batch: int | None, dropout: float | None,
                    warmup: int | None = None) -> dict:
    values = {"epochs": epochs, "max_lr": max_lr, "batch_size": batch, "dropout": dropout, "warmup_epochs": warmup}
    return {k: v for k, v in values.items() if v is not None}


def _eval_dataset_options(dataset: str, low_quality: bool) -> dict:
    return {"low_quality": True} if low_quality and dataset.startswith("mtg-jamendo-") else {}


@app.command("eval")
def eval_command(
    dataset: DatasetArg,
    metadata: MetadataOpt,
    audio_root: AudioRootOpt,
    model: str = typer.Option("discogs-maest-30s-pw-129e", "--model", "-m", help="Registry name, Hugging Face id or local checkpoint path."),
    output_dir: Path = typer.Option(..., "--output-dir", "-o", help="Results (results.md, results.json), cached embeddings and probe runs; a rerun resumes."),
    protocol: str = typer.Option("paper", "--protocol", help="'paper' (Adam, 30 epochs, cls+dist+avg) or 'original-repo' (AdamW, lr 1e-4, 60 epochs, cls token)."),
    grid: bool = typer.Option(False, "--grid", help="Run the protocol's grid search (paper, section 4.4), chosen on validation ROC-AUC."),
    blocks: int | None = typer.Option(None, "--blocks", help="Embedding after this many blocks (default 7: the paper's 'block 7')."),
    tokens: str | None = typer.Option(None, "--tokens", help="Tokens to stack: letters c/d/a (e.g. cda) or names cls,dist,avg (default: the protocol's)."),
    patchout_time: int = typer.Option(1, "--patchout-time", help="Inference patchout: keep one time column out of every T."),
    patchout_freq: str = typer.Option("", "--patchout-freq", help="Inference patchout: frequency rows to drop, e.g. 0,7,8 (the paper's 3-row setting; rows 0..8)."),
    overlap: float = typer.Option(0.5, "--overlap", help="Overlap of consecutive segments (the paper: 0.5)."),
    epochs: EpochsOpt = None,
    max_lr: MaxLrOpt = None,
    batch: ProbeBatchOpt = None,
    dropout: DropoutOpt = None,
    warmup: WarmupOpt = None,
    low_quality: LowQualityOpt = False,
    allow_missing: bool = typer.Option(False, "--allow-missing", help="Evaluate without tracks whose audio is missing (counts are reported) instead of stopping."),
    device: str | None = typer.Option(None, "--device", help="cpu, cuda, ... (default: cuda if available)."),
    batch_size: int = typer.Option(8, "--batch-size", help="Segments per model call during extraction."),
    decode_workers: int = typer.Option(0, "--decode-workers", help="Processes decoding audio during extraction."),
    workers: int | None = typer.Option(None, "--workers", help="Processes training probes in parallel (default: all cores)."),
    probe_device: str = typer.Option("cpu", "--probe-device", help="Train probes on cpu (parallel processes) or cuda (one after another)."),
    seed: SeedOpt = 0,
    progress: ProgressOpt = True,
) -> None:
    """Embed a dataset's tracks, train the MLP probe, report test ROC-AUC and mAP (Markdown + JSON)."""
    _require("eval", "sklearn")
    from maest.evaluate.datasets import DatasetFormatError, MissingAudioError
    from maest.evaluate.features import parse_tokens
    from maest.evaluate.runner import run_eval

    try:
        result = run_eval(
            dataset, metadata, audio_root, model, output_dir, protocol=protocol, grid=grid, blocks=blocks,
            tokens=parse_tokens(tokens) if tokens else None, patchout_time=patchout_time,
            patchout_freq=_split_list(patchout_freq, int), overlap=overlap, device=device, batch_size=batch_size,
            decode_workers=decode_workers, probe_workers=workers, probe_device=probe_device,
            allow_missing=allow_missing, seed=seed,
            dataset_options=_eval_dataset_options(dataset, low_quality),
            probe_overrides=_eval_overrides(epochs, max_lr, batch, dropout, warmup), progress=progress,
        )
    except (MissingAudioError, DatasetFormatError) as error:
        _fail(str(error))
    except (OSError, ValueError, RuntimeError) as error:
        _fail(f"{type(error).__name__}: {error}")
    typer.echo(result.markdown())
    typer.echo(f"wrote {output_dir / 'results.md'} and {output_dir / 'results.json'}")


experiment_app = typer.Typer(help="The paper's downstream experiments, with plots (PNG) and numbers (CSV, Markdown).",
                             no_args_is_help=True)
app.add_typer(experiment_app, name="experiment")


def _experiment_common(dataset: str, metadata: Path, audio_root: Path, low_quality: bool, epochs, max_lr, batch, dropout,
                       warmup) -> dict:
    _require("eval", "sklearn", "matplotlib")
    return {"dataset": dataset, "metadata": metadata, "audio_root": audio_root,
            "dataset_options": _eval_dataset_options(dataset, low_quality),
            "probe_overrides": _eval_overrides(epochs, max_lr, batch, dropout, warmup)}


@experiment_app.command("blocks")
def experiment_blocks_command(
    dataset: DatasetArg,
    metadata: MetadataOpt,
    audio_root: AudioRootOpt,
    model: str = typer.Option("discogs-maest-30s-pw-129e", "--model", "-m", help="Registry name, Hugging Face id or local checkpoint path."),
    output_dir: Path = typer.Option(..., "--output-dir", "-o", help="blocks.png, blocks.csv, blocks.md, cached features; a rerun resumes."),
    blocks: str = typer.Option("5-12", "--blocks", help="Blocks to sweep: a range 5-12 or a list 5,7,9 (paper: 5..12)."),
    tokens: str = typer.Option("c,d,a,cd,ca,da,cda", "--tokens", help="Token stacks to compare, comma-separated, letters c/d/a."),
    protocol: str = typer.Option("paper", "--protocol", help="Probe protocol: paper or original-repo."),
    epochs: EpochsOpt = None,
    max_lr: MaxLrOpt = None,
    batch: ProbeBatchOpt = None,
    dropout: DropoutOpt = None,
    warmup: WarmupOpt = None,
    low_quality: LowQualityOpt = False,
    allow_missing: bool = typer.Option(False, "--allow-missing", help="Run without tracks whose audio is missing."),
    device: str | None = typer.Option(None, "--device", help="cpu, cuda, ... (default: cuda if available)."),
    batch_size: int = typer.Option(8, "--batch-size", help="Segments per model call during extraction."),
    workers: int | None = typer.Option(None, "--workers", help="Processes training probes in parallel (default: all cores)."),
    seed: SeedOpt = 0,
    progress: ProgressOpt = True,
) -> None:
    """Figure 2: probe scores per block and token stack, from one forward pass per segment."""
    from maest.evaluate.experiments import blocks_experiment

    if "-" in blocks:
        low, _, high = blocks.partition("-")
        block_list = list(range(int(low), int(high) + 1))
    else:
        block_list = _split_list(blocks, int)
    try:
        rows = blocks_experiment(
            model=model, output_dir=output_dir, blocks=block_list, token_stacks=[t for t in tokens.split(",") if t],
            protocol=protocol, device=device, batch_size=batch_size, workers=workers, allow_missing=allow_missing,
            seed=seed, progress=progress,
            **_experiment_common(dataset, metadata, audio_root, low_quality, epochs, max_lr, batch, dropout, warmup),
        )
    except (OSError, ValueError, RuntimeError) as error:
        _fail(f"{type(error).__name__}: {error}")
    typer.echo(f"{len(rows)} probes; wrote {output_dir / 'blocks.png'}, {output_dir / 'blocks.csv'}, {output_dir / 'blocks.md'}")


@experiment_app.command("patchout")
def experiment_patchout_command(
    dataset: DatasetArg,
    metadata: MetadataOpt,
    audio_root: AudioRootOpt,
    model: str = typer.Option("discogs-maest-30s-pw-129e", "--model", "-m", help="Registry name, Hugging Face id or local checkpoint path."),
    output_dir: Path = typer.Option(..., "--output-dir", "-o", help="patchout.png, patchout.csv, patchout.md, cached features; a rerun resumes."),
    time_patchout: str = typer.Option("1,2,3,5,10", "--time", help="Values of T (keep one time column out of every T)."),
    freq_patchout: str = typer.Option("3,4", "--freq", help="Numbers of frequency rows to drop at T=1: 3 = rows 0,7,8 and 4 = rows 0,1,7,8 (the first and last rows, as in the paper)."),
    cross: bool = typer.Option(False, "--cross", help="Run every (T, frequency rows) pair instead."),
    block: int = typer.Option(7, "--block", help="Embedding block."),
    tokens: str = typer.Option("cda", "--tokens", help="Token stack, letters c/d/a."),
    protocol: str = typer.Option("paper", "--protocol", help="Probe protocol: paper or original-repo."),
    epochs: EpochsOpt = None,
    max_lr: MaxLrOpt = None,
    batch: ProbeBatchOpt = None,
    dropout: DropoutOpt = None,
    warmup: WarmupOpt = None,
    low_quality: LowQualityOpt = False,
    allow_missing: bool = typer.Option(False, "--allow-missing", help="Run without tracks whose audio is missing."),
    device: str | None = typer.Option(None, "--device", help="Device; throughput is measured on it (default: cuda if available)."),
    batch_size: int = typer.Option(8, "--batch-size", help="Segments per model call (extraction and throughput)."),
    workers: int | None = typer.Option(None, "--workers", help="Processes training probes in parallel (default: all cores)."),
    seed: SeedOpt = 0,
    progress: ProgressOpt = True,
) -> None:
    """Figure 3: throughput (segments/s) vs mAP under inference time and frequency patchout."""
    from maest.evaluate.experiments import patchout_experiment

    try:
        rows = patchout_experiment(
            model=model, output_dir=output_dir, time_patchout=_split_list(time_patchout, int),
            freq_patchout=_split_list(freq_patchout, int), cross=cross, block=block, tokens=tokens, protocol=protocol,
            device=device, batch_size=batch_size, workers=workers, allow_missing=allow_missing, seed=seed,
            progress=progress, **_experiment_common(dataset, metadata, audio_root, low_quality, epochs, max_lr, batch, dropout, warmup),
        )
    except (OSError, ValueError, RuntimeError) as error:
        _fail(f"{type(error).__name__}: {error}")
    typer.echo(f"{len(rows)} settings; wrote {output_dir / 'patchout.png'}, {output_dir / 'patchout.csv'}, {output_dir / 'patchout.md'}")


@experiment_app.command("compare")
def experiment_compare_command(
    dataset: DatasetArg,
    metadata: MetadataOpt,
    audio_root: AudioRootOpt,
    models: list[str] = typer.Option(..., "--model", "-m", help="A checkpoint to compare (repeat the option for each)."),
    output_dir: Path = typer.Option(..., "--output-dir", "-o", help="compare.png, compare.csv, compare.md, one eval folder per model."),
    protocol: str = typer.Option("paper", "--protocol", help="Probe protocol: paper or original-repo."),
    blocks: int | None = typer.Option(None, "--blocks", help="Embedding block (default: the protocol's, 7)."),
    tokens: str | None = typer.Option(None, "--tokens", help="Token stack, letters c/d/a (default: the protocol's)."),
    epochs: EpochsOpt = None,
    max_lr: MaxLrOpt = None,
    batch: ProbeBatchOpt = None,
    dropout: DropoutOpt = None,
    warmup: WarmupOpt = None,
    low_quality: LowQualityOpt = False,
    allow_missing: bool = typer.Option(False, "--allow-missing", help="Run without tracks whose audio is missing."),
    device: str | None = typer.Option(None, "--device", help="cpu, cuda, ... (default: cuda if available)."),
    batch_size: int = typer.Option(8, "--batch-size", help="Segments per model call during extraction."),
    workers: int | None = typer.Option(None, "--workers", help="Processes training probes in parallel."),
    seed: SeedOpt = 0,
    progress: ProgressOpt = True,
) -> None:
    """A table (and bar chart) of several checkpoints evaluated with the same protocol."""
    from maest.evaluate.experiments import compare_experiment
    from maest.evaluate.features import parse_tokens

    try:
        rows = compare_experiment(
            dataset, metadata, audio_root, models, output_dir, protocol=protocol, blocks=blocks,
            tokens=parse_tokens(tokens) if tokens else None, device=device, batch_size=batch_size,
            probe_workers=workers, allow_missing=allow_missing, seed=seed, progress=progress,
            dataset_options=_eval_dataset_options(dataset, low_quality),
            probe_overrides=_eval_overrides(epochs, max_lr, batch, dropout, warmup),
        )
    except (OSError, ValueError, RuntimeError) as error:
        _fail(f"{type(error).__name__}: {error}")
    typer.echo((output_dir / "compare.md").read_text())
    typer.echo(f"{len(rows)} models; wrote {output_dir / 'compare.png'}, {output_dir / 'compare.csv'}")



# --- training (maest.train) ---
@app.command("train")
def train_command(
    config: Path = typer.Option(..., "--config", "-c", help="Experiment YAML, e.g. configs/maest-10s-passt.yaml or configs/tiny.yaml."),
    overrides: list[str] = typer.Option([], "--set", help="Override a config key, e.g. --set optim.lr=2e-5 --set data.root=/data/discogs (repeatable; values are typed and checked)."),
    devices: int | None = typer.Option(None, "--devices", help="GPUs (or processes) per node; >1 trains with DDP. Same as --set trainer.devices=N."),
    num_nodes: int | None = typer.Option(None, "--num-nodes", help="Nodes (under torchrun or SLURM srun). Same as --set trainer.num_nodes=N."),
) -> None:
    """Train MAEST (or the EffNet-B0 baseline) with the paper's recipe; resumes from the run's last.ckpt.

    Writes <output_dir>/<name>/: checkpoints/last.ckpt, model/ (SWA weights once SWA started, else
    the live ones) and model-last/ (live weights) for `maest embed/tag --model`, TensorBoard and CSV logs.
    """
    _require("train", "lightning", "sklearn", "tensorboard")
    from maest.train.config import ConfigError, load_config

    extra = [f"trainer.devices={devices}"] if devices is not None else []
    extra += [f"trainer.num_nodes={num_nodes}"] if num_nodes is not None else []
    try:
        settings = load_config(config, [*overrides, *extra])
    except ConfigError as error:
        _fail(str(error))
    from maest.train.run import train
    from maest.train.data import TrainDataError

    from lightning.fabric.utilities.rank_zero import rank_zero_only

    try:
        path = train(settings)
    except (ConfigError, TrainDataError, OSError) as error:
        _fail(f"{type(error).__name__}: {error}")
    if rank_zero_only.rank == 0:  # under DDP every rank returns here; report once
        typer.echo(f"trained weights: {path}")


@app.command("demo-data")
def demo_data_command(
    out_dir: Path = typer.Argument(..., help="Folder for the dataset (audio/, train/validation/test.tsv, labels.json, store/)."),
    tracks: int = typer.Option(240, "--tracks", help="Number of synthetic tracks."),
    seconds: float = typer.Option(6.0, "--seconds", help="Length of each track."),
    classes: int = typer.Option(6, "--classes", help="Number of labels (tones), 2 to 12."),
    seed: int = typer.Option(0, "--seed", help="Seed of the audio and the split."),
    progress: ProgressOpt = True,
) -> None:
    """Write a small synthetic dataset with learnable labels, ready for `maest train --config configs/tiny.yaml`."""
    from maest.train.demo import DemoDataError, make_demo_data

    try:
        make_demo_data(out_dir, tracks, seconds, classes, seed=seed, progress=progress)
    except (DemoDataError, OSError) as error:
        _fail(str(error))
    typer.echo(f"wrote a {tracks}-track synthetic dataset to {out_dir}; train on it with "
               f"maest train --config configs/tiny.yaml --set data.root={out_dir}")


# --- weights: convert between formats (maest.checkpoints) ---
@app.command("export")
def export_command(
    model: str = typer.Argument(..., help="Registry name, Hugging Face id or local checkpoint (any supported format)."),
    output: Path = typer.Argument(..., help="Where to write: a folder (native, hf) or a file (official .pt, .onnx, native .safetensors)."),
    to: str = typer.Option("native", "--to", help="native (maest safetensors + config.json), hf (transformers AST folder), "
                           "official (the original MAEST code's state dict), onnx."),
    graph: str = typer.Option("embedding", "--graph", help="ONNX only: 'embedding' (mel -> pooled tokens) or 'logits'."),
    blocks: int | None = typer.Option(None, "--blocks", help="ONNX embedding graph: blocks to run (default: all; paper: 7)."),
    tokens: str = typer.Option("cls,dist,avg", "--tokens", help="ONNX embedding graph: tokens to stack, in order."),
    swa: bool = typer.Option(True, "--swa/--no-swa", help="Lightning checkpoints: take the SWA copy when there is one."),
) -> None:
    """Convert MAEST weights to another format (maest native, Hugging Face AST, original MAEST, ONNX)."""
    from maest import checkpoints
    from maest.model import Maest

    if to not in ("native", "hf", "official", "onnx"):
        _fail(f"--to must be native, hf, official or onnx, got {to!r}")
    try:
        net = checkpoints.load_checkpoint(model, swa=swa)
        if not isinstance(net, Maest):
            _fail(f"{model} is not a MAEST transformer; only MAEST weights convert to other formats")
        if to == "native":
            written = checkpoints.save_native(net, output)
        elif to == "hf":
            written = checkpoints.export_hf(net, output)
        elif to == "official":
            written = checkpoints.save_official(net, output)
        else:
            written = checkpoints.export_onnx(net, output, graph, blocks=blocks, tokens=tuple(_split_list(tokens)))
    except (OSError, ValueError, RuntimeError) as error:  # CheckpointError is a RuntimeError
        _fail(f"{type(error).__name__}: {error}")
    typer.echo(f"wrote {written}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
