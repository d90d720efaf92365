"""Tag timelines and collection maps: sizes, which labels are drawn, labels inside the picture."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("matplotlib")
pytest.importorskip("sklearn")

from app_data import NearestMeanHead, write_tracks  # noqa: E402
from eval_data import tiny_model  # noqa: E402

import maest  # noqa: E402
from maest import plots  # noqa: E402


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    return maest.load_model(tiny_model(tmp_path_factory.mktemp("plots") / "tiny"), device="cpu")


@pytest.fixture(scope="module")
def tracks(tmp_path_factory):
    return write_tracks(tmp_path_factory.mktemp("music"), per_tone=1, seconds=4.0)


def _png_size(path) -> tuple[int, int]:
    from PIL import Image

    with Image.open(path) as image:
        return image.size


def _inside_figure(figure, artists) -> bool:
    renderer = figure.canvas.get_renderer()
    width, height = figure.canvas.get_width_height()
    for artist in artists:
        box = artist.get_window_extent(renderer)
        if box.x0 < 0 or box.y0 < 0 or box.x1 > width or box.y1 > height:
            return False
    return True


def test_mmss():
    assert plots.mmss(0) == "0:00" and plots.mmss(75.3) == "1:15" and plots.mmss(3661) == "61:01"
    assert plots.mmss(0.512, 1) == "0:00.5" and plots.mmss(59.96, 1) == "1:00.0"


def test_segment_probabilities_average_to_predict(pipeline, tracks):
    probabilities, starts, duration = plots.segment_probabilities(pipeline, tracks[0])
    assert probabilities.shape == (len(starts), 4) and duration == pytest.approx(4.0)
    np.testing.assert_allclose(probabilities.mean(axis=0), pipeline.predict(tracks[0]), atol=1e-6)
    np.testing.assert_allclose(starts[:2], [0.0, 0.512])  # 64-frame segments, 50 % overlap


def test_segment_probabilities_of_a_head_are_its_predictions_per_segment(pipeline, tracks):
    means = np.random.default_rng(0).normal(size=(3, 96))
    head = NearestMeanHead(["a", "b", "c"], means)
    probabilities, starts, _ = plots.segment_probabilities(pipeline, tracks[1], head)
    segments, segment_starts = pipeline.embed(tracks[1], blocks=2, per_segment=True)
    np.testing.assert_allclose(starts, segment_starts)
    np.testing.assert_allclose(probabilities, head.predict(segments), atol=1e-5)


def test_save_tag_plot_png_size_and_top_k_rows(pipeline, tracks, tmp_path):
    path = plots.save_tag_plot(pipeline, tracks[2], tmp_path / "plots", top_k=3)
    assert path == tmp_path / "plots" / "high_0.png" and path.is_file()
    assert _png_size(path) == (1200, 350)  # 12 x 3.5 inches at 100 dpi
    figure = plots.plot_tags(pipeline, tracks[2], top_k=3)
    rows = [t.get_text() for t in figure.axes[0].get_yticklabels()]
    assert rows == [label for label, _ in pipeline.tag(tracks[2], top_k=3)]
    assert "high_0.wav" in figure.get_suptitle() and "tiny-0" in figure.get_suptitle()
    assert len(figure.axes) == 3  # heatmap, bars, colour bar


def test_timeline_rows_are_top_k_by_mean_and_labels_fit(tmp_path):
    rng = np.random.default_rng(1)
    probabilities = rng.uniform(0, 0.2, size=(40, 30)).astype(np.float32)
    strong = [7, 21, 3, 12, 28]
    for rank, column in enumerate(strong):
        probabilities[:, column] += 0.7 - 0.1 * rank
    labels = [f"Genre{i}---A Very Long Discogs Style Name Number {i}" for i in range(30)]
    starts = np.arange(40) * 15.0
    figure = plots.tag_timeline(probabilities, starts, labels, top_k=5, title="song.mp3 — model")
    heat = figure.axes[0]
    assert [t.get_text() for t in heat.get_yticklabels()] == [labels[i] for i in strong]
    assert [t.get_text() for t in heat.get_xticklabels()][:3] == ["0:00", "1:00", "2:00"]  # every 4th of 40: at most 12 ticks
    path = plots.save_figure(figure, tmp_path / "t.png")
    assert _png_size(path) == (1200, round(100 * (0.38 * 5 + 2.2)))
    assert _inside_figure(figure, heat.get_yticklabels() + [figure._suptitle])


def test_timeline_rejects_mismatched_inputs():
    with pytest.raises(plots.PlotError, match="3 classes but 2 labels"):
        plots.tag_timeline(np.zeros((2, 3)), np.zeros(2), ["a", "b"])
    with pytest.raises(plots.PlotError, match="2 segments but 1 start"):
        plots.tag_timeline(np.zeros((2, 2)), np.zeros(1), ["a", "b"])


def test_collection_map_pca_points_and_legend(monkeypatch, tmp_path):
    monkeypatch.setattr(plots, "_umap_available", lambda: False)
    rng = np.random.default_rng(0)
    embeddings = rng.normal(size=(30, 8))
    colours = [f"g{i % 15}" for i in range(30)]  # 15 labels: 11 kept, 4 folded into "other"
    figure, used = plots.collection_map(embeddings, colours)
    assert used == "pca" and "PCA" in figure.get_suptitle()
    legend = [t.get_text() for t in figure.axes[0].get_legend().get_texts()]
    assert len(legend) == 12 and legend[-1] == "other (8)"
    from sklearn.decomposition import PCA

    unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    expected = PCA(n_components=2, random_state=0).fit_transform(unit)
    drawn = np.concatenate([c.get_offsets() for c in figure.axes[0].collections])
    assert sorted(map(tuple, np.round(drawn, 6))) == sorted(map(tuple, np.round(expected, 6)))
    path = plots.save_figure(figure, tmp_path / "map.png")
    assert _png_size(path) == (900, 700)
    assert _inside_figure(figure, figure.axes[0].get_legend().get_texts())


def test_collection_map_tsne_for_more_points_and_umap_needs_the_package(monkeypatch):
    monkeypatch.setattr(plots, "_umap_available", lambda: False)
    monkeypatch.setattr(plots, "PCA_MAX_POINTS", 10)  # t-SNE from 10 points: fast enough for a test
    embeddings = np.random.default_rng(0).normal(size=(12, 4))
    figure, used = plots.collection_map(embeddings, None)
    assert used == "tsne" and "TSNE" in figure.get_suptitle()
    with pytest.raises(plots.PlotError, match="umap-learn"):
        plots.collection_map(embeddings, None, method="umap")


def test_top_genres_sums_styles_per_genre():
    labels = ["Rock---Punk", "Rock---Indie", "Electronic---Techno", "Jazz"]
    probabilities = np.array([[0.3, 0.3, 0.5, 0.1], [0.1, 0.1, 0.5, 0.0], [0.0, 0.0, 0.0, 0.9]])
    assert plots.top_genres(probabilities, labels) == ["Rock", "Electronic", "Jazz"]


def test_neighbouring_segment_ticks_never_read_the_same():
    # a 30.0 s track under a 30 s model: segments at frames 0 and 1 (0.016 s apart)
    figure = plots.tag_timeline(np.full((2, 3), 0.5, np.float32), np.array([0.0, 0.016]), ["a", "b", "c"], top_k=3)
    assert [t.get_text() for t in figure.axes[0].get_xticklabels()] == ["0:00.000", "0:00.016"]
    figure = plots.tag_timeline(np.full((3, 3), 0.5, np.float32), np.array([0.0, 15.0, 30.0]), ["a", "b", "c"], top_k=3)
    assert [t.get_text() for t in figure.axes[0].get_xticklabels()] == ["0:00", "0:15", "0:30"]
