"""`maest tag --plot` names, titles and failures (issue 18 items 6 and 16), and what the pictures show (item 18)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from typer.testing import CliRunner

pytest.importorskip("matplotlib")

from maest import plots  # noqa: E402
from maest.checkpoints import save_native  # noqa: E402
from maest.cli import app  # noqa: E402
from maest.configs import MaestConfig  # noqa: E402
from maest.heads import EmbeddingSpec  # noqa: E402
from maest.heads.head import head_from_parts  # noqa: E402
from maest.model import Maest  # noqa: E402
from maest.plot_files import display_name, plot_path, plot_source, track_source  # noqa: E402

LABELS = ["Rock---Punk", "Jazz---Bop", "Pop---Ballad"]
LONG = "x" * 251 + ".wav"  # 255 bytes: the longest name ext4 takes


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "tiny"
    save_native(Maest(MaestConfig(depth=2, width=32, heads=2, num_classes=3, segment_frames=64, labels=LABELS,
                                  name="tiny")), path)
    return str(path)


def _wav(path: Path, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, (0.1 * np.random.default_rng(seed).normal(size=24000)).astype(np.float32), 16000)
    return path


def _tag(*args):
    return CliRunner().invoke(app, ["tag", *map(str, args)])


def _png_text(path: Path) -> dict:
    from PIL import Image

    with Image.open(path) as image:
        return dict(image.text)


def test_two_long_identical_names_are_both_plotted_and_the_run_goes_on(tmp_path, checkpoint):
    music = tmp_path / "music"
    tracks = [_wav(music / "a" / LONG, 0), _wav(music / "b" / LONG, 1), *(_wav(music / "c" / f"t{i}.wav", i)
                                                                        for i in range(3))]
    out = tmp_path / "plots"
    result = _tag(music, "--model", checkpoint, "--plot", out, "--format", "tsv")
    assert result.exit_code == 0, result.output
    assert {line.split("\t")[0] for line in result.output.splitlines() if "\t" in line} == {str(t) for t in tracks}
    pngs = sorted(out.glob("*.png"))
    assert len(pngs) == 5 and all(len(os.fsencode(p.name)) <= 255 for p in pngs)
    sources = {_png_text(p)["Source"]: p for p in pngs}
    assert set(sources) == {track_source(t) for t in tracks}
    titles = {_png_text(sources[track_source(t)])["Title"] for t in tracks[:2]}
    assert len(titles) == 2 and any("a/xxx" in t for t in titles) and any("b/xxx" in t for t in titles)
    assert "wrote 5 plots" in result.output


def test_a_rerun_never_overwrites_another_tracks_plot(tmp_path, checkpoint):
    first, second = _wav(tmp_path / "a" / "song.wav", 0), _wav(tmp_path / "b" / "song.wav", 1)
    out = tmp_path / "plots"
    assert _tag(first, "--model", checkpoint, "--plot", out).exit_code == 0
    assert plot_source(out / "song.png") == track_source(first)
    result = _tag(second, "--model", checkpoint, "--plot", out)
    assert result.exit_code == 0 and "wrote 1 plot to" in result.output  # one plot: singular
    assert plot_source(out / "song.png") == track_source(first)  # kept
    hashed = [p for p in out.glob("song-*.png")]
    assert len(hashed) == 1 and plot_source(hashed[0]) == track_source(second)
    before = (out / "song.png").stat().st_mtime_ns
    assert _tag(first, "--model", checkpoint, "--plot", out).exit_code == 0  # its own plot: replaced in place
    assert sorted(p.name for p in out.glob("*.png")) == sorted(["song.png", hashed[0].name])
    assert (out / "song.png").stat().st_mtime_ns >= before
    (out / "mine.png").write_bytes(b"the user's own picture")  # not a plot of ours: never taken
    assert plot_path(out, tmp_path / "mine.wav") != out / "mine.png"


def test_one_plot_that_cannot_be_written_is_reported_and_the_rest_go_on(tmp_path, checkpoint):
    tracks = [_wav(tmp_path / "music" / f"{name}.wav", i) for i, name in enumerate(("a", "b", "c"))]
    out = tmp_path / "plots"
    blocked = [plot_path(out, tracks[1])]
    blocked[0].mkdir(parents=True)  # a folder where b's plot would go, and where its hashed name would go
    blocked.append(plot_path(out, tracks[1]))
    blocked[1].mkdir()
    assert plot_path(out, tracks[1]) == blocked[1]
    result = _tag(tmp_path / "music", "--model", checkpoint, "--plot", out)
    assert result.exit_code == 0, result.output
    assert all(str(t) in result.output for t in tracks)  # every track tagged
    assert f"plot failed: {tracks[1]}" in result.output and "wrote 2 plots" in result.output and "1 failed" in result.output
    assert (out / "a.png").is_file() and (out / "c.png").is_file()


def test_display_name_is_relative_and_elides_the_middle(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert display_name(tmp_path / "music" / "a" / "song.mp3") == "music/a/song.mp3"
    long = display_name(f"a/{LONG}")
    assert len(long) <= 90 and long.startswith("a/xxx") and long.endswith("xx.wav") and "…" in long
    deep = display_name(f"/{'d' * 200}/music/b/{LONG}")
    assert len(deep) <= 90 and deep.startswith("…") and "/music/b/xxx" in deep and deep.endswith(".wav")


def _figure_of(probabilities, **kwargs):
    starts = np.arange(len(probabilities)) * 0.5
    return plots.tag_timeline(np.asarray(probabilities, np.float32), starts, ["p", "q", "r"], 3, **kwargs)


def test_timeline_colours_are_fixed_0_to_1_unless_asked_to_rescale():
    faint = [[0.10, 0.05, 0.01], [0.20, 0.02, 0.01]]
    fixed = _figure_of(faint)
    heat, bars = fixed.axes[0], fixed.axes[1]
    assert heat.images[0].get_clim() == (0.0, 1.0) and bars.get_xlim()[1] >= 1.0
    auto = _figure_of(faint, scale="auto")
    assert auto.axes[0].images[0].get_clim()[1] == pytest.approx(0.2) and auto.axes[1].get_xlim()[1] < 0.5
    with pytest.raises(plots.PlotError, match="fixed or auto"):
        _figure_of(faint, scale="linear")
    assert _tag("x.wav", "--plot-scale", "linear").exit_code == 1


def test_a_head_timeline_marks_the_labels_that_are_on(checkpoint):
    from maest.inference import load_model

    pipeline = load_model(checkpoint, "cpu")
    spec = EmbeddingSpec(model_name="tiny", weights=pipeline.fingerprint, dim=4, blocks=2)
    head = head_from_parts(["calm", "loud", "odd"], "multi", spec, "logistic", np.zeros(4), np.ones(4),
                           {"weight": np.zeros((3, 4)), "bias": np.zeros(3)}, np.array([0.3, 0.5, 0.9]), {}, {})
    probabilities = np.array([[0.6, 0.2, 0.8], [0.4, 0.4, 0.7]], np.float32)  # means 0.5, 0.3, 0.75
    figure = plots.track_timeline(pipeline, "a/song.wav", probabilities, np.array([0.0, 0.5]), 1.5, 3, head)
    ticks = {t.get_text(): t.get_fontweight() for t in figure.axes[0].get_yticklabels()}
    assert ticks == {"calm (on)": "bold", "odd": "normal", "loud": "normal"}  # 0.5 >= 0.3; 0.3 < 0.5; 0.75 < 0.9
    assert len(figure.axes[1].lines) == 3  # one threshold tick per label
    printed = plots.track_timeline(pipeline, "a/song.wav", probabilities, np.array([0.0, 0.5]), 1.5, 3, head,
                                   on={"odd"})  # what maest tag printed wins
    assert {t.get_text() for t in printed.axes[0].get_yticklabels()} == {"odd (on)", "calm", "loud"}


def test_small_maps_name_their_points_and_large_ones_do_not():
    rng = np.random.default_rng(0)
    keys = [f"album/{i:02d}. Song {i}.npy" for i in range(12)]
    figure, _ = plots.collection_map(rng.normal(size=(12, 16)), method="pca", names=keys)
    texts = {t.get_text() for t in figure.axes[0].texts}
    assert texts == {f"{i:02d}. Song {i}" for i in range(12)}
    many, _ = plots.collection_map(rng.normal(size=(60, 16)), method="pca", names=[f"k{i}" for i in range(60)])
    assert not many.axes[0].texts
