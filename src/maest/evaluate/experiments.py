"""The paper's downstream experiments as library calls with plots (PNG) and numbers (CSV, Markdown).

* :func:`blocks_experiment` - Figure 2: ROC-AUC/mAP per block and token stack (c, d, a, cd, ...),
  from one forward pass per segment (:mod:`maest.evaluate.features`);
* :func:`patchout_experiment` - Figure 3: throughput vs mAP under inference patchout;
* :func:`compare_experiment` - a table of several checkpoints under one protocol.
Probe results are appended to JSON lines files, so an interrupted experiment resumes.
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np

from maest.atomic import atomic_write, atomic_write_text
from maest.evaluate.datasets import Dataset, MissingAudioError, check_audio, drop_paths, load_dataset
from maest.evaluate.features import FeatureSet, extract_features, parse_tokens, token_letters
from maest.metrics import markdown_table
from maest.evaluate.probe import ProbeConfig, ProbeData, append_jsonl, get_protocol, read_jsonl, train_probe

DEFAULT_BLOCKS = tuple(range(5, 13))
DEFAULT_TOKEN_STACKS = ("c", "d", "a", "cd", "ca", "da", "cda")
DEFAULT_TIME_PATCHOUT = (1, 2, 3, 5, 10)
DEFAULT_FREQ_PATCHOUT = (3, 4)


class ExperimentError(RuntimeError):
    """An experiment cannot run with the given model, dataset or options."""


# -- shared helpers -----------------------------------------------------------------------------
def write_csv(path: Path, rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> Path:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())
    return path


def save_figure(figure, path: Path) -> Path:
    """Render a matplotlib Figure to PNG atomically (no pyplot: works headless, Agg canvas)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    atomic_write(path, lambda f: figure.savefig(f, format="png", dpi=120, bbox_inches="tight"))
    return path


def _read_jsonl(path: Path) -> dict[str, dict]:
    return {record["key"]: record for record in read_jsonl(path)}  # crash-truncated lines rerun


_TASK_STATE: dict[str, Any] = {}


def _init_task_worker(state: dict[str, Any], threads: int | None) -> None:
    import torch

    if threads:
        torch.set_num_threads(threads)
    _TASK_STATE.clear()
    _TASK_STATE.update(state)


def run_tasks(
    tasks: Mapping[str, tuple], fn: Callable[..., dict], state: dict[str, Any], jsonl: Path,
    workers: int | None = None, desc: str = "probes", progress: bool = True,
) -> dict[str, dict]:
    """Run ``fn(*args)`` for every task not yet in ``jsonl`` (parallel, one thread per process); resumable."""
    from tqdm.auto import tqdm

    import torch

    done = _read_jsonl(jsonl)
    todo = {k: v for k, v in tasks.items() if k not in done}
    workers = max(1, min(workers or os.cpu_count() or 1, len(todo) or 1))
    bar = tqdm(total=len(tasks), initial=len(tasks) - len(todo), desc=desc, unit="probe", disable=not progress)

    def record(key: str, result: dict) -> None:
        result = {"key": key, **result}
        append_jsonl(jsonl, result)
        done[key] = result
        bar.update()

    if workers == 1:
        threads = torch.get_num_threads()
        _init_task_worker(state, None)
        try:
            for key, args in todo.items():
                record(key, fn(*args))
        finally:
            torch.set_num_threads(threads)
    else:
        with ProcessPoolExecutor(workers, initializer=_init_task_worker, initargs=(state, 1)) as pool:
            futures = {pool.submit(fn, *args): key for key, args in todo.items()}
            for future in as_completed(futures):
                record(futures[future], future.result())
    bar.close()
    return {k: done[k] for k in tasks}


