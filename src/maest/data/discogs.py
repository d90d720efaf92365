"""Discogs XML dumps + the user's track->release mapping -> Discogs style ground truth (paper, 3.1).

The dumps (``releases.xml.gz``, ``masters.xml.gz``, tens of GB uncompressed) are streamed with
``iterparse`` and each record is cleared once read. Labels are "Genre---Style" and are built per
master: a track gets the styles of every release of its master (a release without a master is its
own group). Then tracks not longer than 20 s are dropped (when durations are given), masters with
more than five styles are dropped, the top-N styles over the pool of tracks are kept, tracks with
none of them are dropped, and the rest is split artist-disjointly (``groundtruth.split_tracks``).

Pairing styles with genres: a release lists genres and styles separately. A style is paired with
each of the release's genres G for which "G---style" is a known label (the shipped 400/519 lists);
when none is known, with every genre of the release. A style on a release without genres is
dropped (counted as ``style without genre``).
"""

from __future__ import annotations

import csv
import gzip
import os
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from maest.data.groundtruth import Track, shipped_label_names, split_tracks, top_labels, write_groundtruth

VARIOUS_ARTISTS_ID = "194"  # Discogs' "Various": a compilation marker, not an artist


class DiscogsError(ValueError):
    """An input (dump or mapping) cannot be used at all; per-record problems are counted instead."""


@dataclass
class Release:
    """The fields of one dump record (release or master) that the labels need."""

    id: int
    artists: list[str]
    genres: list[str]
    styles: list[str]
    master_id: int | None = None  # releases only
    main_release: int | None = None  # masters only


@dataclass
class MappedTrack:
    path: str
    release_id: int
    duration: float | None = None


@dataclass
class Problems:
    """Malformed or unusable records, counted by reason (reported, never fatal)."""

    counts: Counter = field(default_factory=Counter)

    def add(self, reason: str) -> None:
        self.counts[reason] += 1


def _open_dump(path: Path, progress: bool, what: str):
    """A text stream of a (gzipped) dump with a progress bar over the compressed bytes read."""
    if not path.is_file():
        raise DiscogsError(f"Discogs dump {path} not found (download from https://data.discogs.com)")
    raw = open(path, "rb")
    bar = tqdm(total=path.stat().st_size, unit="B", unit_scale=True, desc=what, disable=not progress)
    counted = _CountingReader(raw, bar)
    return (gzip.GzipFile(fileobj=counted) if raw.peek(2)[:2] == b"\x1f\x8b" else counted), raw, bar


class _CountingReader:
    """A binary file whose reads advance a progress bar (compressed bytes: the only known total)."""

    def __init__(self, raw, bar):
        self.raw, self.bar = raw, bar

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.bar.update(len(data))
        return data


def _texts(element: ET.Element, path: str) -> list[str]:
    return [e.text.strip() for e in element.findall(path) if e.text and e.text.strip()]


def _int(text: str | None) -> int | None:
    try:
        return int(text.strip()) if text is not None else None
    except ValueError:
        return None


def iter_records(path: str | os.PathLike, tag: str, problems: Problems, progress: bool = False) -> Iterator[Release]:
    """Stream ``<release>`` or ``<master>`` records of a dump; malformed ones are counted in ``problems``."""
    stream, raw, bar = _open_dump(Path(path), progress, f"reading {Path(path).name}")
    depth = 0
    root = None
    found = False
    try:
        for event, element in ET.iterparse(stream, events=("start", "end")):
            if event == "start":
                depth += 1
                if root is None:
                    root = element
                continue
            depth -= 1
            if depth != 1:
                continue
            if element.tag == tag:
                found = True
                record = _parse_record(element, tag, problems)
                if record is not None:
                    yield record
            elif not found:
                # e.g. the releases dump given as the masters dump, where every master would silently
                # be unknown: fail at the first record, not after hours of parsing.
                break
            element.clear()
            root.clear()  # drop the parent's references to finished records: constant memory
        if not found:
            raise DiscogsError(f"{path} holds no <{tag}> records (root <{getattr(root, 'tag', None)}>): "
                               f"is it the {tag}s dump?")
    except ET.ParseError as error:
        raise DiscogsError(f"{path}: not a well-formed XML dump ({error}); is the download complete?") from None
    except (OSError, EOFError) as error:
        raise DiscogsError(f"{path}: cannot read the dump ({error}); is the download complete?") from None
    finally:
        bar.close()
        raw.close()


