"""The paper's MLP probe on frozen embeddings: training, best-validation selection, grid search.

Probe: input -> 512 -> ReLU -> dropout -> labels, binary cross-entropy on logits. The weights of the
epoch with the best validation macro ROC-AUC are kept and scored on test. Two named protocols:
``paper`` (Adam, weight decay 1e-3, warm-up/hold/decay, grid of section 4.4) and
``original-repo`` (the original repository's AdamW script: lr 1e-4, 60 epochs, no hold, cls token).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
import warnings
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from maest.atomic import atomic_write_text
from maest.metrics import TaggingScores, macro_roc_auc, tagging_metrics
from maest.evaluate.schedule import probe_lr


class ProbeError(ValueError):
    """Probe inputs are inconsistent (shapes, empty splits, unknown protocol or option)."""


@dataclass(frozen=True)
class ProbeConfig:
    """Every knob of one probe training run."""

    batch_size: int = 128
    epochs: int = 30
    dropout: float = 0.5
    max_lr: float = 1e-4
    weight_decay: float = 1e-3
    optimizer: str = "adam"  # "adam" (paper) or "adamw" (original repository)
    hidden: int = 512
    warmup_epochs: int = 10
    decay_start: int | None = None  # None: half-way through the post-warm-up epochs (see probe_lr)
    final_lr: float = 1e-7

    def key(self) -> str:
        """A stable identifier used to resume grid searches."""
        return json.dumps(dataclasses.asdict(self), sort_keys=True)


@dataclass(frozen=True)
class Protocol:
    """A named evaluation protocol: the base probe config, its grid and its default token stack."""

    name: str
    config: ProbeConfig
    grid: Mapping[str, Sequence] = field(default_factory=dict)
    tokens: tuple[str, ...] = ("cls", "dist", "avg")
    blocks: int = 7


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


@dataclass
class ProbeData:
    """Embeddings (N, D) float and targets (N, C) bool for train, validation and (optionally) test."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_valid: np.ndarray
    y_valid: np.ndarray
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    labels: list[str] | None = None

    def __post_init__(self):
        pairs = [("train", self.x_train, self.y_train), ("validation", self.x_valid, self.y_valid)]
        if self.x_test is not None:
            pairs.append(("test", self.x_test, self.y_test))
        dims = {x.shape[1] for _, x, _ in pairs} if all(x.ndim == 2 for _, x, _ in pairs) else {None}
        classes = {y.shape[1] for _, _, y in pairs} if all(y is not None and y.ndim == 2 for _, _, y in pairs) else {None}
        if len(dims) != 1 or None in dims or len(classes) != 1 or None in classes:
            raise ProbeError("every split needs 2-D embeddings of one width and 2-D targets of one width")
        for name, x, y in pairs:
            if x.shape[0] != y.shape[0] or x.shape[0] == 0:
                raise ProbeError(f"{name}: {x.shape[0]} embeddings for {y.shape[0]} target rows (must be equal, > 0)")

    def fingerprint(self) -> str:
        """A digest of every split's embeddings and targets: results are resumed only for equal data."""
        digest = hashlib.blake2b(digest_size=16)
        for array in (self.x_train, self.y_train, self.x_valid, self.y_valid, self.x_test, self.y_test):
            if array is None:
                digest.update(b"none")
                continue
            array = np.ascontiguousarray(array)
            digest.update(f"{array.dtype.str}{array.shape}".encode())
            digest.update(memoryview(array).cast("B"))
        digest.update(json.dumps(self.labels).encode())
        return digest.hexdigest()

    def standardised(self) -> "ProbeData":
        """Copy with every split standardised by the training split's per-dimension mean and std."""
        mean = self.x_train.mean(axis=0, dtype=np.float64)
        std = self.x_train.std(axis=0, dtype=np.float64)
        std[std < 1e-8] = 1.0  # constant dimensions carry no information; avoid dividing by zero

        def scale(x):
            return None if x is None else ((x - mean) / std).astype(np.float32)

        return ProbeData(scale(self.x_train), self.y_train, scale(self.x_valid), self.y_valid,
                         scale(self.x_test), self.y_test, self.labels)


class MlpProbe(nn.Module):
    """input -> hidden -> ReLU -> dropout -> labels (logits)."""

    def __init__(self, in_features: int, n_labels: int, hidden: int = 512, dropout: float = 0.5):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, n_labels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@dataclass
