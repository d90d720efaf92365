"""Damaged head folders: each damage is one HeadFormatError naming the file, at load; `maest tag` exits 1 with that line."""

from __future__ import annotations

import json
import pickle
import shutil

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from maest.cli import app
from maest.heads import EmbeddingSpec, HeadError, HeadFormatError, load_head
from maest.heads.head import head_from_parts

DIM, LABELS = 8, ["calm", "loud", "odd"]


def _head(kind: str):
    rng = np.random.default_rng(0)
    spec = EmbeddingSpec(model_name="tiny-0", weights="f" * 64, dim=DIM, blocks=2)
    if kind == "logistic":
        weights = {"weight": rng.normal(size=(3, DIM)), "bias": rng.normal(size=3)}
    else:
        weights = {"net.0.weight": rng.normal(size=(5, DIM)), "net.0.bias": rng.normal(size=5),
                   "net.3.weight": rng.normal(size=(3, 5)), "net.3.bias": rng.normal(size=3)}
    return head_from_parts(LABELS, "multi", spec, kind, rng.normal(size=DIM), np.ones(DIM) * 2, weights,
                           np.array([0.5, 0.4, 0.6]), {}, {})


@pytest.fixture
def good(tmp_path):
    return _head("logistic").save(tmp_path / "good")


def _copy(good, tmp_path, name="bad"):
    return shutil.copytree(good, tmp_path / name)


def _edit_weights(folder, change):
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(folder / "head.safetensors"))
    change(tensors)
    save_file(tensors, str(folder / "head.safetensors"))


def _edit_meta(folder, change):
    meta = json.loads((folder / "head.json").read_text())
    meta = change(meta)
    (folder / "head.json").write_text(json.dumps(meta))


def _set(key, value):
    def change(tensors):
        tensors[key] = value(tensors[key])
    return change


DAMAGES = {
    "pickle": (lambda f: (f / "head.safetensors").write_bytes(pickle.dumps({"weight": [1.0]})),
               "head.safetensors", "pickle or torch.save"),
    "torch.save": (lambda f: torch.save({"weight": torch.ones(3)}, f / "head.safetensors"),
                   "head.safetensors", "pickle or torch.save"),
    "truncated": (lambda f: (f / "head.safetensors").write_bytes((f / "head.safetensors").read_bytes()[:60]),
                  "head.safetensors", "truncated or damaged"),
    "empty": (lambda f: (f / "head.safetensors").write_bytes(b""), "head.safetensors", "empty"),
    "missing tensor": (lambda f: _edit_weights(f, lambda t: t.pop("bias")), "head.safetensors", "no tensor 'bias'"),
    "wrong shape": (lambda f: _edit_weights(f, _set("weight", lambda w: w[:2])), "head.safetensors", "shape"),
    "NaN weights": (lambda f: _edit_weights(f, _set("weight", lambda w: w * float("nan"))),
                    "head.safetensors", "'weight' holds NaN or infinity"),
    "zero std": (lambda f: _edit_weights(f, _set("input_std", torch.zeros_like)), "head.safetensors", "zero"),
    "inf bias": (lambda f: _edit_weights(f, _set("bias", lambda b: b + float("inf"))),
                 "head.safetensors", "'bias' holds NaN or infinity"),
    "no classifier": (lambda f: _edit_meta(f, lambda m: {k: v for k, v in m.items() if k != "classifier"}),
                      "head.json", "'classifier'"),
    "no embedding": (lambda f: _edit_meta(f, lambda m: {k: v for k, v in m.items() if k != "embedding"}),
                     "head.json", "'embedding'"),
    "JSON array": (lambda f: (f / "head.json").write_text("[1, 2, 3]"), "head.json", "JSON list"),
    "not JSON": (lambda f: (f / "head.json").write_text("{\"format\": "), "head.json", "not valid JSON"),
    "NaN thresholds": (lambda f: _edit_meta(f, lambda m: {**m, "thresholds": [float("nan"), 0.5, 0.5]}),
                       "head.json", "'thresholds' holds NaN"),
}


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_a_damaged_head_is_one_head_error_naming_the_file(good, tmp_path, damage):
    make, file_name, problem = DAMAGES[damage]
    bad = _copy(good, tmp_path)
    make(bad)
    with pytest.raises(HeadFormatError) as caught:
        load_head(bad)
    message = str(caught.value)
    assert str(bad / file_name) in message and problem in message and "\n" not in message
    assert isinstance(caught.value, HeadError)


def test_the_undamaged_heads_load_and_predict_finite_probabilities(good, tmp_path):
    for kind in ("logistic", "mlp"):
        head = load_head(_head(kind).save(tmp_path / kind))
        p = head.predict(np.random.default_rng(1).normal(size=(4, DIM)))
        assert p.shape == (4, 3) and np.all(np.isfinite(p))


def test_an_mlp_head_missing_its_second_layer_is_refused(tmp_path):
    folder = _head("mlp").save(tmp_path / "mlp")
    _edit_weights(folder, lambda t: t.pop("net.3.bias"))
    with pytest.raises(HeadFormatError, match="no tensor 'net.3.bias'"):
        load_head(folder)


def test_a_head_built_in_memory_with_nan_thresholds_is_refused():
    spec = EmbeddingSpec(model_name="tiny-0", weights="f" * 64, dim=DIM, blocks=2)
    with pytest.raises(HeadFormatError, match="thresholds hold NaN"):
        head_from_parts(LABELS, "multi", spec, "logistic", np.zeros(DIM), np.ones(DIM),
                        {"weight": np.zeros((3, DIM)), "bias": np.zeros(3)}, np.array([0.5, np.nan, 0.5]), {}, {})


@pytest.mark.parametrize("damage", ["pickle", "NaN weights", "JSON array", "no classifier", "NaN thresholds"])
def test_maest_tag_with_a_damaged_head_exits_1_with_one_line(good, tmp_path, damage):
    make, file_name, _ = DAMAGES[damage]
    bad = _copy(good, tmp_path)
    make(bad)
    (tmp_path / "song.wav").write_bytes(b"")  # never reached: the head is refused first
    result = CliRunner().invoke(app, ["tag", str(tmp_path / "song.wav"), "--head", str(bad), "--format", "json"])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: HeadFormatError: ") and file_name in lines[0]
    assert "Traceback" not in result.output
