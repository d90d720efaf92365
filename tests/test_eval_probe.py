"""The MLP probe: schedule boundaries, learning, best-epoch selection, determinism, grid search."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from maest.metrics import macro_roc_auc, tagging_metrics
from maest.evaluate.probe import (
    PAPER_GRID,
    PROTOCOLS,
    MlpProbe,
    ProbeConfig,
    ProbeData,
    ProbeError,
    expand_grid,
    grid_search,
    predict,
    train_probe,
)
from maest.evaluate.schedule import probe_lr

pytestmark = pytest.mark.usefixtures("one_thread")


FAST = ProbeConfig(epochs=12, warmup_epochs=3, max_lr=1e-3, batch_size=64)


def synthetic(seed=0, n=(400, 150, 150), dim=24, labels=4, noise=1.0):
    """Targets are thresholded linear functions of the embeddings (+ noise): learnable, not trivial."""
    rng = np.random.default_rng(seed)
    weights = rng.normal(size=(dim, labels))
    out = []
    for count in n:
        x = rng.normal(size=(count, dim)) * 5 + 3  # unstandardised on purpose
        y = ((x - 3) / 5) @ weights + noise * rng.normal(size=(count, labels)) > 0.5
        out += [x.astype(np.float32), y]
    return ProbeData(*out, labels=[f"l{j}" for j in range(labels)])


# -- schedule -----------------------------------------------------------------------------------
def test_paper_schedule_boundaries():
    lr = [probe_lr(e, 30, 1e-3) for e in range(30)]
    assert lr[0] == pytest.approx(1e-5)  # warm-up starts at max / 100
    ratios = np.array(lr[1:11]) / np.array(lr[:10])
    np.testing.assert_allclose(ratios, 100 ** 0.1, rtol=1e-12)  # exponential ramp
    assert lr[10] == lr[19] == 1e-3  # held: epochs 10..19 (decay starts half-way after warm-up)
    assert lr[20] < 1e-3
    np.testing.assert_allclose(np.diff(lr[19:]), (1e-7 - 1e-3) / 10, rtol=1e-9)  # linear
    assert lr[29] == pytest.approx(1e-7, rel=1e-9)


def test_original_repo_schedule_decays_right_after_warmup():
    config = PROTOCOLS["original-repo"].config
    lr = [probe_lr(e, config.epochs, config.max_lr, config.warmup_epochs, config.decay_start) for e in range(60)]
    assert lr[10] == 1e-4 and lr[11] < 1e-4
    assert lr[59] == pytest.approx(1e-7, rel=1e-9)
    assert all(a > b for a, b in zip(lr[10:], lr[11:]))


def test_schedule_rejects_bad_arguments():
    with pytest.raises(ValueError):
        probe_lr(30, 30, 1e-3)
    with pytest.raises(ValueError):
        probe_lr(0, 30, 1e-3, warmup_epochs=10, decay_start=5)
    assert probe_lr(4, 5, 1e-3) < 1e-3  # shorter than the warm-up: ramps part-way, never decays


def test_protocols_are_as_documented():
    paper, repo = PROTOCOLS["paper"], PROTOCOLS["original-repo"]
    assert (paper.config.optimizer, paper.config.weight_decay, paper.config.batch_size, paper.config.dropout,
            paper.config.epochs) == ("adam", 1e-3, 128, 0.5, 30)
    assert paper.tokens == ("cls", "dist", "avg") and paper.blocks == 7
    assert len(expand_grid(paper.config, PAPER_GRID)) == 3 * 6 * 2 * 4
    assert (repo.config.optimizer, repo.config.max_lr, repo.config.weight_decay, repo.config.epochs,
            repo.config.decay_start, repo.config.batch_size, repo.config.dropout) == ("adamw", 1e-4, 1e-3, 60, 10, 128, 0.5)
    assert repo.tokens == ("cls",) and repo.grid == {}


# -- training -----------------------------------------------------------------------------------
def test_standardisation_uses_training_statistics():
    data = synthetic()
    std = data.standardised()
    np.testing.assert_allclose(std.x_train.mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(std.x_train.std(0), 1, atol=1e-4)
    expected = (data.x_valid - data.x_train.mean(0)) / data.x_train.std(0)
    np.testing.assert_allclose(std.x_valid, expected, atol=1e-4)


def test_probe_learns_and_scores_test_with_best_validation_weights():
    data = synthetic()
    result = train_probe(data, FAST, seed=0, keep_state=True)
    assert result.test.roc_auc_macro > 0.9
    assert result.valid_roc_auc == max(result.valid_history)
    assert result.best_epoch == int(np.argmax(result.valid_history))
    assert len(result.valid_history) == FAST.epochs
    # The reported test scores are those of the stored best-epoch weights, not the last epoch's.
    std = data.standardised()
    model = MlpProbe(24, 4, FAST.hidden, FAST.dropout)
    model.load_state_dict(result.state_dict)
    assert macro_roc_auc(std.y_valid, predict(model, std.x_valid)) == pytest.approx(result.valid_roc_auc, abs=1e-12)
    again = tagging_metrics(std.y_test, predict(model, std.x_test))
    assert again.roc_auc_macro == pytest.approx(result.test.roc_auc_macro, abs=1e-12)
    assert again.pr_auc_macro == pytest.approx(result.test.pr_auc_macro, abs=1e-12)


def test_best_epoch_is_not_simply_the_last():
    # A large lr on few noisy examples overfits: validation peaks before the end, and the early
    # weights (not the last ones) are the ones scored.
    data = synthetic(seed=1, n=(60, 200, 200), noise=2.0)
    config = dataclasses.replace(FAST, epochs=25, max_lr=3e-2, dropout=0.0, warmup_epochs=1, decay_start=24)
    result = train_probe(data, config, seed=0)
    assert result.best_epoch < config.epochs - 1
    assert result.valid_history[-1] < result.valid_roc_auc


def test_probe_is_deterministic_given_a_seed():
    data = synthetic()
    a = train_probe(data, FAST, seed=3)
    b = train_probe(data, FAST, seed=3)
    c = train_probe(data, FAST, seed=4)
    assert a.valid_history == b.valid_history and a.test.roc_auc_macro == b.test.roc_auc_macro
    assert a.valid_history != c.valid_history


def test_inconsistent_inputs_raise():
    data = synthetic()
    with pytest.raises(ProbeError):
        ProbeData(data.x_train, data.y_train[:-1], data.x_valid, data.y_valid)
    with pytest.raises(ProbeError):
        ProbeData(data.x_train, data.y_train, data.x_valid[:, :3], data.y_valid)
    with pytest.raises(ProbeError, match="optimizer"):
        train_probe(data, dataclasses.replace(FAST, optimizer="sgd", epochs=1, warmup_epochs=0))


# -- grid search --------------------------------------------------------------------------------
def test_grid_search_parallel_resumable_and_chosen_on_validation(tmp_path):
    data = synthetic(n=(200, 100, 100))
    base = dataclasses.replace(FAST, epochs=4, warmup_epochs=2)
    grid = {"max_lr": (1e-3, 1e-5), "dropout": (0.5, 0.75)}
    result = grid_search(data, tmp_path, base, grid, workers=2, seed=0, progress=False)
    lines = (tmp_path / "results.jsonl").read_text().splitlines()
    assert len(lines) == 4 and len(result.records) == 4
    assert result.best["valid_roc_auc"] == max(r["valid_roc_auc"] for r in result.records)
    assert result.best_config.max_lr in (1e-3, 1e-5)
    # Parallel workers give the same numbers as training in this process.
    single = train_probe(data, ProbeConfig(**result.records[0]["config"]), seed=0)
    assert single.valid_history == pytest.approx(result.records[0]["valid_history"], abs=1e-6)
    # Rerun: nothing retrained. A truncated last line (a crash mid-write) is redone, and a
    # larger grid only trains the new configs.
    (tmp_path / "results.jsonl").write_text("\n".join(lines[:3]) + "\n" + lines[3][:20])
    bigger = {"max_lr": (1e-3, 1e-5, 1e-4), "dropout": (0.5, 0.75)}
    again = grid_search(data, tmp_path, base, bigger, workers=1, seed=0, progress=False)
    records = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()[3:] if line.startswith("{\"config")]
    assert len(again.records) == 6
    assert len(records) == 3  # the truncated config + the two new ones
    assert {r["config"]["max_lr"] for r in records} >= {1e-4}
    assert torch.get_num_threads() == 1  # the in-process path restored the thread count


def test_runs_shorter_than_the_warmup_warn():
    data = synthetic(n=(40, 20, 20))
    with pytest.warns(UserWarning, match="warm-up"):
        train_probe(data, dataclasses.replace(FAST, epochs=2, warmup_epochs=3))


def test_grid_search_does_not_reuse_results_of_other_data(tmp_path):
    """An output folder reused for another dataset (or a changed split) must not return the old scores."""
    base = dataclasses.replace(FAST, epochs=3, warmup_epochs=1)
    first, second = synthetic(seed=0, n=(120, 60, 60)), synthetic(seed=1, n=(120, 60, 60))
    grid_search(first, tmp_path / "shared", base, {}, workers=1, seed=0, progress=False)
    reused = grid_search(second, tmp_path / "shared", base, {}, workers=1, seed=0, progress=False)
    fresh = grid_search(second, tmp_path / "fresh", base, {}, workers=1, seed=0, progress=False)
    assert reused.best["valid_history"] == pytest.approx(fresh.best["valid_history"], abs=1e-6)
    assert reused.best["test"]["roc_auc_macro"] == pytest.approx(fresh.best["test"]["roc_auc_macro"], abs=1e-6)
    # The same data resumes without retraining.
    lines = (tmp_path / "shared" / "results.jsonl").read_text()
    grid_search(second, tmp_path / "shared", base, {}, workers=1, seed=0, progress=False)
    assert (tmp_path / "shared" / "results.jsonl").read_text() == lines