def _prepare(dataset: str | Dataset, metadata, audio_root, allow_missing: bool, dataset_options) -> Dataset:
    if isinstance(dataset, str):
        dataset = load_dataset(dataset, metadata, **dict(dataset_options or {}))
    report = check_audio(dataset, audio_root)
    if not report.ok:
        if not allow_missing:
            raise MissingAudioError(report)
        dataset = drop_paths(dataset, {p for ps in report.missing.values() for p in ps}, report.summary())
    return dataset


def _probe_on_features(block: int, tokens: tuple[str, ...], config: dict, seed: int, directory: str | None = None) -> dict:
    """Worker: load one (block, token stack) matrix from the feature cache, train and score a probe."""
    state = _TASK_STATE
    features: FeatureSet = state["features"] if directory is None else state["feature_sets"][directory]
    splits = state["splits"]
    matrices = {name: features.load(paths, block, tokens) for name, (paths, _) in splits.items()}
    data = ProbeData(matrices["train"], splits["train"][1], matrices["validation"], splits["validation"][1],
                     matrices["test"], splits["test"][1], state["labels"])
    result = train_probe(data, ProbeConfig(**config), seed=seed)
    return {"block": block, "tokens": token_letters(tokens), "best_epoch": result.best_epoch,
            "valid_roc_auc": result.valid_roc_auc, "roc_auc": result.test.roc_auc_macro, "map": result.test.pr_auc_macro,
            "roc_auc_micro": result.test.roc_auc_micro, "map_micro": result.test.pr_auc_micro}


def _usable(dataset: Dataset, failures: Mapping[str, str]) -> Dataset:
    if failures:
        dataset = drop_paths(dataset, set(failures), f"{len(failures)} tracks failed to decode")
    if any(len(s) == 0 for s in dataset.splits.values()):
        raise ExperimentError(f"a split has no usable tracks: {dataset.counts()}")
    return dataset


def _split_state(dataset: Dataset) -> dict[str, tuple[list[str], np.ndarray]]:
    return {name: (split.paths, split.targets) for name, split in dataset.splits.items()}


def _load_pipeline(model, device, batch_size):
    from maest.inference import MaestPipeline, load_model

    return model if isinstance(model, MaestPipeline) else load_model(model, device, batch_size)