def _parse_record(element: ET.Element, tag: str, problems: Problems) -> Release | None:
    record_id = _int(element.get("id"))
    if record_id is None:
        problems.add(f"{tag} without a valid id")
        return None
    artists = []
    for artist in element.findall("artists/artist"):
        artist_id = _int(artist.findtext("id"))
        if artist_id is None:
            problems.add(f"{tag} artist without a valid id")
            continue
        artists.append(str(artist_id))
    record = Release(record_id, artists, _texts(element, "genres/genre"), _texts(element, "styles/style"))
    if tag == "release":
        master = element.find("master_id")
        if master is not None and (master.text or "").strip():
            record.master_id = _int(master.text)
            if record.master_id is None:
                problems.add("release with a malformed master_id")
    else:
        record.main_release = _int(element.findtext("main_release"))
    return record


def pair_styles(genres: Iterable[str], styles: Iterable[str], known: frozenset[str], problems: Problems) -> set[str]:
    """A release's genres and styles -> "Genre---Style" labels (rule in the module docstring)."""
    genres = list(dict.fromkeys(genres))
    labels: set[str] = set()
    for style in styles:
        if not genres:
            problems.add("style without genre")
            continue
        paired = [f"{g}---{style}" for g in genres if f"{g}---{style}" in known]
        labels.update(paired or [f"{g}---{style}" for g in genres])
    return labels


def read_mapping(path: str | os.PathLike, problems: Problems) -> list[MappedTrack]:
    """The user's ``track path, release id[, duration seconds]`` CSV/TSV (an optional header is skipped).

    A path listed again (the same file on an album and a compilation) keeps its first release: one
    audio file is one track, never two tracks that could land in different splits.
    """
    path = Path(path)
    if not path.is_file():
        raise DiscogsError(f"track->release mapping {path} not found")
    with open(path, encoding="utf-8", newline="") as f:
        first = f.readline()
        f.seek(0)
        delimiter = "\t" if "\t" in first or path.suffix.lower() == ".tsv" else ","
        tracks = []
        seen: set[str] = set()
        for number, row in enumerate(csv.reader(f, delimiter=delimiter), 1):
            if not row or not any(cell.strip() for cell in row):
                continue
            if len(row) < 2 or not row[0].strip():
                problems.add("mapping row without path and release id")
                continue
            release_id = _int(row[1].lstrip("r"))
            if release_id is None:
                if number == 1:  # a header
                    continue
                problems.add("mapping row with a malformed release id")
                continue
            duration = None
            if len(row) > 2 and row[2].strip():
                try:
                    duration = float(row[2])
                except ValueError:
                    problems.add("mapping row with a malformed duration")
                    continue
            if row[0].strip() in seen:
                problems.add("mapping row repeating a track path (first release kept)")
                continue
            seen.add(row[0].strip())
            tracks.append(MappedTrack(row[0].strip(), release_id, duration))
    if not tracks:
        raise DiscogsError(f"{path}: no usable 'path,release_id[,duration]' rows")
    return tracks


