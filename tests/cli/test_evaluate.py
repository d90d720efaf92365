"""``maest eval`` end to end on a tiny generated MTG-Jamendo-like dataset and a tiny random MAEST."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from eval_data import tiny_jamendo, tiny_model
from maest.cli import app
from maest.evaluate.datasets import MissingAudioError
from maest.evaluate.runner import EvalError, run_eval

FAST = ["--epochs", "12", "--warmup-epochs", "3", "--max-lr", "1e-3", "--probe-batch", "16", "--workers", "1"]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny-eval")
    metadata, audio = tiny_jamendo(root)
    return metadata, audio, tiny_model(root / "model")


def test_maest_eval_end_to_end_and_resume(tiny, tmp_path):
    metadata, audio, model = tiny
    out = tmp_path / "out"
    args = ["eval", "mtg-jamendo-genre", "--metadata", str(metadata), "--audio-root", str(audio), "--model", str(model),
            "-o", str(out), "--blocks", "2", "--no-progress", *FAST]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "| mtg-jamendo-genre |" in result.output
    scores = json.loads((out / "results.json").read_text())
    assert scores["counts"] == {"train": 12, "validation": 6, "test": 6}
    assert scores["tokens"] == ["cls", "dist", "avg"] and scores["blocks"] == 2
    # Three tones, one per tag: even a random 2-block MAEST separates them.
    assert scores["test"]["roc_auc_macro"] > 0.9 and scores["test"]["pr_auc_macro"] > 0.8
    assert 0 <= scores["best_epoch"] < 12
    assert "ROC-AUC" in (out / "results.md").read_text()
    # The paper protocol embeds with the original code's segment rule; its cache folder says so.
    assert scores["segments"] == "original" and "segments: original rule" in (out / "results.md").read_text()
    assert sorted(p.name for p in (out / "embeddings" / "model").iterdir() if p.name.startswith("b2")) == [
        "b2-cda-t1-fnone-o0.5-original", "b2-cda-t1-fnone-o0.5-original.audio-links"]
    assert json.loads((out / "embeddings" / "model" / "b2-cda-t1-fnone-o0.5-original" / "maest-embed.json").read_text()
                      )["segments"] == "original"
    embeddings = sorted((out / "embeddings").rglob("*.npy"))
    assert len(embeddings) == 24
    assert any(p.name.endswith(".npy") and p.parent.name.isdigit() for p in embeddings)  # NN/<id>.npy tree
    stamps = {p: p.stat().st_mtime_ns for p in embeddings}
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0, again.output
    assert {p: p.stat().st_mtime_ns for p in embeddings} == stamps  # cached: nothing re-extracted
    assert json.loads((out / "results.json").read_text())["test"] == scores["test"]


def test_missing_audio_is_reported_then_allowed(tiny, tmp_path):
    metadata, audio, model = tiny
    partial = tmp_path / "audio"
    shutil.copytree(audio, partial)
    gone = sorted(partial.rglob("*.wav"))[:2]
    for path in gone:
        path.unlink()
    args = ["eval", "mtg-jamendo-genre", "--metadata", str(metadata), "--audio-root", str(partial), "--model", str(model),
            "-o", str(tmp_path / "out"), "--blocks", "1", "--tokens", "c", "--no-progress", *FAST]
    refused = CliRunner().invoke(app, args)
    assert refused.exit_code == 1
    assert "missing" in refused.output and "--allow-missing" in refused.output
    # --segments maest overrides the protocol's rule; its cache keeps the name it had before the option.
    allowed = CliRunner().invoke(app, [*args, "--allow-missing", "--segments", "maest"])
    assert allowed.exit_code == 0, allowed.output
    result = json.loads((tmp_path / "out" / "results.json").read_text())
    assert result["segments"] == "maest"
    assert (tmp_path / "out" / "embeddings" / "model" / "b1-c-t1-fnone-o0.5" / "maest-embed.json").is_file()
    assert sum(result["counts"].values()) == 22
    assert sum(v["missing"] for v in result["dropped"].values()) == 2
    assert result["tokens"] == ["cls"]
    check = json.loads((tmp_path / "out" / "audio_check.json").read_text())
    assert sum(s["missing"] for s in check["splits"].values()) == 2


def test_run_eval_library_errors(tiny, tmp_path):
    metadata, audio, model = tiny
    with pytest.raises(EvalError, match="2 blocks"):
        run_eval("mtg-jamendo-genre", metadata, audio, model, tmp_path, progress=False)  # default blocks=7
    with pytest.raises(MissingAudioError):
        run_eval("mtg-jamendo-genre", metadata, tmp_path, model, tmp_path / "o", blocks=1, progress=False)
