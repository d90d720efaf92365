"""Reading a user's labels: a TSV/CSV of ``path<TAB>tag1,tag2`` rows, or a folder tree ``ROOT/<class>/<files>``.

A labels file is multi-label (each track has any number of tags); a folder tree is single-label
(one class per folder). Paths are relative to an audio root, so a labels file can travel with its music.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from maest import audio as audio_io
from maest.heads.errors import HeadError

Mode = Literal["multi", "single"]
SPLITS = {"train": "train", "validation": "validation", "valid": "validation", "val": "validation"}
PATH_COLUMNS = ("path", "file", "filename", "audio")
TAG_COLUMNS = ("tags", "tag", "labels", "label", "class")


class HeadDataError(HeadError):
    """The labels cannot train a head (unreadable file, no labels, one class only ...)."""


@dataclass
class LabelSet:
    """Tracks (``paths`` relative to ``audio_root``) with their tags; ``split`` is "train"/"validation" or None."""

    paths: list[str]
    tags: list[list[str]]
    mode: Mode
    audio_root: Path
    source: str
    split: list[str | None] = field(default_factory=list)

    def __post_init__(self):
        if not self.split:
            self.split = [None] * len(self.paths)
        if not len(self.paths) == len(self.tags) == len(self.split):
            raise HeadDataError(f"{len(self.paths)} paths, {len(self.tags)} tag lists, {len(self.split)} split values")

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def labels(self) -> list[str]:
        """Every tag used, sorted (the head's output order)."""
        return sorted({t for tags in self.tags for t in tags})

    @property
    def has_split(self) -> bool:
        return any(s is not None for s in self.split)

    def counts(self) -> dict[str, int]:
        """Tracks per label."""
        out = dict.fromkeys(self.labels, 0)
        for tags in self.tags:
            for t in tags:
                out[t] += 1
        return out

    def targets(self, labels: list[str]) -> np.ndarray:
        """``(tracks, labels)`` bool matrix."""
        column = {name: j for j, name in enumerate(labels)}
        y = np.zeros((len(self.paths), len(labels)), dtype=bool)
        for i, tags in enumerate(self.tags):
            for t in tags:
                if t in column:
                    y[i, column[t]] = True
        return y

    def subset(self, keep: list[int]) -> "LabelSet":
        return LabelSet([self.paths[i] for i in keep], [self.tags[i] for i in keep], self.mode, self.audio_root,
                        self.source, [self.split[i] for i in keep])


def read_labels(labels: str | os.PathLike, audio_root: str | os.PathLike | None = None) -> LabelSet:
    """A labels file (TSV/CSV) or a folder tree, by what ``labels`` is on disk."""
    source = Path(labels)
    if source.is_dir():
        return read_tree(source, audio_root)
    if source.is_file():
        return read_table(source, audio_root)
    raise HeadDataError(f"{source} is neither a labels file (TSV/CSV: path<TAB>tag1,tag2) nor a folder of class folders")


def split_tags(field_text: str) -> list[str]:
    """``"rock, pop;jazz"`` -> ``["rock", "pop", "jazz"]`` (commas or semicolons; blanks dropped, order kept, no repeats)."""
    parts = (t.strip() for t in field_text.replace(";", ",").split(","))
    return list(dict.fromkeys(t for t in parts if t))


def _relative(path_text: str, root: Path, where: str) -> str:
    """The path as a clean relative posix path under ``root`` (absolute paths under it are accepted)."""
    base = Path(os.path.normpath(root.absolute()))
    path = Path(path_text)
    full = Path(os.path.normpath(path if path.is_absolute() else base / path))
    try:
        return full.relative_to(base).as_posix()
    except ValueError:
        raise HeadDataError(f"{where}: {path_text} is outside the audio root {root}; pass an audio root "
                            "(--audio-root) that holds every listed file") from None


def read_table(path: str | os.PathLike, audio_root: str | os.PathLike | None = None) -> LabelSet:
    """Rows ``path<TAB>tags[<TAB>split]`` (tab-separated, else comma-separated); an optional header names columns.

    A header is recognised by a first cell called path/file/filename/audio. Without a header the
    columns are path, tags and optionally split (train/validation). Tags within the field are
    separated by commas or semicolons (quote the field in a CSV).
    """
    path = Path(path)
    root = Path(audio_root) if audio_root is not None else path.parent
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise HeadDataError(f"cannot read labels file {path}: {error}") from None
    lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if not lines:
        raise HeadDataError(f"{path} holds no rows; write one track per line: path<TAB>tag1,tag2")
    delimiter = "\t" if "\t" in lines[0] else ","
    rows = list(csv.reader(io.StringIO("\n".join(lines)), delimiter=delimiter))
    first = [c.strip().lower() for c in rows[0]]
    path_col, tag_col, split_col = 0, 1, 2
    if first and first[0] in PATH_COLUMNS:
        tag_cols = [j for j, name in enumerate(first) if name in TAG_COLUMNS]
        path_col = 0
        tag_col = tag_cols[0] if tag_cols else 1
        split_col = first.index("split") if "split" in first else None
        rows, line_offset = rows[1:], 2
    else:
        line_offset = 1
    paths, tags, splits = [], [], []
    for n, row in enumerate(rows, start=line_offset):
        where = f"{path.name} row {n}"
        if not row or not row[path_col].strip():
            raise HeadDataError(f"{where}: no path")
        split = None
        if split_col is not None and len(row) > split_col and row[split_col].strip():
            value = row[split_col].strip().lower()
            if value not in SPLITS:
                raise HeadDataError(
                    f"{where}: split value {row[split_col]!r} is not train or validation"
                    + (" (in a CSV, quote the tags field: \"rock,pop\", or separate tags with ';')" if delimiter == "," else ""))
            split = SPLITS[value]
        paths.append(_relative(row[path_col].strip(), root, where))
        tags.append(split_tags(row[tag_col]) if len(row) > tag_col else [])
        splits.append(split)
    if any(s is not None for s in splits) and any(s is None for s in splits):
        blank = splits.index(None) + line_offset
        raise HeadDataError(f"{path.name}: the split column is filled on some rows but not on row {blank}; "
                            "give every row train or validation, or drop the column for a seeded split")
    return LabelSet(paths, tags, "multi", root, str(path), splits)


def read_tree(root: str | os.PathLike, audio_root: str | os.PathLike | None = None) -> LabelSet:
    """``ROOT/<class>/<files>``: one class per top-level folder; audio files found recursively below it."""
    root = Path(root)
    base = Path(audio_root) if audio_root is not None else root
    paths, tags = [], []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for file in sorted(_files_under(folder)):
            if file.is_file() and file.suffix.lower() in audio_io.AUDIO_EXTENSIONS:
                paths.append(_relative(str(file.absolute()), base, str(file)))
                tags.append([folder.name])
    if not paths:
        raise HeadDataError(f"no audio files under {root}/<class>/; put each class's files in a folder named after it")
    return LabelSet(paths, tags, "single", base, str(root))


def _files_under(folder: Path) -> list[Path]:
    """Every file below ``folder``; a subfolder that cannot be read is an error (``rglob`` would skip
    it silently, and its class would be fitted on part of its tracks)."""

    def unreadable(error: OSError) -> None:
        raise HeadDataError(f"folder {error.filename} cannot be read ({error.strerror or error}); fix its "
                            "permissions (its tracks belong to a class) and rerun")

    found, seen = [], set()
    for parent, subfolders, files in os.walk(folder, onerror=unreadable, followlinks=True):
        real = os.path.realpath(parent)
        if real in seen:  # a linked folder met twice (or a link loop): entered once
            subfolders[:] = []
            continue
        seen.add(real)
        found.extend(Path(parent) / name for name in files)
    return found