def discogs_tracks(
    mapping: str | os.PathLike,
    releases_dump: str | os.PathLike,
    masters_dump: str | os.PathLike | None = None,
    min_duration: float = 20.0,
    problems: Problems | None = None,
    progress: bool = True,
) -> list[Track]:
    """Mapped tracks with their master-level labels, artists and group (before style filters)."""
    problems = problems if problems is not None else Problems()
    mapped = read_mapping(mapping, problems)
    wanted = {t.release_id for t in mapped}
    known_masters: set[int] | None = None
    if masters_dump is not None:
        known_masters = {m.id for m in iter_records(masters_dump, "master", problems, progress)}
    known = shipped_label_names()
    label_ids: dict[str, int] = {}
    interned: dict[frozenset[int], frozenset[int]] = {}
    # Every master's style union over all its releases (interned sets: a few hundred MB at most for
    # the full dump); only the mapped releases are kept whole.
    master_styles: dict[int, frozenset[int]] = {}
    releases: dict[int, tuple[list[str], int | None, frozenset[int]]] = {}
    for release in iter_records(releases_dump, "release", problems, progress):
        labels = pair_styles(release.genres, release.styles, known, problems)
        ids = frozenset(label_ids.setdefault(x, len(label_ids)) for x in labels)
        master = release.master_id
        if master is not None and known_masters is not None and master not in known_masters:
            problems.add("release with a master not in the masters dump (own group)")
            master = None
        if master is not None:
            union = master_styles.get(master, frozenset()) | ids
            master_styles[master] = interned.setdefault(union, union)
        if release.id in wanted:
            releases[release.id] = (release.artists, master, ids)
    names = {i: name for name, i in label_ids.items()}
    tracks = []
    for item in mapped:
        if item.release_id not in releases:
            problems.add("mapped release not in the releases dump")
            continue
        if item.duration is not None and item.duration <= min_duration:  # keep tracks LONGER than it
            problems.add(f"track not longer than {min_duration:g} s")
            continue
        artists, master, own = releases[item.release_id]
        styles = master_styles[master] if master is not None else own
        group = f"master:{master}" if master is not None else f"release:{item.release_id}"
        labels = sorted(names[i] for i in styles)
        tracks.append(Track(item.path, labels, [a for a in artists if a != VARIOUS_ARTISTS_ID], group))
    return tracks


def filter_styles(
    tracks: list[Track], top_n: int = 400, max_styles: int = 5, problems: Problems | None = None
) -> tuple[list[Track], list[str]]:
    """Drop tracks of masters with more than ``max_styles`` styles (0: no limit), keep the ``top_n`` styles over the
    remaining pool of tracks, drop tracks left without any; returns ``(tracks, labels)``."""
    problems = problems if problems is not None else Problems()
    kept = []
    for track in tracks:
        if not track.labels:
            problems.add("track without styles")
        elif 0 < max_styles < len(track.labels):
            problems.add(f"track of a master with more than {max_styles} styles")
        else:
            kept.append(track)
    labels = top_labels(kept, top_n)
    allowed = set(labels)
    result = []
    for track in kept:
        chosen = [label for label in track.labels if label in allowed]
        if chosen:
            result.append(Track(track.path, chosen, track.artists, track.group))
        else:
            problems.add(f"track without any of the top {top_n} styles")
    return result, labels


def build_groundtruth(
    out_dir: str | os.PathLike,
    tracks: list[Track],
    top_n: int = 400,
    max_styles: int = 5,
    validation: float = 0.1,
    test: float = 0.1,
    seed: int = 0,
    problems: Problems | None = None,
) -> dict:
    """Filter labelled tracks, split them artist-disjointly and write the ground-truth files; returns the summary."""
    problems = problems if problems is not None else Problems()
    candidates = len(tracks)
    kept, labels = filter_styles(tracks, top_n, max_styles, problems)
    if not kept:
        raise DiscogsError("no track is left after the filters: check the mapping, the dump and --top-n")
    splits = split_tracks(kept, validation, test, seed)
    summary = {
        "candidate_tracks": candidates,
        "kept_tracks": len(kept),
        "dropped_or_malformed": dict(sorted(problems.counts.items())),
    }
    return write_groundtruth(out_dir, splits, labels, summary)
