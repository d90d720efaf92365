"""`maest head fit`, `maest index build|add`, `maest similar`, `maest map` as a user runs them."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

pytest.importorskip("faiss")
pytest.importorskip("sklearn")

from eval_data import tiny_model  # noqa: E402

from maest.cli import app  # noqa: E402
from maest.train.demo import make_demo_data  # noqa: E402


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    root = tmp_path_factory.mktemp("collection")
    data = make_demo_data(root / "demo", tracks=36, seconds=2.0, classes=4, progress=False)
    model = tiny_model(root / "tiny")
    result = run("embed", data / "audio", "-o", root / "emb", "-m", model, "--blocks", "2", "--no-progress",
                 "--decode-workers", "0")
    assert result.exit_code == 0, result.output
    return root, data, model


def test_index_similar_and_add(collection, tmp_path):
    root, data, model = collection
    result = run("index", "build", root / "emb", "-o", tmp_path / "idx")
    assert result.exit_code == 0, result.output
    assert "36 tracks, exact cosine index" in result.output

    by_key = run("similar", "track00000.npy", "--index", tmp_path / "idx", "-k", "3", "--format", "tsv")
    assert by_key.exit_code == 0, by_key.output
    rows = [line.split("\t") for line in by_key.output.splitlines()]
    assert len(rows) == 3 and all(key != "track00000.npy" for key, _ in rows)
    similarities = [float(s) for _, s in rows]
    assert similarities == sorted(similarities, reverse=True)

    # an audio query is embedded like the index (model, blocks, tokens from maest-embed.json)
    by_audio = run("similar", data / "audio" / "track00000.wav", "--index", tmp_path / "idx", "-k", "1",
                   "--format", "tsv")
    assert by_audio.exit_code == 0, by_audio.output
    key, similarity = by_audio.output.split()
    assert key == "track00000.npy" and float(similarity) > 0.9999

    # adding: a new output folder with the same settings; a removed track is reported, not a crash
    shutil.copytree(root / "emb", tmp_path / "emb2")
    (tmp_path / "emb2" / "track00001.npy").unlink()
    np.save(tmp_path / "emb2" / "extra.npy", np.load(root / "emb" / "track00002.npy"))
    added = run("index", "add", tmp_path / "idx", tmp_path / "emb2")
    assert added.exit_code == 0, added.output
    assert "added 1, skipped 35" in added.output and "track00001.npy" in added.output

    unknown = run("similar", "nope", "--index", tmp_path / "idx")
    assert unknown.exit_code == 1 and "nope" in unknown.output


def test_head_fit_then_map_coloured_by_the_head(collection, tmp_path):
    root, data, model = collection
    labels = tmp_path / "mine.tsv"
    labels.write_text((data / "train.tsv").read_text() + (data / "validation.tsv").read_text())
    shutil.copytree(data / "audio", tmp_path / "audio")
    fit = run("head", "fit", labels, "-o", tmp_path / "head", "-m", model, "--blocks", "2", "--no-progress",
              "--decode-workers", "0")
    assert fit.exit_code == 0, fit.output
    assert "fitted a multi-label head: 4 labels" in fit.output and "ROC-AUC" in fit.output
    assert (tmp_path / "head" / "head.json").is_file()

    picture = run("map", root / "emb", "-o", tmp_path / "map.png", "--color-by", tmp_path / "head", "--method", "pca")
    assert picture.exit_code == 0, picture.output
    assert "36 tracks, PCA map" in picture.output and (tmp_path / "map.png").stat().st_size > 10_000

    wrong = run("head", "fit", tmp_path / "missing.tsv", "-o", tmp_path / "h2", "-m", model)
    assert wrong.exit_code == 1 and "missing.tsv" in wrong.output


def test_map_coloured_by_genre_tags_the_audio_behind_each_key(collection, tmp_path):
    root, data, model = collection
    picture = run("map", root / "emb", "-o", tmp_path / "map.png", "--color-by", "genre", "--audio-root",
                  data / "audio", "-m", model, "--method", "pca", "--decode-workers", "0")
    assert picture.exit_code == 0, picture.output
    assert "36 tracks, PCA map" in picture.output and (tmp_path / "map.png").is_file()
    lost = run("map", root / "emb", "-o", tmp_path / "lost.png", "--color-by", "genre", "-m", model)
    assert lost.exit_code == 1 and "--audio-root" in lost.output and not (tmp_path / "lost.png").exists()
