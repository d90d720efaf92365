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

    # a head of block 1 reads vectors of the same size as block 2's: refused, not silently wrong colours
    shallow = run("head", "fit", labels, "-o", tmp_path / "head1", "-m", model, "--blocks", "1", "--no-progress",
                  "--decode-workers", "0")
    assert shallow.exit_code == 0, shallow.output
    refused = run("map", root / "emb", "-o", tmp_path / "map1.png", "--color-by", tmp_path / "head1")
    assert refused.exit_code == 1 and "blocks (2 vs 1)" in refused.output and not (tmp_path / "map1.png").exists()

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


def test_tag_with_a_head_and_timeline_plots(collection, tmp_path):
    import json

    from PIL import Image

    root, data, model = collection
    labels = tmp_path / "mine.tsv"
    labels.write_text((data / "train.tsv").read_text())
    fit = run("head", "fit", labels, "-o", tmp_path / "head", "--audio-root", data, "-m", model, "--blocks", "2",
              "--no-progress", "--decode-workers", "0")
    assert fit.exit_code == 0, fit.output
    tracks = sorted((data / "audio").glob("*.wav"))[:3]

    # the head's model is used when --model is not given; on/off by the head's thresholds
    tagged = run("tag", *tracks, "--head", tmp_path / "head", "--format", "json", "--top-k", "2", "--plot", tmp_path / "plots")
    assert tagged.exit_code == 0, tagged.output
    rows = [json.loads(line) for line in tagged.output.splitlines() if line.startswith("{")]
    assert [row["path"] for row in rows] == [str(t) for t in tracks]
    from maest.heads import load_head, tag_with_head
    import maest

    head = load_head(tmp_path / "head")
    expected = tag_with_head(maest.load_model(model, device="cpu"), tracks[0], head)[:2]
    assert [(t["label"], t["on"]) for t in rows[0]["tags"]] == [(label, on) for label, _, on in expected]
    assert all(abs(t["probability"] - p) < 1e-5 for t, (_, p, _) in zip(rows[0]["tags"], expected))
    pictures = sorted((tmp_path / "plots").glob("*.png"))
    assert [p.stem for p in pictures] == [t.stem for t in tracks]
    assert Image.open(pictures[0]).size[0] == 1200

    # without a head: the model's labels; the plot rows are the model's top labels
    plain = run("tag", tracks[0], "-m", model, "--format", "tsv", "--plot", tmp_path / "plain")
    assert plain.exit_code == 0, plain.output
    lines = plain.output.strip().splitlines()  # the tag rows, then "wrote 1 plot" and the summary (stderr)
    assert len(lines) == 6 and lines[-1].startswith("1 tagged, 0 failed")
    assert (tmp_path / "plain" / f"{tracks[0].stem}.png").is_file()

    ignored = run("tag", tracks[0], "--head", tmp_path / "head", "--overlap", "0.25")
    assert ignored.exit_code == 1 and "do not apply with a head" in ignored.output
    other = tiny_model(tmp_path / "other", seed=7)
    refused = run("tag", tracks[0], "--head", tmp_path / "head", "-m", other)
    assert refused.exit_code == 1 and "HeadMismatchError" in refused.output
