"""The Gradio page: a "Tag a file" tab and a "Collection" tab over :mod:`maest.app.service`.

Handlers turn :class:`~maest.app.service.AppInputError` into ``gr.Error`` (a message box on the
page, the error text for API clients); nothing else from the library reaches the user as a trace.
"""

from __future__ import annotations

import os
import sys
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

# Before gradio is imported: no telemetry, no version check, no hub calls from this process.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

try:
    import gradio as gr
except ImportError as error:  # pragma: no cover - depends on the install
    raise ImportError("the web app needs gradio: pip install 'maest[app]'") from error

from maest.app.limits import DEFAULT_MAX_MINUTES  # noqa: E402
from maest.app.protocols import LabelHead, TrackIndex  # noqa: E402
from maest.app.service import AppInputError, Collection, TagReport, Tagger, TrackView  # noqa: E402
from maest.plots import embedding_blocks  # noqa: E402

if TYPE_CHECKING:
    from maest.inference import MaestPipeline

INTRO = """# maest
Drop a music file below to see its Discogs styles: the top styles, how they move through the track
(one column per segment), and the embedding the model computes to download."""
NO_INDEX = ("No collection index was given. Build one with `maest index build EMBEDDINGS -o INDEX/` and start "
            "the app with `maest serve --index INDEX/ --audio-root MUSIC/` to browse it here.")
STYLE_HEADERS = ["rank", "style", "probability"]
HEAD_HEADERS = ["label", "probability", "on"]
NEIGHBOUR_HEADERS = ["rank", "track", "similarity"]


def _style_rows(styles: list[tuple[str, float]]) -> list[list[Any]]:
    return [[rank, label, round(p, 4)] for rank, (label, p) in enumerate(styles, 1)]


def _head_rows(rows: list[tuple[str, float, bool]]) -> list[list[Any]]:
    return [[label, round(p, 4), "yes" if on else "no"] for label, p, on in rows]


def _user_error(error: AppInputError, title: str) -> gr.Error:
    """The page's message box for a user's mistake; the terminal gets one line, not Gradio's traceback."""
    print(f"maest serve: {title.lower()}: {error}", file=sys.stderr)
    return gr.Error(str(error), title=title, print_exception=False)


def build_app(pipeline: "MaestPipeline", index: TrackIndex | None = None, head: LabelHead | None = None,
              max_upload_mb: float = 200, audio_root: str | os.PathLike | None = None,
              index_error: str | None = None, top_k: int = 10, max_minutes: float = DEFAULT_MAX_MINUTES) -> gr.Blocks:
    """The app's page for a loaded pipeline (and optionally an index and an own-label head).

    ``index_error`` is shown in the Collection tab instead of the browser (e.g. the index folder
    did not load). Launch it with ``.launch(server_name="127.0.0.1", ...)`` or use :func:`serve`.
    Only the app's private folder is served: opened tracks are linked there, never the audio root.
    """
    tagger = Tagger(pipeline, head, max_upload_mb, top_k=top_k, max_minutes=max_minutes)
    collection = (Collection(index, pipeline, audio_root, head, top_k, served_dir=tagger.output_dir)
                  if index is not None else None)
    gr.set_static_paths([str(tagger.output_dir)])  # the player streams opened tracks from there, uncopied

    def tag(path: str | None, uploaded: bool):
        try:
            report: TagReport = tagger.tag(path, uploaded)
        except AppInputError as error:
            raise _user_error(error, "Cannot tag this file") from None
        return (report.summary(), dict(report.styles), _style_rows(report.styles), str(report.timeline_png),
                _head_rows(report.head_rows), str(report.embedding_npy))

    def tag_upload(path: str | None):
        return tag(path, uploaded=True)

    def tag_path(path: str | None):
        return tag((path or "").strip() or None, uploaded=False)

    with gr.Blocks(title="maest", analytics_enabled=False, delete_cache=(900, 900)) as app:
        gr.Markdown(INTRO)
        with gr.Tab("Tag a file"):
            with gr.Row():
                upload = gr.File(label="Upload an audio file", type="filepath", elem_id="upload")
                with gr.Column():
                    path_box = gr.Textbox(label="...or the path of a file on this machine", elem_id="path")
                    tag_button = gr.Button("Tag this path", variant="primary", elem_id="tag-path")
            status = gr.Markdown(f"Files up to {max_upload_mb:g} MB and {max_minutes:g} minutes.", elem_id="tag-status")
            with gr.Row():
                styles = gr.Label(label="Top styles (track)", num_top_classes=top_k, elem_id="styles")
                style_table = gr.Dataframe(headers=STYLE_HEADERS, label="Top styles", interactive=False,
                                           elem_id="style-table")
            timeline = gr.Image(label="Styles over time (rows: top styles; columns: segments)", type="filepath",
                                interactive=False, elem_id="timeline")
            head_table = gr.Dataframe(headers=HEAD_HEADERS, label="Your head's labels (on: above its threshold)",
                                      interactive=False, visible=head is not None, elem_id="head-table")
            blocks = embedding_blocks(pipeline)
            spec = pipeline.family.describe_embedding(blocks, ("cls", "dist", "avg"))
            embedding = gr.File(label=f"Embedding (.npy, {spec})", interactive=False,
                                elem_id="embedding")
            outputs = [status, styles, style_table, timeline, head_table, embedding]
            upload.upload(tag_upload, inputs=upload, outputs=outputs, api_name="tag_upload")
            tag_button.click(tag_path, inputs=path_box, outputs=outputs, api_name="tag_path")
            path_box.submit(tag_path, inputs=path_box, outputs=outputs, api_name=False)

        with gr.Tab("Collection"):
            if collection is None:
                gr.Markdown(f"**{index_error}**" if index_error else NO_INDEX, elem_id="collection-status")
            else:
                _collection_tab(collection, head is not None)
    weakref.finalize(app, tagger.close)  # result files go with the app
    return app


