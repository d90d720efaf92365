"""The paper's downstream experiments as library calls with plots (PNG) and numbers (CSV, Markdown).

* :func:`blocks_experiment` - Figure 2: ROC-AUC/mAP per block and token stack (c, d, a, cd, ...),
  from one forward pass per segment (:mod:`maest.evaluate.features`);
* :func:`patchout_experiment` - Figure 3: throughput vs mAP under inference patchout;
* :func:`compare_experiment` - a table of several checkpoints under one protocol.
Probe results are appended to JSON lines files, so an interrupted experiment resumes. Tracks are
embedded with the protocol's segment rule (the original code's, as the paper's numbers were made)
unless ``segments`` says otherwise; feature folders and probe keys name a non-default rule.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from maest.atomic import atomic_write_text
from maest.evaluate.datasets import Dataset, load_dataset
from maest.evaluate.features import extract_features, parse_tokens, token_letters
from maest.evaluate.probe import get_protocol
from maest.evaluate.tasks import (ExperimentError, _load_pipeline, _prepare, _probe_on_features, _segment_rule,  # noqa: F401
                                  _split_state, _usable, features_folder_suffix, run_tasks, save_figure, write_csv)
from maest.metrics import markdown_table

DEFAULT_BLOCKS = tuple(range(5, 13))
DEFAULT_TOKEN_STACKS = ("c", "d", "a", "cd", "ca", "da", "cda")
DEFAULT_TIME_PATCHOUT = (1, 2, 3, 5, 10)
DEFAULT_FREQ_PATCHOUT = (3, 4)


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
    segments: str | None = None,
    device: str | None = None,
    batch_size: int = 8,
    workers: int | None = None,
    allow_missing: bool = False,
    seed: int = 0,
    dataset_options: Mapping[str, Any] | None = None,
    progress: bool = True,
    precision: str | None = None,
    resampler: str | None = None,
) -> list[dict]:
    """Probe every (block, token stack); writes ``blocks.csv``, ``blocks.md`` and ``blocks.png``.

    Features for all blocks come from one forward pass per segment through the deepest block.
    """
    from matplotlib.figure import Figure

    output = Path(output_dir)
    rule = _segment_rule(protocol, segments, overlap)
    dataset = _prepare(dataset, metadata, audio_root, allow_missing, dataset_options)
    pipeline = _load_pipeline(model, device, batch_size, precision)
    suffix = features_folder_suffix(rule, pipeline.precision, resampler)  # cache folders and probe keys
    blocks = sorted(set(int(b) for b in blocks))
    if not blocks or blocks[0] < 1 or blocks[-1] > pipeline.config.depth:
        raise ExperimentError(f"blocks {blocks} must lie in 1..{pipeline.config.depth} for this model")
    stacks = [parse_tokens(s) for s in token_stacks]
    from maest.evaluate.runner import model_tag

    tag = model_tag(model)
    features, failures = extract_features(pipeline, dataset.all_paths(), audio_root,
                                          output / "features" / f"{tag}-o{overlap}{suffix}", blocks,
                                          overlap=overlap, batch_size=batch_size, progress=progress, segments=rule,
                                          resampler=resampler)
    dataset = _usable(dataset, failures)
    config = dataclasses.asdict(dataclasses.replace(get_protocol(protocol).config, **dict(probe_overrides or {})))
    data_key = dataset.fingerprint()  # an output folder reused with other split data reruns its probes
    tasks = {f"{tag}{suffix}|{data_key}|b{b}|{token_letters(s)}|{json.dumps(config, sort_keys=True)}|{seed}":
             (b, s, config, seed) for b in blocks for s in stacks}
    state = {"features": features, "splits": _split_state(dataset), "labels": dataset.labels}
    output.mkdir(parents=True, exist_ok=True)
    results = run_tasks(tasks, _probe_on_features, state, output / "blocks.jsonl", workers, "block x token probes", progress)
    rows = [{"model": tag, **{k: v for k, v in r.items() if k != "key"}} for r in results.values()]
    columns = ["model", "block", "tokens", "roc_auc", "map", "roc_auc_micro", "map_micro", "valid_roc_auc", "best_epoch"]
    write_csv(output / "blocks.csv", rows, columns)
    atomic_write_text(output / "blocks.md", markdown_table(rows, columns) + f"\nSegments: the {rule} rule.\n")

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
    segments: str | None = None,
    device: str | None = None,
    batch_size: int = 8,
    workers: int | None = None,
    allow_missing: bool = False,
    seed: int = 0,
    dataset_options: Mapping[str, Any] | None = None,
    progress: bool = True,
    precision: str | None = None,
    resampler: str | None = None,
) -> list[dict]:
    """Throughput and probe scores per inference-patchout setting; writes ``patchout.{csv,md,png}``.

    Settings: every ``T`` of ``time_patchout`` (keep every T-th time column) without frequency
    patchout, and every count of ``freq_patchout`` rows dropped (see :func:`freq_rows_to_drop`) at T=1; ``cross``
    runs every (T, rows) pair instead.
    """
    from matplotlib.figure import Figure

    from maest.evaluate.runner import model_tag

    output = Path(output_dir)
    rule = _segment_rule(protocol, segments, overlap)
    dataset = _prepare(dataset, metadata, audio_root, allow_missing, dataset_options)
    pipeline = _load_pipeline(model, device, batch_size, precision)
    suffix = features_folder_suffix(rule, pipeline.precision, resampler)  # cache folders and probe keys
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
        directory = output / "features" / f"{tag}-b{block}-t{t}-f{f}-o{overlap}{suffix}"
        features, failed = extract_features(pipeline, dataset.all_paths(), audio_root, directory, [block], t, drop,
                                            overlap, batch_size, progress, rule, resampler)
        feature_sets[str(directory)] = features
        failures.update(failed)
    dataset = _usable(dataset, failures)
    config = dataclasses.asdict(dataclasses.replace(get_protocol(protocol).config, **dict(probe_overrides or {})))
    directories = {s: str(output / "features" / f"{tag}-b{block}-t{s[0]}-f{s[1]}-o{overlap}{suffix}")
                   for s in settings}
    data_key = dataset.fingerprint()  # an output folder reused with other split data reruns its probes
    tasks = {f"{tag}{suffix}|{data_key}|b{block}|{token_letters(stack)}|t{t}|f{f}|"
             f"{json.dumps(config, sort_keys=True)}|{seed}":
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
                                              f"batch {batch_size}, {block} blocks. Segments: the {rule} rule.\n")
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