# -- Figure 2: blocks x tokens --------------------------------------------------------------------
def blocks_experiment(
    dataset: str | Dataset,
    metadata: str | os.PathLike | None,
    audio_root: str | os.PathLike,
    model: Any,
    output_dir: str | os.PathLike,
    *,
    blocks: Iterable[int] = DEFAULT_BLOCKS,
    token_stacks: Sequence[str] = DEFAULT_TOKEN_STACKS,
    protocol: str = "paper",
    probe_overrides: Mapping[str, Any] | None = None,
    overlap: float = 0.5,
    device: str | None = None,
    batch_size: int = 8,
    workers: int | None = None,
    allow_missing: bool = False,
    seed: int = 0,
    dataset_options: Mapping[str, Any] | None = None,
    progress: bool = True,
) -> list[dict]:
    """Probe every (block, token stack); writes ``blocks.csv``, ``blocks.md`` and ``blocks.png``.

    Features for all blocks come from one forward pass per segment through the deepest block.
    """
    from matplotlib.figure import Figure

    output = Path(output_dir)
    dataset = _prepare(dataset, metadata, audio_root, allow_missing, dataset_options)
    pipeline = _load_pipeline(model, device, batch_size)
    blocks = sorted(set(int(b) for b in blocks))
    if not blocks or blocks[0] < 1 or blocks[-1] > pipeline.config.depth:
        raise ExperimentError(f"blocks {blocks} must lie in 1..{pipeline.config.depth} for this model")
    stacks = [parse_tokens(s) for s in token_stacks]
    from maest.evaluate.runner import model_tag

    tag = model_tag(model)
    features, failures = extract_features(pipeline, dataset.all_paths(), audio_root,
                                          output / "features" / f"{tag}-o{overlap}", blocks, overlap=overlap,
                                          batch_size=batch_size, progress=progress)
    dataset = _usable(dataset, failures)
    import dataclasses

    config = dataclasses.asdict(dataclasses.replace(get_protocol(protocol).config, **dict(probe_overrides or {})))
    data_key = dataset.fingerprint()  # an output folder reused with other split data reruns its probes
    tasks = {f"{tag}|{data_key}|b{b}|{token_letters(s)}|{json.dumps(config, sort_keys=True)}|{seed}": (b, s, config, seed)
             for b in blocks for s in stacks}
    state = {"features": features, "splits": _split_state(dataset), "labels": dataset.labels}
    output.mkdir(parents=True, exist_ok=True)
    results = run_tasks(tasks, _probe_on_features, state, output / "blocks.jsonl", workers, "block x token probes", progress)
    rows = [{"model": tag, **{k: v for k, v in r.items() if k != "key"}} for r in results.values()]
    columns = ["model", "block", "tokens", "roc_auc", "map", "roc_auc_micro", "map_micro", "valid_roc_auc", "best_epoch"]
    write_csv(output / "blocks.csv", rows, columns)
    atomic_write_text(output / "blocks.md", markdown_table(rows, columns))

    figure = Figure(figsize=(10, 4))
    axes = figure.subplots(1, 2)
    for metric, ax, title in (("roc_auc", axes[0], "ROC-AUC"), ("map", axes[1], "mAP")):
        for stack in stacks:
            letters = token_letters(stack)
            points = sorted((r["block"], 100 * r[metric]) for r in rows if r["tokens"] == letters)
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=letters)
        ax.set_xlabel("block")
        ax.set_ylabel(f"{title} (%)")
        ax.set_xticks(blocks)
        ax.grid(alpha=0.3)
    axes[1].legend(title="tokens", fontsize="small")
    figure.suptitle(f"{dataset.name}: embedding block and token ({tag})")
    save_figure(figure, output / "blocks.png")
    return rows


# -- Figure 3: throughput vs mAP under inference patchout ------------------------------------------
def freq_rows_to_drop(rows: int, count: int) -> tuple[int, ...]:
    """The paper's frequency patchout: the first ``count // 2`` and the last ``count - count // 2`` rows.

    With 9 rows: 3 -> 0, 7, 8 (the first and the last two); 4 -> 0, 1, 7, 8 (the first two and the last two).
    """
    if not 0 <= count < rows:
        raise ExperimentError(f"cannot drop {count} of {rows} frequency rows")
    first = count // 2
    return tuple(range(first)) + tuple(range(rows - (count - first), rows))


def measure_throughput(pipeline, block: int, settings: Sequence[tuple[int, Sequence[int]]], batch_size: int = 8,
                       rounds: int = 5, min_seconds: float = 0.05) -> list[float]:
    """Segments per second through ``block`` blocks for each ``(patchout_time, patchout_freq)`` setting.

    Settings are timed in interleaved rounds (so a busy machine slows them alike) and each keeps its
    best round; a round repeats the batch until ``min_seconds`` have passed.
    """
    import torch

    config = pipeline.config
    mel = torch.randn(batch_size, config.n_mels, config.segment_frames, device=pipeline.device)

    def sync():
        if pipeline.device.type == "cuda":
            torch.cuda.synchronize()

    best = [0.0] * len(settings)
    with torch.inference_mode(), pipeline.autocast():
        for t, f in settings:  # warm-up
            pipeline.model.forward_features(mel, block, t, f)
        for _ in range(rounds):
            for index, (t, f) in enumerate(settings):
                sync()
                start, runs = time.perf_counter(), 0
                while True:
                    pipeline.model.forward_features(mel, block, t, f)
                    runs += 1
                    sync()
                    elapsed = time.perf_counter() - start
                    if elapsed >= min_seconds:
                        break
                best[index] = max(best[index], runs * batch_size / elapsed)
    return best


