"""What the downstream experiments share: probe tasks run in parallel and resumed from JSON lines,
feature-cache naming, dataset preparation, CSV and PNG writing (:mod:`maest.evaluate.experiments`)."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np

from maest.atomic import atomic_write, atomic_write_text
from maest.evaluate.datasets import Dataset, MissingAudioError, check_audio, drop_paths, load_dataset
from maest.evaluate.features import FeatureSet, token_letters
from maest.evaluate.probe import ProbeConfig, ProbeData, append_jsonl, get_protocol, read_jsonl, train_probe


class ExperimentError(RuntimeError):
    """An experiment cannot run with the given model, dataset or options."""


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


def _segment_rule(protocol: str, segments: str | None, overlap: float) -> str:
    """The segment rule an experiment embeds with: the protocol's unless ``segments`` overrides it."""
    from maest.segments import check_rule

    rule = get_protocol(protocol).segments if segments is None else segments
    check_rule(rule, overlap, None)
    return rule


def _load_pipeline(model, device, batch_size, precision: str | None = None):
    from maest.inference import MaestPipeline, load_model

    return model if isinstance(model, MaestPipeline) else load_model(model, device, batch_size, precision)


def features_folder_suffix(rule: str, precision: str, resampler: str | None) -> str:
    """Suffix of experiment feature folders and probe keys: the segment rule, precision and resampler
    where off their defaults (so names made before stay valid); the weights are checked by features.json."""
    from maest.spec import EmbeddingSpec

    return EmbeddingSpec(segments=rule, precision=precision, resampler=resampler or "essentia").suffix()
