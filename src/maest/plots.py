"""Pictures of what the model hears: tag timelines of one track and 2-D maps of a collection.

Figures are built on :class:`matplotlib.figure.Figure` with the Agg canvas, never pyplot, so they
render headless and from the web app's worker threads. matplotlib comes with the ``[eval]`` extra.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from maest.atomic import atomic_write

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from maest.protocols import LabelHead
    from maest.inference import MaestPipeline

MapMethod = Literal["auto", "umap", "pca", "tsne"]
Scale = Literal["fixed", "auto"]
DPI = 100
TIMELINE_WIDTH_INCHES = 12.0
MAP_SIZE_INCHES = (9.0, 7.0)
MAX_LEGEND_ENTRIES = 12  # more colours than this cannot be told apart; the rest become "other"
MAX_TIME_TICKS = 12
NAMED_MAP_POINTS = 40  # maps with at most this many points name each one; more names would cover the points
MAP_NAME_CHARS = 28
ON_COLOUR, OFF_COLOUR, BAR_COLOUR = "#1b9e77", "#9e9e9e", "#d95f02"
PCA_MAX_POINTS = 50
SMALL_MAP_POINTS = 2000  # below this t-SNE runs on one thread  # t-SNE needs a perplexity well below the number of points; PCA below this


class PlotError(ValueError):
    """Inputs a plot cannot be drawn from (shapes that disagree, too few points, a missing library)."""


def _figure(width: float, height: float) -> "Figure":
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise PlotError("plots need matplotlib: pip install 'maest[eval]'") from None
    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def mmss(seconds: float, decimals: int = 0) -> str:
    """``75.3`` -> ``"1:15"`` (``"1:15.3"`` with one decimal); hours roll into minutes (``"61:00"``)."""
    scale = 10**decimals
    total = int(round(seconds * scale))
    minutes, rest = divmod(total, 60 * scale)
    width = 2 + (decimals + 1 if decimals else 0)
    return f"{minutes}:{rest / scale:0{width}.{decimals}f}"


def top_k_rows(probabilities: np.ndarray, top_k: int) -> np.ndarray:
    """Indices of the ``top_k`` classes by mean probability over segments, most probable first (stable)."""
    mean = np.asarray(probabilities, dtype=np.float64).mean(axis=0)
    return np.argsort(-mean, kind="stable")[: max(1, top_k)]


def tag_timeline(
    probabilities: np.ndarray,
    start_seconds: np.ndarray,
    labels: Sequence[str],
    top_k: int = 10,
    title: str = "",
    segment_seconds: float | None = None,
    scale: Scale = "fixed",
    on: Collection[str] | None = None,
    thresholds: Mapping[str, float] | None = None,
) -> "Figure":
    """Heatmap of the top-k labels (rows) over segments (columns, mm:ss) with the track-level bars beside it.

    Rows are the ``top_k`` labels by mean probability over segments (the track-level tag), most
    probable on top; the bar chart on the right shows those means on the same rows. Colours and
    bars span probability 0..1 (``scale="fixed"``: two tracks' plots compare) or the plot's own
    maximum (``"auto"``: faint tags readable). ``on``: the labels a head decided on, marked "(on)"
    in bold with green bars (the others grey); ``thresholds``: a label's decision threshold, a tick on its bar.
    """
    if scale not in ("fixed", "auto"):
        raise PlotError(f"scale must be fixed or auto, got {scale!r}")
    probabilities = np.asarray(probabilities, dtype=np.float32)
    start_seconds = np.asarray(start_seconds, dtype=np.float64).reshape(-1)
    if probabilities.ndim != 2 or probabilities.shape[0] == 0:
        raise PlotError(f"probabilities must be (segments, classes) with at least one segment, got {probabilities.shape}")
    if probabilities.shape[1] != len(labels):
        raise PlotError(f"{probabilities.shape[1]} classes but {len(labels)} labels")
    if start_seconds.shape[0] != probabilities.shape[0]:
        raise PlotError(f"{probabilities.shape[0]} segments but {start_seconds.shape[0]} start times")
    rows = top_k_rows(probabilities, top_k)
    names = [str(labels[i]) for i in rows]
    grid = probabilities[:, rows].T  # (k, segments)
    means = probabilities.mean(axis=0, dtype=np.float64)[rows]

    figure = _figure(TIMELINE_WIDTH_INCHES, max(3.5, 0.38 * len(rows) + 2.2))
    heat_ax, bar_ax = figure.subplots(1, 2, sharey=True, width_ratios=[3.2, 1.0])
    top = 1.0 if scale == "fixed" else max(1e-6, float(grid.max()))
    image = heat_ax.imshow(grid, aspect="auto", cmap="magma", vmin=0.0, vmax=top, interpolation="nearest")
    marked = [on is not None and name in on for name in names]
    heat_ax.set_yticks(range(len(names)), [f"{name} (on)" if m else name for name, m in zip(names, marked)])
    for tick, m in zip(heat_ax.get_yticklabels(), marked):
        tick.set_fontweight("bold" if m else "normal")
    n_segments = grid.shape[1]
    step = max(1, int(np.ceil(n_segments / MAX_TIME_TICKS)))
    ticks = list(range(0, n_segments, step))
    # Enough decimals that neighbouring ticks read differently: whole seconds, tenths for short
    # segments, milliseconds for a track one frame longer than a segment (starts 0 and 0.016 s).
    gap = float(np.min(np.diff(start_seconds[ticks]))) if len(ticks) > 1 else 1.0
    decimals = 0 if gap >= 1.0 else 1 if gap >= 0.1 else 3
    heat_ax.set_xticks(ticks, [mmss(start_seconds[i], decimals) for i in ticks])
    span = f" ({segment_seconds:g} s segments)" if segment_seconds else ""
    heat_ax.set_xlabel(f"segment start (mm:ss){span}")
    heat_ax.set_title("per segment")
    colour_bar = figure.colorbar(image, ax=heat_ax, location="bottom", shrink=0.6, aspect=40, pad=0.02)
    colour_bar.set_label("probability")

    colours = BAR_COLOUR if on is None else [ON_COLOUR if m else OFF_COLOUR for m in marked]
    bar_ax.barh(range(len(names)), means, color=colours)
    bar_ax.set_xlim(0.0, 1.2 if scale == "fixed" else max(1e-6, float(means.max())) * 1.25)
    for y, name in enumerate(names):
        if thresholds is not None and name in thresholds:
            bar_ax.plot([thresholds[name]] * 2, [y - 0.42, y + 0.42], color="black", linewidth=1.5)
    for y, value in enumerate(means):
        bar_ax.text(value, y, f" {value:.2f}", va="center", fontsize=8)
    bar_ax.set_title("track (mean)")
    bar_ax.set_xlabel("probability")
    bar_ax.tick_params(axis="y", left=False, labelleft=False)
    if title:
        figure.suptitle(title)
    return figure


def collection_map(
    embeddings: np.ndarray,
    colour_labels: Sequence[str] | None = None,
    method: MapMethod = "auto",
    title: str = "",
    seed: int = 0,
    names: Sequence[str] | None = None,
) -> tuple["Figure", str]:
    """2-D map of a collection's embeddings coloured by label; returns ``(figure, method used)``.

    ``auto`` uses UMAP when ``umap-learn`` is installed, else PCA for fewer than 50 points and
    t-SNE above. Embeddings are L2-normalised first: neighbours on the map are cosine neighbours.
    ``names`` (e.g. the tracks' keys): written beside each point on maps of at most
    :data:`NAMED_MAP_POINTS` points.
    """
    points = np.asarray(embeddings, dtype=np.float64)
    if points.ndim != 2 or points.shape[0] < 3:
        raise PlotError(f"a map needs (n >= 3, dim) embeddings, got shape {points.shape}")
    if colour_labels is not None and len(colour_labels) != points.shape[0]:
        raise PlotError(f"{points.shape[0]} embeddings but {len(colour_labels)} colour labels")
    if names is not None and len(names) != points.shape[0]:
        raise PlotError(f"{points.shape[0]} embeddings but {len(names)} names")
    points = points / np.maximum(np.linalg.norm(points, axis=1, keepdims=True), 1e-12)
    used = _choose_method(method, points.shape[0])
    xy = _project(points, used, seed)

    figure = _figure(*MAP_SIZE_INCHES)
    ax = figure.subplots()
    if colour_labels is None:
        ax.scatter(xy[:, 0], xy[:, 1], s=14, alpha=0.8, color="#1b9e77")
    else:
        groups = legend_groups(colour_labels)
        from matplotlib import colormaps

        palette = colormaps["tab20" if len(set(groups)) > 10 else "tab10"]
        names = list(dict.fromkeys(name for name, _ in Counter(groups).most_common()))
        if "other" in names:  # "other" last and grey
            names.remove("other")
            names.append("other")
        groups_array = np.asarray(groups, dtype=object)
        for i, name in enumerate(names):
            mask = groups_array == name
            colour = "#9e9e9e" if name == "other" else palette(i % palette.N)
            ax.scatter(xy[mask, 0], xy[mask, 1], s=14, alpha=0.8, color=colour, label=f"{name} ({int(mask.sum())})")
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, frameon=False)
    if names is not None and len(names) <= NAMED_MAP_POINTS:
        for (x, y), name in zip(xy, names):
            ax.annotate(point_name(name), (x, y), xytext=(3, 3), textcoords="offset points", fontsize=7, alpha=0.85)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel(f"{used.upper()} 1")
    ax.set_ylabel(f"{used.upper()} 2")
    heading = f"{title} — " if title else ""
    figure.suptitle(f"{heading}{points.shape[0]} tracks, {used.upper()} of the embeddings")
    return figure, used


def point_name(key: str, limit: int = MAP_NAME_CHARS) -> str:
    """A map point's label: the key's file name without the output suffix, cut to ``limit`` characters."""
    name = Path(str(key)).name
    for suffix in (".npy", ".npz"):
        name = name[: -len(suffix)] if name.lower().endswith(suffix) else name
    return name if len(name) <= limit else name[: limit - 1] + "…"


def legend_groups(colour_labels: Sequence[str], max_entries: int = MAX_LEGEND_ENTRIES) -> list[str]:
    """Labels with all but the most frequent ``max_entries - 1`` folded into ``"other"`` (when there are too many)."""
    counts = Counter(str(label) for label in colour_labels)
    if len(counts) <= max_entries:
        return [str(label) for label in colour_labels]
    keep = {name for name, _ in counts.most_common(max_entries - 1)}
    return [str(label) if str(label) in keep else "other" for label in colour_labels]


def _umap_available() -> bool:
    try:
        import umap  # noqa: F401
    except ImportError:
        return False
    return True


def _choose_method(method: str, n_points: int) -> str:
    if method not in ("auto", "umap", "pca", "tsne"):
        raise PlotError(f"method must be auto, umap, pca or tsne, got {method!r}")
    if method == "umap" and not _umap_available():
        raise PlotError("method 'umap' needs umap-learn: pip install umap-learn (or use method='auto')")
    if method == "auto":
        if _umap_available() and n_points >= 16:  # UMAP's default 15 neighbours need more points than that
            return "umap"
        return "pca" if n_points < PCA_MAX_POINTS else "tsne"
    return method


def _project(points: np.ndarray, method: str, seed: int) -> np.ndarray:
    try:
        from sklearn.decomposition import PCA
        from sklearn.manifold import TSNE
    except ImportError:
        raise PlotError("maps need scikit-learn: pip install 'maest[eval]'") from None
    if method == "pca":
        return PCA(n_components=2, random_state=seed).fit_transform(points)
    if method == "tsne":
        from threadpoolctl import threadpool_limits  # a scikit-learn dependency

        perplexity = float(min(30.0, max(2.0, (points.shape[0] - 1) / 3)))
        tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", metric="cosine", random_state=seed)
        # Small maps: OpenMP threads cost more than they save (17 s vs 0.2 s for 12 points on a busy 2-core box).
        with threadpool_limits(1 if points.shape[0] < SMALL_MAP_POINTS else None):
            return tsne.fit_transform(points)
    import umap

    neighbours = min(15, points.shape[0] - 1)
    return umap.UMAP(n_components=2, n_neighbors=neighbours, metric="cosine", random_state=seed).fit_transform(points)


def top_genres(probabilities: np.ndarray, labels: Sequence[str]) -> list[str]:
    """Each track's top Discogs genre: style probabilities (``Genre---Style``) summed per genre.

    ``probabilities`` is ``(tracks, classes)``; labels without ``---`` count as their own genre.
    """
    probabilities = np.atleast_2d(np.asarray(probabilities, dtype=np.float64))
    genres = [str(label).split("---", 1)[0] for label in labels]
    names = sorted(set(genres))
    member = np.zeros((len(labels), len(names)))
    member[np.arange(len(labels)), [names.index(g) for g in genres]] = 1.0
    return [names[i] for i in (probabilities @ member).argmax(axis=1)]


def head_top_labels(head: "LabelHead", embeddings: np.ndarray) -> list[str]:
    """Each track's most probable head label (for colouring a map by a head)."""
    probabilities = np.asarray(head.predict(np.atleast_2d(embeddings)))
    return [str(head.labels[i]) for i in probabilities.argmax(axis=1)]


def embedding_blocks(pipeline: "MaestPipeline") -> int | None:
    """Blocks of the default embedding (:mod:`maest.blocks` "auto": block 7, or the last block of a shallower
    model; None: EffNet)."""
    return pipeline.family.default_blocks(pipeline.config)


def segment_probabilities(
    pipeline: "MaestPipeline", audio_path: str | os.PathLike, head: "LabelHead | None" = None,
    overlap: float = 0.5,
) -> tuple[np.ndarray, np.ndarray, float]:
    """``(probabilities (segments, classes), start_seconds (segments,), duration)`` of one track.

    Without a head: the model's sigmoid outputs per segment (their mean is ``pipeline.predict``).
    With a head: the head's probabilities of each segment's block-7 cls+dist+avg embedding.
    """
    from maest.protocols import head_embed_options
    from maest.inference import EmbedOptions

    if head is None:
        mode, options = "tag", EmbedOptions(blocks=None, overlap=overlap)
    else:  # the head's embedding spec (blocks, tokens, patchout), else block 7 cls+dist+avg
        spec = {"overlap": overlap, **head_embed_options(head, embedding_blocks(pipeline))}
        mode, options = "embed", pipeline.spec(**spec)  # with the head's resampler
    result = pipeline.run_track(audio_path, mode, options)
    outputs = result.outputs if head is None else np.asarray(head.predict(result.outputs), dtype=np.float32)
    return outputs, np.asarray(result.start_seconds), float(result.duration)


def model_name(pipeline: "MaestPipeline") -> str:
    """The name a title shows for the pipeline's model."""
    return str(getattr(pipeline.config, "name", "") or type(pipeline.model).__name__)


def plot_tags(pipeline: "MaestPipeline", audio_path: str | os.PathLike, top_k: int = 10,
              head: "LabelHead | None" = None, scale: Scale = "fixed") -> "Figure":
    """The tag timeline figure of one track: the model's Discogs styles, or the head's labels."""
    from maest.plot_files import display_name

    probabilities, starts, duration = segment_probabilities(pipeline, audio_path, head)
    return track_timeline(pipeline, display_name(audio_path), probabilities, starts, duration, top_k, head, scale)


def head_marks(head: "LabelHead", probabilities: np.ndarray) -> tuple[list[str], dict[str, float] | None]:
    """The labels a head decides on for a track's mean per-segment probabilities, and its thresholds by label."""
    labels = [str(label) for label in head.labels]
    decide, thresholds = getattr(head, "decide", None), getattr(head, "thresholds", None)
    mean = np.asarray(probabilities, dtype=np.float64).mean(axis=0)
    decided = decide(mean[None])[0] if decide is not None else mean == mean.max()
    by_label = None
    if thresholds is not None and getattr(head, "mode", "multi") == "multi":
        by_label = {label: float(t) for label, t in zip(labels, thresholds)}
    return [label for label, d in zip(labels, decided) if d], by_label


def track_timeline(pipeline: "MaestPipeline", name: str, probabilities: np.ndarray, start_seconds: np.ndarray,
                   duration: float, top_k: int = 10, head: "LabelHead | None" = None, scale: Scale = "fixed",
                   on: Collection[str] | None = None) -> "Figure":
    """:func:`tag_timeline` of per-segment outputs already computed (``maest tag --plot``: no second
    pass), titled with the track's name (give its path: two songs.mp3 must be told apart), length
    and the model (+ head). With a head, the labels it decides on are marked (``on``: those
    ``maest tag`` printed; default: the head's decision on the mean per-segment probabilities)."""
    labels = list(head.labels) if head is not None else pipeline.labels
    source = f"{model_name(pipeline)} + head" if head is not None else model_name(pipeline)
    title = f"{name} ({mmss(duration)}) — {source}"
    segment_seconds = pipeline.config.segment_frames * 0.016
    thresholds = None
    if head is not None:
        decided, thresholds = head_marks(head, probabilities)
        on = decided if on is None else on
    return tag_timeline(probabilities, start_seconds, labels, top_k, title=title, segment_seconds=segment_seconds,
                        scale=scale, on=on, thresholds=thresholds)


def save_figure(figure: "Figure", path: str | os.PathLike, source: str | None = None) -> Path:
    """Write ``figure`` as PNG at its own size (``figsize x 100 dpi``), atomically, its title in the
    PNG's ``Title``; ``source``: the track it shows, recorded too (:mod:`maest.plot_files` reads it back)."""
    from maest.plot_files import SOURCE_KEY

    path = Path(path)
    metadata = {"Title": figure.get_suptitle()} if figure.get_suptitle() else {}
    if source is not None:
        metadata[SOURCE_KEY] = source
    atomic_write(path, lambda f: figure.savefig(f, format="png", dpi=DPI, metadata=metadata))
    return path


def save_tag_plot(pipeline: "MaestPipeline", audio_path: str | os.PathLike, out_dir: str | os.PathLike,
                  top_k: int = 10, head: "LabelHead | None" = None, scale: Scale = "fixed") -> Path:
    """``<out_dir>/<stem>.png`` (:func:`maest.plot_files.plot_path`: a hashed name when that one holds
    another track's plot or is too long): the tag timeline of one track, as ``maest tag --plot`` writes it."""
    from maest.plot_files import plot_path, track_source

    figure = plot_tags(pipeline, audio_path, top_k, head, scale)
    return save_figure(figure, plot_path(out_dir, audio_path), track_source(audio_path))