def patchout_experiment(
    dataset: str | Dataset,
    metadata: str | os.PathLike | None,
    audio_root: str | os.PathLike,
    model: Any,
    output_dir: str | os.PathLike,
    *,
    time_patchout: Sequence[int] = DEFAULT_TIME_PATCHOUT,
    freq_patchout: Sequence[int] = DEFAULT_FREQ_PATCHOUT,
    cross: bool = False,
    block: int = 7,
    tokens: str = "cda",
    protocol: str = "paper",
    probe_overrides: Mapping[str, Any] | None = None,
    overlap: float = 0.5,
    device: str | None = None,
    batch_size: int = 8,
    workers: int | None = None,
    allow_missing: bool = False,
    seed: int = 0,
    dataset_options: Mapping[str, Any] | None = None,
    progress: bool = True,
) -> list[dict]:
    """Throughput and probe scores per inference-patchout setting; writes ``patchout.{csv,md,png}``.

    Settings: every ``T`` of ``time_patchout`` (keep every T-th time column) without frequency
    patchout, and every count of ``freq_patchout`` rows dropped (see :func:`freq_rows_to_drop`) at T=1; ``cross``
    runs every (T, rows) pair instead.
    """
    import dataclasses

    from matplotlib.figure import Figure

    from maest.evaluate.runner import model_tag

    output = Path(output_dir)
    dataset = _prepare(dataset, metadata, audio_root, allow_missing, dataset_options)
    pipeline = _load_pipeline(model, device, batch_size)
    if not 1 <= block <= pipeline.config.depth:
        raise ExperimentError(f"block {block} must lie in 1..{pipeline.config.depth} for this model")
    rows_total = pipeline.config.conv_freq_rows()
    if cross:
        settings = [(t, f) for t in time_patchout for f in (0, *freq_patchout)]
    else:
        settings = [(t, 0) for t in time_patchout] + [(1, f) for f in freq_patchout if f]
    settings = list(dict.fromkeys(settings))
    stack = parse_tokens(tokens)
    tag = model_tag(model)
    feature_sets, failures = {}, {}
    for t, f in settings:
        drop = freq_rows_to_drop(rows_total, f)
        directory = output / "features" / f"{tag}-b{block}-t{t}-f{f}-o{overlap}"
        features, failed = extract_features(pipeline, dataset.all_paths(), audio_root, directory, [block], t, drop,
                                            overlap, batch_size, progress)
        feature_sets[str(directory)] = features
        failures.update(failed)
    dataset = _usable(dataset, failures)
    config = dataclasses.asdict(dataclasses.replace(get_protocol(protocol).config, **dict(probe_overrides or {})))
    directories = {s: str(output / "features" / f"{tag}-b{block}-t{s[0]}-f{s[1]}-o{overlap}") for s in settings}
    data_key = dataset.fingerprint()  # an output folder reused with other split data reruns its probes
    tasks = {f"{tag}|{data_key}|b{block}|{token_letters(stack)}|t{t}|f{f}|{json.dumps(config, sort_keys=True)}|{seed}":
             (block, stack, config, seed, directories[(t, f)]) for t, f in settings}
    state = {"feature_sets": feature_sets, "splits": _split_state(dataset), "labels": dataset.labels}
    output.mkdir(parents=True, exist_ok=True)
    results = run_tasks(tasks, _probe_on_features, state, output / "patchout.jsonl", workers, "patchout probes", progress)
    speeds = measure_throughput(pipeline, block, [(t, freq_rows_to_drop(rows_total, f)) for t, f in settings], batch_size)
    rows = []
    for (t, f), record, speed in zip(settings, results.values(), speeds):
        rows.append({"model": tag, "patchout_time": t, "patchout_freq_rows": f, "segments_per_s": round(speed, 2),
                     **{k: record[k] for k in ("roc_auc", "map", "roc_auc_micro", "map_micro", "valid_roc_auc")}})
    columns = ["model", "patchout_time", "patchout_freq_rows", "segments_per_s", "roc_auc", "map", "roc_auc_micro",
               "map_micro", "valid_roc_auc"]
    write_csv(output / "patchout.csv", rows, columns)
    device_name = str(pipeline.device)
    atomic_write_text(output / "patchout.md", markdown_table(rows, columns) + f"\nThroughput measured on {device_name}, "
                                              f"batch {batch_size}, {block} blocks.\n")
    figure = Figure(figsize=(6, 4.5))
    ax = figure.subplots()
    for f, marker in zip(sorted({r["patchout_freq_rows"] for r in rows}), "osD^v"):
        group = [r for r in rows if r["patchout_freq_rows"] == f]
        ax.scatter([r["segments_per_s"] for r in group], [100 * r["map"] for r in group], marker=marker,
                   label=f"{f} freq rows dropped" if f else "no freq patchout")
        for r in group:
            ax.annotate(f"T={r['patchout_time']}", (r["segments_per_s"], 100 * r["map"]), textcoords="offset points",
                        xytext=(4, 4), fontsize="small")
    ax.set_xlabel(f"throughput (segments/s, {device_name})")
    ax.set_ylabel("mAP (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    ax.set_title(f"{dataset.name}: inference patchout ({tag})")
    save_figure(figure, output / "patchout.png")
    return rows


# -- checkpoint comparison ---------------------------------------------------------------------------
def _distinct_tags(models: Sequence[Any], model_tag: Callable[[Any], str]) -> list[str]:
    """One folder-safe name per model; same-named checkpoints (``run-a/model-last``, ``run-b/model-last``)
    are told apart by their parent folder, then by position."""
    names = [model_tag(m) for m in models]
    tags = [model_tag(f"{Path(m).resolve().parent.name}_{name}")
            if names.count(name) > 1 and isinstance(m, (str, os.PathLike)) else name
            for m, name in zip(models, names)]
    return [f"{tag}_{i + 1}" if tags.count(tag) > 1 else tag for i, tag in enumerate(tags)]


def compare_experiment(
    dataset: str | Dataset,
    metadata: str | os.PathLike | None,
    audio_root: str | os.PathLike,
    models: Sequence[Any],
    output_dir: str | os.PathLike,
    **eval_options: Any,
) -> list[dict]:
    """:func:`maest.evaluate.run_eval` for each model (same protocol); writes ``compare.{csv,md,png}``."""
    from matplotlib.figure import Figure

    from maest.evaluate.runner import model_tag, run_eval

    if not models:
        raise ExperimentError("give at least one model to compare")
    output = Path(output_dir)
    if isinstance(dataset, str):
        dataset = load_dataset(dataset, metadata, **dict(eval_options.pop("dataset_options", None) or {}))
    rows = []
    for model, tag in zip(models, _distinct_tags(models, model_tag)):
        result = run_eval(dataset, None, audio_root, model, output / tag, **eval_options)
        rows.append({**result.row(), "model": tag})
    columns = ["model", "dataset", "protocol", "blocks", "tokens", "ROC-AUC", "mAP", "ROC-AUC micro", "mAP micro"]
    write_csv(output / "compare.csv", rows, columns)
    atomic_write_text(output / "compare.md", markdown_table(rows, columns))
    figure = Figure(figsize=(max(5, 1.4 * len(rows)), 4))
    ax = figure.subplots()
    x = np.arange(len(rows))
    ax.bar(x - 0.2, [100 * r["ROC-AUC"] for r in rows], 0.4, label="ROC-AUC")
    ax.bar(x + 0.2, [100 * r["mAP"] for r in rows], 0.4, label="mAP")
    ax.set_xticks(x, [r["model"] for r in rows], rotation=20, ha="right", fontsize="small")
    ax.set_ylabel("%")
    ax.legend()
    ax.set_title(f"{dataset.name}: checkpoints compared")
    save_figure(figure, output / "compare.png")
    return rows