def _collection_tab(collection: Collection, has_head: bool) -> None:
    """Search by file name, open a track: its audio, tags, head labels and nearest neighbours."""
    first = collection.find("")
    gr.Markdown(f"{len(collection.keys)} tracks in the index. Type part of a file name, pick a track; "
                "click a neighbour to open it.")
    with gr.Row():
        search = gr.Textbox(label="Search by file name", elem_id="search")
        tracks = gr.Dropdown(choices=first, value=None, label="Tracks", elem_id="tracks")
    status = gr.Markdown(elem_id="collection-status")
    player = gr.Audio(label="Listen", type="filepath", interactive=False, elem_id="player")
    with gr.Row():
        styles = gr.Label(label="Top styles", num_top_classes=collection.top_k, elem_id="track-styles")
        neighbours = gr.Dataframe(headers=NEIGHBOUR_HEADERS, label="10 nearest neighbours (cosine similarity)",
                                  interactive=False, elem_id="neighbours")
    head_table = gr.Dataframe(headers=HEAD_HEADERS, label="Your head's labels", interactive=False,
                              visible=has_head, elem_id="track-head-table")
    shown = gr.State([])

    def find(text: str):
        keys = collection.find(text)
        note = f"{len(keys)} matches" + (" (first 50 shown)" if len(keys) == 50 else "")
        return gr.update(choices=keys, value=None), note

    def open_track(key: str | None):
        if not key:
            return gr.update(), gr.update(), gr.update(), gr.update(), gr.update(), []
        try:
            view: TrackView = collection.open(key)
        except AppInputError as error:
            raise _user_error(error, "Cannot open this track") from None
        rows = [[rank, other, round(similarity, 4)] for rank, (other, similarity) in enumerate(view.neighbours, 1)]
        note = view.note or f"**{Path(key).name}**"
        return (note, str(view.audio) if view.audio else None, dict(view.styles), rows,
                _head_rows(view.head_rows), [o for o, _ in view.neighbours])

    def open_neighbour(keys: list[str], event: gr.SelectData):
        row = event.index[0] if isinstance(event.index, (list, tuple)) else event.index
        if not keys or row is None or not 0 <= row < len(keys):
            return gr.update()
        key = keys[row]  # the dropdown must offer the neighbour for it to be selected
        return gr.update(choices=[key] + [k for k in collection.find("") if k != key], value=key)

    search.submit(find, inputs=search, outputs=[tracks, status], api_name="find")
    search.change(find, inputs=search, outputs=[tracks, status], api_name=False)
    tracks.change(open_track, inputs=tracks, outputs=[status, player, styles, neighbours, head_table, shown],
                  api_name="open_track")
    neighbours.select(open_neighbour, inputs=shown, outputs=tracks, api_name=False)
