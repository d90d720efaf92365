"""Ground-truth files: ``path<TAB>label,label`` per split plus ``labels.json``; splitting and reading.

Labels are joined with commas although Discogs genre names contain commas ("Folk, World, &
Country---Folk"): readers split with the known label list (longest match), so round trips are exact.
Splits are artist-disjoint: tracks that share an artist, a label group (master) or a path are one unit.
"""

from __future__ import annotations

import json
import os
import random
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from maest.atomic import atomic_write_text

SPLITS = ("train", "validation", "test")


class GroundTruthError(ValueError):
    """A ground-truth or tag file cannot be read; the message names the file and line."""


@dataclass
class Track:
    """One audio track on its way to a split: its labels, the artists and group that tie it to others."""

    path: str
    labels: list[str]
    artists: list[str] = field(default_factory=list)
    group: str | None = None  # e.g. "master:123": tracks of a group never span splits


def shipped_label_names() -> frozenset[str]:
    """Every "Genre---Style" name in the label lists shipped with the package (400 and 519 classes)."""
    names: set[str] = set()
    for num_classes in (400, 519):
        text = resources.files("maest").joinpath(f"resources/discogs-{num_classes}-styles.json").read_text()
        names.update(json.loads(text))
    return frozenset(names)


def split_labels(text: str, known: Iterable[str] = ()) -> list[str]:
    """Comma-separated labels -> list; comma pieces are re-joined where they form a known label."""
    pieces = [p for p in text.split(",")]
    # Sets and mappings (label -> column) are looked up as they are: rebuilding a set per line made
    # reading a 3.3 M-track split take minutes.
    known = known if isinstance(known, (set, frozenset, dict)) else set(known)
    labels: list[str] = []
    i = 0
    while i < len(pieces):
        match = None
        for j in range(len(pieces), i + 1, -1):  # longest run of pieces that is a known label
            candidate = ",".join(pieces[i:j]).strip()
            if candidate in known:
                match = (candidate, j)
                break
        if match is None:
            match = (pieces[i].strip(), i + 1)
        if match[0]:
            labels.append(match[0])
        i = match[1]
    return labels


def read_tag_file(path: str | os.PathLike, known: Iterable[str] | None = None) -> list[Track]:
    """A user's own labels: ``path<TAB>tag1,tag2[<TAB>artist]`` per line; ``#`` lines are comments."""
    known = shipped_label_names() if known is None else frozenset(known)
    tracks: list[Track] = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            line = line.rstrip("\r\n")
            if not line.strip() or line.startswith("#"):
                continue
            fields = line.split("\t")
            if len(fields) < 2 or not fields[0]:
                raise GroundTruthError(f"{path}:{number}: expected 'path<TAB>tag1,tag2[<TAB>artist]', got {line!r}")
            artists = [fields[2].strip()] if len(fields) > 2 and fields[2].strip() else []
            tracks.append(Track(fields[0], split_labels(fields[1], known), artists))
    return tracks


def resolve_sizes(total: int, validation: float, test: float) -> tuple[int, int]:
    """Target validation/test track counts: values below 1 are fractions of ``total``, others counts."""
    sizes = []
    for name, value in (("validation", validation), ("test", test)):
        if value < 0:
            raise ValueError(f"{name} size must be >= 0, got {value}")
        sizes.append(int(round(value * total)) if value < 1 else int(value))
    if sizes[0] + sizes[1] > total:
        raise ValueError(f"validation + test ({sizes[0]} + {sizes[1]}) exceed the {total} tracks available")
    return sizes[0], sizes[1]


