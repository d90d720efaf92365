"""What the web app does, without the web: tag one file, browse a collection through an index.

The Gradio layer (:mod:`maest.app.ui`) only maps these calls to components and turns
:class:`AppInputError` into a message on the page; everything here is testable without a server.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from maest import plots
from maest.app.limits import DEFAULT_MAX_MINUTES, InputRefused, check_input
from maest.app.protocols import LabelHead, TrackIndex, head_decisions, head_embed_options
from maest.app.served import serve_copy
from maest.audio import AudioDecodeError
from maest.extraction.files import audio_for_key

if TYPE_CHECKING:
    from maest.inference import MaestPipeline

MB = 1024 * 1024
OUTPUT_MAX_AGE_SECONDS = 15 * 60  # result files older than this are pruned (the browser has them by then)
CHOOSE_A_FILE = "Choose an audio file to upload, or type the path of one on this machine."
# One answer for every path that cannot be tagged (missing, unreadable, not audio, too long ...): a
# different message per case would tell a visitor which paths exist on the server.
PATH_REFUSED = ("Cannot tag this path. Give the path of a readable audio file on the machine running maest serve "
                "(WAV, FLAC, MP3, Ogg, M4A; up to {mb:g} MB and {minutes:g} minutes).")


class AppInputError(ValueError):
    """An input the app cannot use (unreadable or oversized file, unknown track); the message is shown to the user."""


@dataclass
class TagReport:
    """Everything the "Tag a file" tab shows for one track."""

    name: str
    duration: float
    styles: list[tuple[str, float]]  # top-k (label, track probability), most probable first
    head_rows: list[tuple[str, float, bool]] = field(default_factory=list)  # (label, probability, on)
    timeline_png: Path | None = None
    embedding_npy: Path | None = None

    def summary(self) -> str:
        """One Markdown line for the status area."""
        top = ", ".join(f"{label} ({p:.2f})" for label, p in self.styles[:3])
        return f"**{self.name}** ({plots.mmss(self.duration)}): {top}"


def head_rows(head: LabelHead, embedding: np.ndarray) -> list[tuple[str, float, bool]]:
    """``(label, probability, on by threshold)`` for every head label, most probable first."""
    probabilities = np.asarray(head.predict(np.asarray(embedding, dtype=np.float32)[None]), dtype=np.float64)[0]
    decisions = head_decisions(head, probabilities[None])[0]
    order = np.argsort(-probabilities, kind="stable")
    return [(str(head.labels[i]), float(probabilities[i]), bool(decisions[i])) for i in order]


class Tagger:
    """Tags one uploaded or picked file: top styles, timeline PNG, head labels, embedding .npy.

    Uploads are moved into a temporary directory that is removed when the track is done; result
    files live in ``output_dir`` (pruned after 15 minutes, removed with the app). Size and length
    (from the header) are checked before anything is decoded; messages never show server paths.
    """

    def __init__(self, pipeline: "MaestPipeline", head: LabelHead | None = None, max_upload_mb: float = 200,
                 output_dir: str | os.PathLike | None = None, top_k: int = 10,
                 max_minutes: float = DEFAULT_MAX_MINUTES):
        if max_upload_mb <= 0:
            raise ValueError(f"max_upload_mb must be positive, got {max_upload_mb}")
        if max_minutes <= 0:
            raise ValueError(f"max_minutes must be positive, got {max_minutes}")
        self.max_minutes = max_minutes
        self.pipeline = pipeline
        self.head = head
        self.max_upload_bytes = int(max_upload_mb * MB)
        self.max_upload_mb = max_upload_mb
        self.top_k = top_k
        self.output_dir = Path(output_dir) if output_dir else Path(tempfile.mkdtemp(prefix="maest-app-"))
        self.output_dir.mkdir(parents=True, exist_ok=True)

    def tag(self, path: str | os.PathLike | None, uploaded: bool) -> TagReport:
        """Tag ``path``; an upload is moved to a private temporary folder first and deleted afterwards.

        A typed path that cannot be tagged, for whatever reason, gets :data:`PATH_REFUSED`; an upload
        gets the specific reason, naming the file by the name it was uploaded under.
        """
        if not path:
            raise AppInputError(CHOOSE_A_FILE)
        source = Path(path).expanduser()
        if uploaded:
            return self._tag_upload(source)
        try:
            if not source.is_file():
                raise AppInputError("not a file")
            return self._tag_checked(source, source.name)
        except (AppInputError, OSError):
            raise AppInputError(PATH_REFUSED.format(mb=self.max_upload_mb, minutes=self.max_minutes)) from None

    def _tag_upload(self, upload: Path) -> TagReport:
        name = upload.name
        with tempfile.TemporaryDirectory(prefix="maest-upload-") as work:
            private = Path(work) / name
            try:
                shutil.move(upload, private)  # the upload leaves the server's shared upload cache
            except OSError:
                raise AppInputError(f"The upload of {name} did not arrive complete; upload it again.") from None
            return self._tag_checked(private, name)

    def _tag_checked(self, audio: Path, name: str) -> TagReport:
        """Size and declared length first (nothing decoded), then the tags."""
        try:
            check_input(audio, name, self.max_upload_bytes, self.max_minutes)
        except InputRefused as error:
            raise AppInputError(str(error)) from None
        return self._tag(audio, name)

    def _tag(self, audio: Path, name: str) -> TagReport:
        self._prune()
        try:
            probabilities, starts, duration = plots.segment_probabilities(self.pipeline, audio)
            # the head's embedding spec, else block 7 cls+dist+avg (what indexes use by default)
            embedding = self.pipeline.embed(audio, **head_embed_options(self.head, plots.embedding_blocks(self.pipeline)))
        except AudioDecodeError as error:
            reason = error.reason.replace(str(audio), name).replace(str(audio.parent), "")  # no server paths
            raise AppInputError(
                f"Cannot read {name} as audio ({reason}). Try a WAV, FLAC, MP3, Ogg or M4A file."
            ) from None
        track = probabilities.mean(axis=0, dtype=np.float64)
        order = np.argsort(-track, kind="stable")[: self.top_k]
        styles = [(self.pipeline.labels[i], float(track[i])) for i in order]
        request = self.output_dir / uuid.uuid4().hex[:12]
        request.mkdir()
        figure = plots.track_timeline(self.pipeline, name, probabilities, starts, duration, self.top_k)
        stem = Path(name).stem or "track"
        timeline = plots.save_figure(figure, request / f"{stem}.png")
        embedding_file = request / f"{stem}.npy"
        np.save(embedding_file, np.asarray(embedding, dtype=np.float32))
        rows = head_rows(self.head, embedding) if self.head is not None else []
        return TagReport(name, duration, styles, rows, timeline, embedding_file)

    def _prune(self) -> None:
        cutoff = time.time() - OUTPUT_MAX_AGE_SECONDS
        for folder in self.output_dir.iterdir():
            if folder.is_dir() and folder.stat().st_mtime < cutoff:
                shutil.rmtree(folder, ignore_errors=True)

    def close(self) -> None:
        """Remove every result file."""
        shutil.rmtree(self.output_dir, ignore_errors=True)


@dataclass
class TrackView:
    """What the "Collection" tab shows for one opened track."""

    key: str
    audio: Path | None
    styles: list[tuple[str, float]]
    head_rows: list[tuple[str, float, bool]]
    neighbours: list[tuple[str, float]]
    note: str = ""


class Collection:
    """A similarity index plus the folder its keys are relative to: find, open and compare tracks."""

    def __init__(self, index: TrackIndex, pipeline: "MaestPipeline", audio_root: str | os.PathLike | None = None,
                 head: LabelHead | None = None, top_k: int = 10, served_dir: str | os.PathLike | None = None):
        self.index = index
        # where opened tracks are linked for the player (the only audio the web server may serve)
        self.served_dir = Path(served_dir) if served_dir is not None else None
        self.pipeline = pipeline
        self.audio_root = Path(audio_root).expanduser() if audio_root else None
        self.head = head
        self.top_k = top_k
        self.keys = [str(key) for key in index.keys]

    def find(self, text: str, limit: int = 50) -> list[str]:
        """Keys whose path contains ``text`` (case-insensitive); all keys (first ``limit``) for empty text."""
        needle = (text or "").strip().lower()
        return [key for key in self.keys if needle in key.lower()][:limit]

    def resolve(self, key: str) -> Path | None:
        """The audio file of an index key: the key itself, or under the audio root (``.npy`` keys map back to audio)."""
        return audio_for_key(key, self.audio_root)

    def neighbours(self, key: str, k: int = 10) -> list[tuple[str, float]]:
        """The ``k`` most similar tracks to ``key`` by the index, the track itself left out."""
        results = self.index.search(key, k + 1)
        return [(str(other), float(similarity)) for other, similarity in results if str(other) != key][:k]

    def open(self, key: str, k: int = 10) -> TrackView:
        """Tags (when the audio is found), head labels and neighbours of one indexed track."""
        if key not in set(self.keys):
            raise AppInputError(f"{key} is not in the index. Search for it by part of its file name.")
        neighbours = self.neighbours(key, k)
        audio = self.resolve(key)
        if audio is None:
            where = f"under {self.audio_root}" if self.audio_root else "(no audio root given)"
            note = f"The audio of {key} was not found {where}: start maest serve with --audio-root to play and tag it."
            return TrackView(key, None, [], [], neighbours, note)
        try:
            probabilities = self.pipeline.predict(audio)
            embedding = (self.pipeline.embed(audio, **head_embed_options(self.head, plots.embedding_blocks(self.pipeline)))
                         if self.head else None)
            rows = head_rows(self.head, embedding) if self.head is not None else []
        except AudioDecodeError as error:
            return TrackView(key, None, [], [], neighbours, f"Cannot read {audio} as audio ({error.reason}).")
        order = np.argsort(-probabilities, kind="stable")[: self.top_k]
        styles = [(self.pipeline.labels[i], float(probabilities[i])) for i in order]
        playable = serve_copy(audio, self.served_dir) if self.served_dir is not None else audio
        return TrackView(key, playable, styles, rows, neighbours)
