"""Experiments: one-pass multi-block features equal per-block inference; plots and CSVs are written."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from eval_data import tiny_jamendo, tiny_model
from maest.cli import app
from maest.evaluate.experiments import compare_experiment, freq_rows_to_drop, patchout_experiment
from maest.evaluate.features import FeatureCacheError, extract_features, parse_tokens
from maest.inference import load_model

PROBE = {"epochs": 6, "warmup_epochs": 2, "max_lr": 1e-3, "batch_size": 16}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny-exp")
    metadata, audio = tiny_jamendo(root, counts=(9, 6, 6))
    return metadata, audio, tiny_model(root / "model"), tiny_model(root / "other", seed=1)


def _csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_one_pass_features_equal_per_block_embeddings(tiny, tmp_path):
    metadata, audio, model, _ = tiny
    pipeline = load_model(model, device="cpu")
    rel = sorted(p.relative_to(audio).as_posix() for p in audio.rglob("*.*"))[:3]
    features, failures = extract_features(pipeline, rel, audio, tmp_path / "f", [1, 2], progress=False)
    assert failures == {}
    for block in (1, 2):
        for tokens in (("cls",), ("dist", "avg"), ("cls", "dist", "avg")):
            one_pass = features.load(rel, block, tokens)
            direct = np.stack([pipeline.embed(audio / r, blocks=block, tokens=tokens) for r in rel])
            np.testing.assert_allclose(one_pass, direct, atol=1e-5)
    with pytest.raises(FeatureCacheError, match="other folder|another folder"):
        extract_features(pipeline, rel, audio, tmp_path / "f", [2], progress=False)  # settings differ
    assert parse_tokens("cda") == ("cls", "dist", "avg") and parse_tokens("cls,avg") == ("cls", "avg")


def test_feature_failures_go_to_a_merged_tsv(tiny, tmp_path, audio_dir):
    import shutil

    from maest.failures import read_failures

    _, audio, model, _ = tiny
    pipeline = load_model(model, device="cpu")
    good = sorted(p.relative_to(audio).as_posix() for p in audio.rglob("*.wav"))[0]
    root = tmp_path / "audio"
    (root / good).parent.mkdir(parents=True)
    shutil.copy(audio / good, root / good)
    shutil.copy(audio_dir / "empty.wav", root / "bad.wav")
    features, failures = extract_features(pipeline, [good, "bad.wav"], root, tmp_path / "f", [2], progress=False)
    assert set(failures) == {"bad.wav"} and "empty" in failures["bad.wav"]
    assert read_failures(tmp_path / "f" / "failures.tsv") == failures
    assert features.load([good], 2, ("cls",)).shape == (1, 32)
    assert extract_features(pipeline, [good], root, tmp_path / "f", [2], progress=False)[1] == {}
    assert read_failures(tmp_path / "f" / "failures.tsv") == failures  # a subset rerun keeps them


def test_blocks_command_writes_plot_and_numbers_and_resumes(tiny, tmp_path):
    metadata, audio, model, _ = tiny
    args = ["experiment", "blocks", "mtg-jamendo-genre", "--metadata", str(metadata), "--audio-root", str(audio),
            "--model", str(model), "-o", str(tmp_path), "--blocks", "1-2", "--tokens", "c,a,cda", "--epochs", "6", "--warmup-epochs", "2",
            "--max-lr", "1e-3", "--probe-batch", "16", "--workers", "2", "--no-progress"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = _csv(tmp_path / "blocks.csv")
    assert {(r["block"], r["tokens"]) for r in rows} == {(b, t) for b in "12" for t in ("c", "a", "cda")}
    assert all(0.0 <= float(r["roc_auc"]) <= 1.0 and 0.0 <= float(r["map"]) <= 1.0 for r in rows)
    png = (tmp_path / "blocks.png").read_bytes()
    assert png.startswith(PNG_MAGIC) and len(png) > 5000
    assert "| model | block |" in (tmp_path / "blocks.md").read_text()
    jsonl = (tmp_path / "blocks.jsonl").read_text()
    assert len(jsonl.splitlines()) == 6
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0, again.output
    assert (tmp_path / "blocks.jsonl").read_text() == jsonl  # resumed: no probe retrained
    # The protocol's segment rule (original) names the feature cache; --segments maest makes its own
    # cache (the name it had before the option) and its own probes, never reusing the other rule's.
    assert "Segments: the original rule." in (tmp_path / "blocks.md").read_text()
    assert (tmp_path / "features" / "model-o0.5-original" / "features.json").is_file()
    one_probe = [{"1-2": "2", "c,a,cda": "c"}.get(a, a) for a in args]
    maest = CliRunner().invoke(app, [*one_probe, "--segments", "maest"])
    assert maest.exit_code == 0, maest.output
    assert "segments" not in json.loads((tmp_path / "features" / "model-o0.5" / "features.json").read_text())
    assert len((tmp_path / "blocks.jsonl").read_text().splitlines()) == 7


def test_patchout_experiment(tiny, tmp_path):
    metadata, audio, model, _ = tiny
    rows = patchout_experiment("mtg-jamendo-genre", metadata, audio, model, tmp_path, time_patchout=(1, 2),
                               freq_patchout=(3,), block=2, probe_overrides=PROBE, workers=1, progress=False)
    assert [(r["patchout_time"], r["patchout_freq_rows"]) for r in rows] == [(1, 0), (2, 0), (1, 3)]
    assert all(r["segments_per_s"] > 0 for r in rows)
    assert len(_csv(tmp_path / "patchout.csv")) == 3
    assert (tmp_path / "patchout.png").read_bytes().startswith(PNG_MAGIC)
    # The paper protocol embeds with the original segment rule: its caches are named and keyed by it.
    settings = json.loads((tmp_path / "features" / "model-b2-t1-f3-o0.5-original" / "features.json").read_text())
    assert settings["embedding"]["segments"] == "original"
    # The paper's frequency patchout (model.md): 3 rows = the first and the last two, 4 = the first two
    # and the last two.
    assert settings["embedding"]["patchout_freq"] == [0, 7, 8]
    assert freq_rows_to_drop(9, 3) == (0, 7, 8) and freq_rows_to_drop(9, 4) == (0, 1, 7, 8)
    assert freq_rows_to_drop(9, 1) == (8,) and freq_rows_to_drop(9, 0) == ()


def test_compare_experiment(tiny, tmp_path):
    metadata, audio, model, other = tiny
    rows = compare_experiment("mtg-jamendo-genre", metadata, audio, [model, other], tmp_path, blocks=1,
                              tokens=("cls", "avg"), probe_overrides=PROBE, probe_workers=1, progress=False)
    assert [r["model"] for r in rows] == ["model", "other"]
    assert len(_csv(tmp_path / "compare.csv")) == 2
    assert (tmp_path / "compare.png").read_bytes().startswith(PNG_MAGIC)
    assert (tmp_path / "other" / "results.md").is_file()


def test_experiment_results_are_not_reused_for_other_data(tiny, tmp_path):
    """An output folder reused with other split data (another subset, changed labels) reruns the probes."""
    from maest.evaluate.datasets import Dataset, Split, load_dataset
    from maest.evaluate.experiments import blocks_experiment

    metadata, audio, model, _ = tiny
    dataset = load_dataset("mtg-jamendo-genre", metadata)
    train = dataset.splits["train"]
    changed = Dataset(dataset.name, dataset.labels,
                      {**dataset.splits, "train": Split("train", train.paths, np.roll(train.targets, 1, axis=0), train.ids)})
    options = dict(blocks=[1], token_stacks=["c"], probe_overrides=PROBE, workers=1, progress=False)
    blocks_experiment(dataset, None, audio, model, tmp_path / "shared", **options)
    reused = blocks_experiment(changed, None, audio, model, tmp_path / "shared", **options)
    fresh = blocks_experiment(changed, None, audio, model, tmp_path / "fresh", **options)
    assert [r["valid_roc_auc"] for r in reused] == pytest.approx([r["valid_roc_auc"] for r in fresh], abs=1e-6)
    assert [r["roc_auc"] for r in reused] == pytest.approx([r["roc_auc"] for r in fresh], abs=1e-6)


def test_compare_experiment_keeps_same_named_checkpoints_apart(tiny, tmp_path):
    """Two training runs' ``model-last`` folders: one row and one output folder each, in the given order."""
    import shutil

    metadata, audio, model, other = tiny
    first, second = tmp_path / "run-a" / "model-last", tmp_path / "run-b" / "model-last"
    shutil.copytree(model, first)
    shutil.copytree(other, second)
    rows = compare_experiment("mtg-jamendo-genre", metadata, audio, [first, second], tmp_path / "out", blocks=1,
                              tokens=("cls",), probe_overrides=PROBE, probe_workers=1, progress=False)
    assert [r["model"] for r in rows] == ["run-a_model-last", "run-b_model-last"]
    assert (tmp_path / "out" / "run-a_model-last" / "results.md").is_file()
    assert (tmp_path / "out" / "run-b_model-last" / "results.md").is_file()