def _units(tracks: Sequence[Track]) -> list[list[int]]:
    """Connected components of tracks linked by a shared artist, group or path (union-find)."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for track in tracks:
        node = f"path:{track.path}"  # a path listed twice is one node: the same audio stays in one split
        for key in [f"artist:{a}" for a in track.artists] + ([f"group:{track.group}"] if track.group else []):
            parent[find(key)] = find(node)
    components: dict[str, list[int]] = {}
    for i, track in enumerate(tracks):
        components.setdefault(find(f"path:{track.path}"), []).append(i)
    return list(components.values())


def split_tracks(
    tracks: Sequence[Track], validation: float = 0.1, test: float = 0.1, seed: int = 0
) -> dict[str, list[Track]]:
    """Artist-disjoint train/validation/test splits of about the requested sizes, deterministic in ``seed``.

    Units (tracks tied by artist or group) are shuffled, then fill validation, then test, while they
    fit the target; the rest is training. A unit larger than a target's remaining room is skipped.
    """
    target_validation, target_test = resolve_sizes(len(tracks), validation, test)
    units = sorted(_units(tracks), key=lambda unit: unit[0])
    random.Random(seed).shuffle(units)
    chosen: dict[str, list[int]] = {name: [] for name in SPLITS}
    room = {"validation": target_validation, "test": target_test}
    for unit in units:
        name = next((n for n in ("validation", "test") if len(unit) <= room[n]), "train")
        if name != "train":
            room[name] -= len(unit)
        chosen[name].extend(unit)
    return {name: [tracks[i] for i in sorted(indices)] for name, indices in chosen.items()}


def write_groundtruth(
    out_dir: str | os.PathLike, splits: dict[str, Sequence[Track]], labels: Sequence[str], summary: dict | None = None
) -> dict:
    """Write ``train/validation/test.tsv``, ``labels.json`` and ``summary.json``; returns the summary."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    label_set = set(labels)
    summary = dict(summary or {})
    summary["labels"] = len(labels)
    for name in SPLITS:
        lines = []
        for track in splits.get(name, []):
            if "\t" in track.path or "\n" in track.path:
                raise GroundTruthError(f"track path contains a tab or newline: {track.path!r}")
            unknown = set(track.labels) - label_set
            if unknown:
                raise GroundTruthError(f"{track.path}: labels not in the label list: {sorted(unknown)}")
            lines.append(f"{track.path}\t{','.join(sorted(track.labels))}\n")
        atomic_write_text(out / f"{name}.tsv", "".join(lines))
        summary[f"{name}_tracks"] = len(lines)
        summary[f"{name}_artists"] = len({a for t in splits.get(name, []) for a in t.artists})
    per_track = [len(t.labels) for name in SPLITS for t in splits.get(name, [])]
    summary["labels_per_track"] = round(float(np.mean(per_track)), 3) if per_track else 0.0
    atomic_write_text(out / "labels.json", json.dumps(list(labels), indent=0, ensure_ascii=False) + "\n")
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    return summary


def top_labels(tracks: Iterable[Track], n: int) -> list[str]:
    """The ``n`` labels carried by most tracks (ties broken by name), sorted by name."""
    counts = Counter(label for track in tracks for label in set(track.labels))
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:n]
    return sorted(label for label, _ in ranked)


def read_groundtruth(
    tsv: str | os.PathLike, labels: Sequence[str] | str | os.PathLike | None = None
) -> tuple[list[str], np.ndarray, list[str]]:
    """A split file -> ``(paths, targets bool (N, C), labels)``; ``labels`` defaults to ``labels.json`` beside it.

    Every label in the file must be in the label list (a typo would silently become a negative).
    """
    tsv = Path(tsv)
    if labels is None:
        labels = tsv.with_name("labels.json")
    if isinstance(labels, (str, os.PathLike)):
        labels_path = Path(labels)
        if not labels_path.is_file():
            raise GroundTruthError(f"label list {labels_path} not found: pass labels= or put labels.json beside {tsv}")
        labels = json.loads(labels_path.read_text(encoding="utf-8"))
    labels = list(labels)
    column = {label: k for k, label in enumerate(labels)}
    paths: list[str] = []
    rows: list[list[int]] = []
    with open(tsv, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            path, _, text = line.partition("\t")
            names = split_labels(text, column)
            unknown = [name for name in names if name not in column]
            if unknown:
                raise GroundTruthError(f"{tsv}:{number}: labels not in the label list: {unknown}")
            paths.append(path)
            rows.append([column[name] for name in names])
    targets = np.zeros((len(paths), len(labels)), dtype=bool)
    for i, row in enumerate(rows):
        targets[i, row] = True
    return paths, targets, labels


def read_paths(path: str | os.PathLike) -> list[str]:
    """Track paths from a split file or a plain list: the first tab-separated column of each line."""
    paths = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\r\n")
            if line.strip() and not line.startswith("#"):
                paths.append(line.split("\t", 1)[0])
    return paths
