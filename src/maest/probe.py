"""The paper's MLP probe on frozen embeddings, below both :mod:`maest.heads` and :mod:`maest.evaluate`.

Probe: input -> 512 -> ReLU -> dropout -> labels, binary cross-entropy on logits. The weights of the
epoch with the best validation macro ROC-AUC are kept (and scored on test when there is one). The
learning rate follows :func:`probe_lr` (exponential warm-up, hold, linear decay). Named protocols,
the grid search and its resumable records are evaluation's (:mod:`maest.evaluate.probe`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from maest.metrics import TaggingScores, macro_roc_auc, tagging_metrics


def probe_lr(
    epoch: int,
    epochs: int,
    max_lr: float,
    warmup_epochs: int = 10,
    decay_start: int | None = None,
    final_lr: float = 1e-7,
    warmup_start_factor: float = 0.01,
) -> float:
    """Learning rate of 0-based ``epoch``: exponential warm-up, hold, linear decay to ``final_lr``.

    * epochs ``0 .. warmup_epochs``: ``max_lr * warmup_start_factor ** (1 - epoch / warmup_epochs)``,
      a geometric ramp from ``max_lr / 100`` reaching ``max_lr`` at epoch ``warmup_epochs``;
    * ``warmup_epochs .. decay_start``: ``max_lr`` (held);
    * ``decay_start .. epochs - 1``: linear from ``max_lr`` to ``final_lr``, reached at the last epoch.
    ``decay_start=None`` means half-way through the post-warm-up epochs (the paper's "kept constant,
    then decreased"); ``decay_start=warmup_epochs`` is the original repository's warm-up + decay.
    Runs shorter than the warm-up ramp only part-way and never decay.
    """
    if epochs < 1 or not 0 <= epoch < epochs:
        raise ValueError(f"epoch {epoch} outside 0..{epochs - 1}")
    if max_lr <= 0 or final_lr < 0 or warmup_epochs < 0 or not 0 < warmup_start_factor <= 1:
        raise ValueError("learning rates must be positive, warmup_epochs >= 0, 0 < warmup_start_factor <= 1")
    last = epochs - 1
    if decay_start is None:
        decay_start = warmup_epochs + max(0, last - warmup_epochs) // 2
    if decay_start < warmup_epochs:
        raise ValueError(f"decay_start {decay_start} is inside the warm-up ({warmup_epochs} epochs)")
    if epoch < warmup_epochs:
        return max_lr * warmup_start_factor ** (1.0 - epoch / warmup_epochs)
    if epoch <= decay_start or decay_start >= last:
        return max_lr
    return max_lr + (final_lr - max_lr) * (epoch - decay_start) / (last - decay_start)


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
