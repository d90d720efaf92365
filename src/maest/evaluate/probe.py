"""The paper's MLP probe in evaluation: named protocols, grid search, resumable records (the probe: :mod:`maest.probe`).

Probe: input -> 512 -> ReLU -> dropout -> labels, binary cross-entropy on logits. The weights of the
epoch with the best validation macro ROC-AUC are kept and scored on test. Two named protocols:
``paper`` (Adam, weight decay 1e-3, warm-up/hold/decay, grid of section 4.4) and
``original-repo`` (the original repository's AdamW script: lr 1e-4, 60 epochs, no hold, cls token).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import torch

from maest.atomic import atomic_write_text
from maest.probe import (MlpProbe, ProbeConfig, ProbeData, ProbeError, ProbeResult, _optimizer, predict,  # noqa: F401
                         probe_lr, train_probe)  # the probe itself lives below heads and evaluate


@dataclass(frozen=True)
class Protocol:
    """A named evaluation protocol: the base probe config, its grid, its default token stack and segment rule.

    Both protocols embed tracks with the original code's segment rule (``segments="original"``, see
    :mod:`maest.segments`): the paper's numbers and the original repository's probes were made on it.
    """

    name: str
    config: ProbeConfig
    grid: Mapping[str, Sequence] = field(default_factory=dict)
    tokens: tuple[str, ...] = ("cls", "dist", "avg")
    blocks: int = 7
    segments: str = "original"


# The paper gives no single max lr for sections 4.1-4.3; 1e-4, the original script's value, is used.
PAPER_GRID = {
    "batch_size": (64, 128, 256),
    "epochs": (30, 40, 50, 60, 70, 80),
    "dropout": (0.5, 0.75),
    "max_lr": (1e-3, 5e-4, 1e-4, 1e-5),
}
PROTOCOLS: dict[str, Protocol] = {
    "paper": Protocol("paper", ProbeConfig(), PAPER_GRID),
    "original-repo": Protocol(
        "original-repo",
        ProbeConfig(epochs=60, max_lr=1e-4, optimizer="adamw", decay_start=10),
        {},
        tokens=("cls",),
    ),
}


def get_protocol(name: str) -> Protocol:
    if name not in PROTOCOLS:
        raise ProbeError(f"unknown protocol {name!r}; choose from {', '.join(PROTOCOLS)}")
    return PROTOCOLS[name]


# -- grid search --------------------------------------------------------------------------------
def expand_grid(base: ProbeConfig, grid: Mapping[str, Sequence]) -> list[ProbeConfig]:
    """Every combination of ``grid`` values applied to ``base`` (in a fixed order)."""
    known = {f.name for f in dataclasses.fields(ProbeConfig)}
    unknown = set(grid) - known
    if unknown:
        raise ProbeError(f"grid names unknown probe options {sorted(unknown)}")
    configs = [base]
    for name, values in grid.items():
        configs = [dataclasses.replace(c, **{name: v}) for c in configs for v in values]
    return configs


_WORKER_DATA: ProbeData | None = None
_WORKER_DEVICE = "cpu"


def _init_worker(data: ProbeData, device: str = "cpu", threads: int | None = 1) -> None:
    global _WORKER_DATA, _WORKER_DEVICE
    if threads:
        torch.set_num_threads(threads)  # one core per config: parallelism comes from the process pool
    _WORKER_DATA, _WORKER_DEVICE = data, device


def _run_config(config: ProbeConfig, seed: int) -> dict:
    if _WORKER_DATA is None:
        raise ProbeError("probe worker started without data")
    return train_probe(_WORKER_DATA, config, seed=seed, standardise=False, device=_WORKER_DEVICE).to_dict()


def read_jsonl(path: Path) -> list[dict]:
    """Records of a results file; lines cut short by a crash are dropped (and removed from the file).

    Rewriting the file without them (atomically) keeps later appends on lines of their own.
    """
    if not path.is_file():
        return []
    records, broken = [], False
    text = path.read_text()
    for line in text.splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            broken = True
    if broken or (text and not text.endswith("\n")):
        atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in records))
    return records


def _read_done(path: Path, data_key: str) -> dict[str, dict]:
    """Finished configs of ``path`` trained on the data whose fingerprint is ``data_key``.

    Records of other data (the folder reused for another dataset, a changed split) are ignored.
    """
    return {ProbeConfig(**record["config"]).key(): record for record in read_jsonl(path) if record.get("data") == data_key}


def append_jsonl(path: Path, record: dict) -> None:
    """Append one record as a line and make it durable (a crash loses at most the line being written)."""
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()
        os.fsync(f.fileno())


@dataclass
class GridResult:
    """Every config's record (from ``results.jsonl``) and the one chosen on validation."""

    records: list[dict]
    best: dict

    @property
    def best_config(self) -> ProbeConfig:
        return ProbeConfig(**self.best["config"])


def grid_search(
    data: ProbeData,
    output_dir: str | os.PathLike,
    base: ProbeConfig = ProbeConfig(),
    grid: Mapping[str, Sequence] | None = None,
    workers: int | None = None,
    seed: int = 0,
    progress: bool = True,
    device: str = "cpu",
) -> GridResult:
    """Train every grid config (in parallel processes), choosing the best validation ROC-AUC.

    On CPU configs run in ``workers`` processes with one thread each; on another ``device``
    (e.g. "cuda") they run one after the other in this process.

    Each finished config is appended to ``output_dir/results.jsonl`` with a fingerprint of ``data``;
    a rerun on the same data skips configs found there, so an interrupted search resumes. Test scores are recorded but never used to choose.
    """
    from tqdm.auto import tqdm

    configs = expand_grid(base, PAPER_GRID if grid is None else grid)
    output = Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    path = output / "results.jsonl"
    data_key = data.fingerprint()
    done = _read_done(path, data_key)
    todo = [c for c in configs if c.key() not in done]
    data = data.standardised()
    workers = max(1, min(workers or os.cpu_count() or 1, len(todo) or 1))
    bar = tqdm(total=len(configs), initial=len(configs) - len(todo), desc="probe grid", disable=not progress, unit="config")
    if workers == 1 or len(todo) <= 1 or device != "cpu":
        threads = torch.get_num_threads()
        _init_worker(data, device, threads=None)  # in this process: keep its threads
        try:
            for config in todo:
                record = {**_run_config(config, seed), "data": data_key}
                append_jsonl(path, record)
                done[config.key()] = record
                bar.update()
        finally:
            torch.set_num_threads(threads)
    else:
        with ProcessPoolExecutor(workers, initializer=_init_worker, initargs=(data, device)) as pool:
            futures = {pool.submit(_run_config, c, seed): c for c in todo}
            for future in as_completed(futures):
                record = {**future.result(), "data": data_key}
                append_jsonl(path, record)
                done[futures[future].key()] = record
                bar.update()
    bar.close()
    records = [done[c.key()] for c in configs]
    best = max(records, key=lambda r: r["valid_roc_auc"])  # first maximum in grid order on ties
    return GridResult(records, best)