class ProbeResult:
    """Outcome of one run: the chosen epoch, validation curve and test scores of the chosen weights."""

    config: ProbeConfig
    best_epoch: int
    valid_roc_auc: float
    valid_history: list[float]
    test: TaggingScores | None
    seconds: float
    state_dict: dict[str, torch.Tensor] | None = None

    def to_dict(self) -> dict:
        return {
            "config": dataclasses.asdict(self.config),
            "best_epoch": self.best_epoch,
            "valid_roc_auc": self.valid_roc_auc,
            "valid_history": self.valid_history,
            "test": None if self.test is None else self.test.to_dict(),
            "seconds": self.seconds,
        }


@torch.no_grad()
def predict(model: nn.Module, x: np.ndarray, batch_size: int = 4096) -> np.ndarray:
    """Sigmoid scores of ``model`` on ``x`` (eval mode, batched)."""
    model.eval()
    device = next(model.parameters()).device
    out = [torch.sigmoid(model(torch.from_numpy(x[i : i + batch_size]).to(device))).cpu().numpy()
           for i in range(0, len(x), batch_size)]
    return np.concatenate(out).astype(np.float64)


def _optimizer(model: nn.Module, config: ProbeConfig) -> torch.optim.Optimizer:
    if config.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=config.max_lr, weight_decay=config.weight_decay)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=config.max_lr, weight_decay=config.weight_decay)
    raise ProbeError(f"unknown optimizer {config.optimizer!r} (adam or adamw)")


def train_probe(
    data: ProbeData, config: ProbeConfig = ProbeConfig(), seed: int = 0, standardise: bool = True,
    keep_state: bool = False, device: str | torch.device = "cpu",
) -> ProbeResult:
    """Train one probe; score test with the weights of the best-validation-ROC-AUC epoch.

    Deterministic for a given seed on CPU (initialisation, shuffling and dropout draw from it);
    ``device="cuda"`` trains on the GPU (the training split is moved there once).
    """
    start = time.perf_counter()
    if config.epochs <= config.warmup_epochs:
        warnings.warn(f"{config.epochs} epochs end inside the {config.warmup_epochs}-epoch warm-up: the learning rate "
                      f"never reaches max_lr={config.max_lr} (lower warmup_epochs)", stacklevel=2)
    if standardise:
        data = data.standardised()
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    device = torch.device(device)
    x_train = torch.from_numpy(np.ascontiguousarray(data.x_train, dtype=np.float32)).to(device)
    y_train = torch.from_numpy(np.asarray(data.y_train, dtype=np.float32)).to(device)
    model = MlpProbe(x_train.shape[1], y_train.shape[1], config.hidden, config.dropout).to(device)
    optimizer = _optimizer(model, config)
    loss_fn = nn.BCEWithLogitsLoss()
    x_valid = np.ascontiguousarray(data.x_valid, dtype=np.float32)
    history: list[float] = []
    best_epoch, best_score, best_state = -1, -np.inf, None
    for epoch in range(config.epochs):
        lr = probe_lr(epoch, config.epochs, config.max_lr, config.warmup_epochs, config.decay_start, config.final_lr)
        for group in optimizer.param_groups:
            group["lr"] = lr
        model.train()
        order = torch.randperm(len(x_train), generator=generator).to(device)
        for i in range(0, len(order), config.batch_size):
            batch = order[i : i + config.batch_size]
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(x_train[batch]), y_train[batch])
            loss.backward()
            optimizer.step()
        score = macro_roc_auc(data.y_valid, predict(model, x_valid))
        history.append(score)
        if np.isfinite(score) and score > best_score:  # strict: ties keep the earlier epoch
            best_epoch, best_score = epoch, score
            best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
    if best_state is None:
        raise ProbeError("validation ROC-AUC was never finite: no validation label has both classes")
    model.load_state_dict(best_state)
    test = None
    if data.x_test is not None:
        test = tagging_metrics(data.y_test, predict(model, np.ascontiguousarray(data.x_test, dtype=np.float32)), data.labels)
    return ProbeResult(config, best_epoch, float(best_score), history, test, time.perf_counter() - start,
                       best_state if keep_state else None)


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

