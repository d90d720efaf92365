"""Inference precisions: bf16/fp16 autocast agree with fp32; impossible pairs (and int8, measured too slow) refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from typer.testing import CliRunner

from eval_data import tiny_model
from maest.cli import app
from maest.extraction import SettingsMismatchError, extract
from maest.inference import PrecisionError, load_model, resolve_precision


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return tiny_model(tmp_path_factory.mktemp("ckpt") / "tiny")


@pytest.fixture(scope="module")
def waveform() -> np.ndarray:
    rng = np.random.default_rng(0)
    t = np.arange(16000 * 4) / 16000
    return (0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_each_cpu_precision_is_close_to_fp32(checkpoint, waveform, precision):
    reference = load_model(checkpoint, "cpu", precision="fp32").embed(waveform, blocks=2, per_segment=True)[0]
    pipeline = load_model(checkpoint, "cpu", precision=precision)
    assert pipeline.precision == precision
    embeddings = pipeline.embed(waveform, blocks=2, per_segment=True)[0]
    assert embeddings.dtype == np.float32 and embeddings.shape == reference.shape
    assert not np.array_equal(embeddings, reference), "the precision should change the arithmetic"
    for row, expected in zip(embeddings, reference):
        assert cosine(row, expected) >= 0.99


def test_default_precision_is_fp32_on_the_cpu_and_bf16_on_gpus_that_have_it(monkeypatch):
    assert resolve_precision(None, "cpu") == "fp32"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert resolve_precision(None, "cuda") == "bf16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert resolve_precision(None, "cuda") == "fp16"


def test_impossible_precisions_are_refused_in_one_line(monkeypatch):
    with pytest.raises(PrecisionError, match="one of fp32, bf16, fp16, got 'fp8'"):
        resolve_precision("fp8", "cpu")
    with pytest.raises(PrecisionError, match="got 'int8'"):  # not shipped: slower than fp32 (benchmarks/int8.py)
        resolve_precision("int8", "cpu")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    with pytest.raises(PrecisionError, match="no bf16.*fp16"):
        resolve_precision("bf16", "cuda")
    with pytest.raises(PrecisionError):
        load_model("not-even-read", "cpu", precision="int4")


def test_precision_is_a_setting_of_the_output_folder(tmp_path, checkpoint, waveform):
    sf.write(tmp_path / "a.wav", waveform, 16000)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["embed", str(tmp_path / "a.wav"), "-o", str(out), "-m", str(checkpoint),
                                      "--blocks", "2", "--precision", "bf16", "--decode-workers", "0", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "maest-embed.json").read_text())["precision"] == "bf16"
    with pytest.raises(SettingsMismatchError, match=r"precision \(bf16 vs fp32\)"):
        extract([tmp_path / "a.wav"], out, str(checkpoint), blocks=2, progress=False)
    refused = CliRunner().invoke(app, ["embed", str(tmp_path / "a.wav"), "-o", str(tmp_path / "o2"), "-m",
                                       str(checkpoint), "--precision", "fp8"])
    assert refused.exit_code == 1 and "fp32, bf16, fp16" in refused.output


def test_ray_options_need_the_ray_engine(tmp_path, checkpoint):
    result = CliRunner().invoke(app, ["embed", str(tmp_path), "-o", str(tmp_path / "o"), "-m", str(checkpoint),
                                      "--ray-address", "auto"])
    assert result.exit_code == 1 and "--ray-address does not apply to --engine local" in result.output
    result = CliRunner().invoke(app, ["embed", str(tmp_path), "-o", str(tmp_path / "o"), "--engine", "spark"])
    assert result.exit_code == 1 and "must be one of local, ray, got 'spark'" in result.output


def test_a_loaded_pipeline_keeps_its_precision(tmp_path, checkpoint, waveform):
    sf.write(tmp_path / "a.wav", waveform, 16000)
    pipeline = load_model(checkpoint, "cpu", precision="bf16")
    with pytest.raises(ValueError, match="runs at bf16, not fp32"):
        extract([tmp_path / "a.wav"], tmp_path / "out", pipeline, blocks=2, precision="fp32", progress=False)
    assert not (tmp_path / "out" / "maest-embed.json").exists()
