"""Split loaders for the paper's downstream datasets, each read from its real published files.

Every loader returns a :class:`Dataset`: label names plus ``train``/``validation``/``test``
:class:`Split` s holding audio paths relative to the dataset's audio root, a boolean target matrix
and track ids (:mod:`maest.evaluate.splits`). Label columns are always mapped by name, never by position.
"""

from __future__ import annotations

import csv
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from maest.evaluate.safe_pickle import load_npy, safe_load
from maest.evaluate.splits import (SPLITS, AudioCheck, Dataset, DatasetFormatError,  # noqa: F401  (re-exported)
                                   MissingAudioError, Split, check_audio, drop_paths)

MTG_JAMENDO_SUBSETS = ("genre", "instrument", "moodtheme", "top50tags")
MTG_JAMENDO_HEADER = ["TRACK_ID", "ARTIST_ID", "ALBUM_ID", "PATH", "DURATION", "TAGS"]
# MTT clips whose mp3 is corrupt in the official release (excluded by every published split).
MTT_CORRUPT_CLIPS = frozenset({"35644", "55753", "57881"})
# MTT 12-1-3 split by the first character of the clip folder.
MTT_FOLDER_SPLIT = {**{c: "train" for c in "0123456789ab"}, "c": "validation", **{c: "test" for c in "def"}}
MSD_TRAIN_COUNT = 201_680  # the usual split: the first 201,680 ids of filtered_list_train.cP train


# -- helpers ------------------------------------------------------------------------------------
def _require(path: Path) -> Path:
    if not path.is_file():
        raise DatasetFormatError(f"expected split file {path} is missing")
    return path


def _targets_from_tags(rows: Sequence[Sequence[str]], labels: Sequence[str], source: str) -> np.ndarray:
    column = {label: j for j, label in enumerate(labels)}
    targets = np.zeros((len(rows), len(labels)), dtype=bool)
    for i, tags in enumerate(rows):
        for tag in tags:
            if tag not in column:
                raise DatasetFormatError(f"{source}: tag {tag!r} is not in the label list")
            targets[i, column[tag]] = True
    return targets


def _map_columns(matrix: np.ndarray, names: Sequence[str], labels: Sequence[str], source: str) -> np.ndarray:
    """Reorder the columns of ``matrix`` (named ``names``) into ``labels`` order, by name."""
    names = [str(n) for n in names]
    if matrix.ndim != 2 or matrix.shape[1] != len(names):
        raise DatasetFormatError(f"{source}: {matrix.shape} matrix for {len(names)} tag names")
    index = {n: j for j, n in enumerate(names)}
    absent = [label for label in labels if label not in index]
    if absent:
        raise DatasetFormatError(f"{source}: labels {absent[:5]} are not among its tag names")
    return matrix[:, [index[label] for label in labels]].astype(bool)


def _read_lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# -- MTG-Jamendo --------------------------------------------------------------------------------
def load_mtg_jamendo(
    split_dir: str | os.PathLike, subset: str, split_number: int = 0, low_quality: bool = False
) -> Dataset:
    """MTG-Jamendo ``autotagging_{subset}-{train,validation,test}.tsv`` of one split (CRLF TSVs).

    ``split_dir`` is the folder holding the TSVs or its parent with ``split-N/``. Every field from
    the sixth on is one tag; labels are the sorted union of tags over the three splits.
    ``low_quality=True`` points paths at the ``.low.mp3`` release.
    """
    if subset not in MTG_JAMENDO_SUBSETS:
        raise ValueError(f"unknown MTG-Jamendo subset {subset!r}; choose from {MTG_JAMENDO_SUBSETS}")
    folder = Path(split_dir)
    if (folder / f"split-{split_number}").is_dir():
        folder = folder / f"split-{split_number}"
    rows: dict[str, list[tuple[str, str, list[str]]]] = {}
    for name in SPLITS:
        path = _require(folder / f"autotagging_{subset}-{name}.tsv")
        with open(path, encoding="utf-8", newline="") as f:
            lines = [line.rstrip("\r\n") for line in f]
        lines = [line for line in lines if line]
        if not lines or lines[0].split("\t") != MTG_JAMENDO_HEADER:
            raise DatasetFormatError(f"{path}: header is not {' '.join(MTG_JAMENDO_HEADER)}")
        parsed = []
        for number, line in enumerate(lines[1:], start=2):
            fields = line.split("\t")
            if len(fields) < 6:
                raise DatasetFormatError(f"{path}:{number}: {len(fields)} fields, expected at least 6")
            track_id, audio_path, tags = fields[0], fields[3], [t for t in fields[5:] if t]
            if low_quality:
                audio_path = audio_path[: -len(".mp3")] + ".low.mp3" if audio_path.endswith(".mp3") else audio_path
            parsed.append((track_id, audio_path, tags))
        rows[name] = parsed
    labels = sorted({tag for parsed in rows.values() for _, _, tags in parsed for tag in tags})
    splits = {
        name: Split(
            name,
            [p for _, p, _ in parsed],
            _targets_from_tags([t for _, _, t in parsed], labels, f"MTG-Jamendo {subset}"),
            [i for i, _, _ in parsed],
        )
        for name, parsed in rows.items()
    }
    quality = "low-quality .low.mp3" if low_quality else "full-quality .mp3"
    return Dataset(f"mtg-jamendo-{subset}", labels, splits, f"split-{split_number} TSVs, {quality}")


# -- MagnaTagATune ------------------------------------------------------------------------------
def load_mtt_tsv(split_dir: str | os.PathLike) -> Dataset:
    """MTT 12-1-3 as ``{train,validation,test}.tsv`` (``path<TAB>comma-separated tags``) + ``tags.txt``."""
    folder = Path(split_dir)
    labels = _read_lines(_require(folder / "tags.txt"))
    splits = {}
    for name in SPLITS:
        path = _require(folder / f"{name}.tsv")
        with open(path, encoding="utf-8", newline="") as f:
            reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
            header = next(reader, None)
            if header != ["path", "tags"]:
                raise DatasetFormatError(f"{path}: header must be 'path<TAB>tags', got {header}")
            records = [row for row in reader if row]
        bad = [r for r in records if len(r) != 2]
        if bad:
            raise DatasetFormatError(f"{path}: {len(bad)} rows without exactly two fields, e.g. {bad[0]}")
        tags = [[t for t in r[1].split(",") if t] for r in records]
        paths = [r[0] for r in records]
        ids = [Path(p).stem for p in paths]
        splits[name] = Split(name, paths, _targets_from_tags(tags, labels, str(path)), ids)
    return Dataset("mtt", labels, splits, "12-1-3 TSVs (all 25,860 usable clips, untagged kept)")


def load_mtt_annotations(
    csv_path: str | os.PathLike, labels: Sequence[str] | None = None, top_n: int = 50, drop_untagged: bool = False
) -> Dataset:
    """MTT from ``annotations_final.csv`` (tab-separated, quoted, 188 tags) split by clip folder.

    Labels: ``labels`` if given, else the ``top_n`` most frequent tags over all rows (ties keep file
    order), sorted alphabetically. The three corrupt clips are excluded.
    """
    path = Path(csv_path)
    if path.is_dir():
        path = path / "annotations_final.csv"
    _require(path)
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter="\t", quotechar='"')
        header = next(reader, None)
        records = [row for row in reader if row]
    if not header or header[0] != "clip_id" or header[-1] != "mp3_path":
        raise DatasetFormatError(f"{path}: expected columns clip_id, <tags>, mp3_path")
    tag_names = header[1:-1]
    if any(len(r) != len(header) for r in records):
        raise DatasetFormatError(f"{path}: rows with a different number of fields than the header")
    matrix = np.array([[int(v) for v in r[1:-1]] for r in records], dtype=np.int64).reshape(len(records), len(tag_names))
    if labels is None:
        counts = matrix.sum(axis=0)
        order = sorted(range(len(tag_names)), key=lambda j: -counts[j])  # stable: ties keep file order
        labels = sorted(tag_names[j] for j in order[:top_n])
    labels = list(labels)
    targets = _map_columns(matrix, tag_names, labels, str(path))
    keep = np.array([r[0] not in MTT_CORRUPT_CLIPS and r[-1] != "" for r in records])
    if drop_untagged:
        keep &= targets.any(axis=1)
    splits = {}
    for name in SPLITS:
        rows = [i for i in np.flatnonzero(keep) if MTT_FOLDER_SPLIT.get(records[i][-1][:1]) == name]
        splits[name] = Split(name, [records[i][-1] for i in rows], targets[rows], [records[i][0] for i in rows])
    variant = "annotations_final.csv, folder split 0-b/c/d-f" + (", untagged dropped" if drop_untagged else ", untagged kept")
    return Dataset("mtt", labels, splits, variant)


def load_mtt_binary(split_dir: str | os.PathLike, labels: Sequence[str] | None = None) -> Dataset:
    """MTT from ``binary.npy`` (rows x tags) + ``tags.npy`` + ``{train,valid,test}.npy`` lists of ``"<row>\\t<path>"``.

    This widely used variant keeps only clips with at least one top-50 tag. Columns are mapped by
    name onto ``labels`` (default: the tags sorted alphabetically, as in ``tags.txt``).
    """
    folder = Path(split_dir)
    binary = load_npy(_require(folder / "binary.npy"))
    tag_names = [str(t) for t in load_npy(_require(folder / "tags.npy")).tolist()]
    labels = sorted(tag_names) if labels is None else list(labels)
    targets = _map_columns(binary, tag_names, labels, str(folder / "binary.npy"))
    splits = {}
    for name, file in zip(SPLITS, ("train", "valid", "test")):
        entries = [e.decode() if isinstance(e, bytes) else str(e) for e in load_npy(_require(folder / f"{file}.npy")).tolist()]
        rows, paths = [], []
        for entry in entries:
            row, _, audio_path = entry.partition("\t")
            if not audio_path or not row.isdigit() or int(row) >= targets.shape[0]:
                raise DatasetFormatError(f"{folder / (file + '.npy')}: bad entry {entry!r} (expected '<row>\\t<path>')")
            rows.append(int(row))
            paths.append(audio_path)
        splits[name] = Split(name, paths, targets[rows], [str(r) for r in rows])
    return Dataset("mtt", labels, splits, "binary.npy + split arrays (clips with >= 1 tag only)")


def load_mtt(metadata: str | os.PathLike, **kwargs) -> Dataset:
    """MTT from whichever published form ``metadata`` holds (TSVs, annotations_final.csv or binary.npy)."""
    path = Path(metadata)
    if path.is_file() and path.suffix == ".csv":
        return load_mtt_annotations(path, **kwargs)
    if (path / "tags.txt").is_file() and (path / "train.tsv").is_file():
        return load_mtt_tsv(path)
    if (path / "binary.npy").is_file():
        return load_mtt_binary(path, **kwargs)
    if (path / "annotations_final.csv").is_file():
        return load_mtt_annotations(path, **kwargs)
    raise DatasetFormatError(
        f"{path}: no MTT split files found (train.tsv + tags.txt, annotations_final.csv, or binary.npy + tags.npy)"
    )


# -- Million Song Dataset -----------------------------------------------------------------------
def _as_str(value) -> str:
    return value.decode("latin1") if isinstance(value, bytes) else str(value)


def load_msd(
    split_dir: str | os.PathLike, train_count: int = MSD_TRAIN_COUNT, require_audio_map: bool = True
) -> Dataset:
    """MSD usual split from its Python-2 pickles, read through the restricted unpickler.

    ``filtered_list_train.cP`` holds train then validation ids (the first ``train_count`` are train),
    ``filtered_list_test.cP`` the test ids, ``msd_id_to_tag_vector.cP`` id -> (50, 1) vectors in
    ``50tagList.txt`` order. Paths come from the 7digital maps ``MSD_id_to_7D_id.pkl`` and
    ``7D_id_to_path.pkl``; without them (``require_audio_map=False``) a path is the MSD id.
    """
    folder = Path(split_dir)
    labels = _read_lines(_require(folder / "50tagList.txt"))
    train_ids = [_as_str(i) for i in safe_load(_require(folder / "filtered_list_train.cP"))]
    test_ids = [_as_str(i) for i in safe_load(_require(folder / "filtered_list_test.cP"))]
    vectors = {_as_str(k): v for k, v in safe_load(_require(folder / "msd_id_to_tag_vector.cP")).items()}
    if len(train_ids) <= train_count:
        raise DatasetFormatError(
            f"filtered_list_train.cP has {len(train_ids)} ids; the usual split needs more than {train_count} (train + validation)"
        )
    have_maps = (folder / "MSD_id_to_7D_id.pkl").is_file() and (folder / "7D_id_to_path.pkl").is_file()
    if require_audio_map and not have_maps:
        raise DatasetFormatError(f"{folder}: MSD_id_to_7D_id.pkl and 7D_id_to_path.pkl are needed to find the audio")
    to_path = None
    if have_maps:
        to_7d = {_as_str(k): _as_str(v) for k, v in safe_load(folder / "MSD_id_to_7D_id.pkl").items()}
        paths_7d = {_as_str(k): _as_str(v) for k, v in safe_load(folder / "7D_id_to_path.pkl").items()}
        to_path = (to_7d, paths_7d)
    groups = {"train": train_ids[:train_count], "validation": train_ids[train_count:], "test": test_ids}
    splits = {}
    for name, ids in groups.items():
        absent = [i for i in ids if i not in vectors]
        if absent:
            raise DatasetFormatError(f"msd_id_to_tag_vector.cP lacks {len(absent)} {name} ids, e.g. {absent[0]}")
        targets = np.stack([np.asarray(vectors[i]).reshape(-1) for i in ids]) if ids else np.zeros((0, len(labels)))
        if targets.shape[1] != len(labels):
            raise DatasetFormatError(f"tag vectors have {targets.shape[1]} entries for {len(labels)} tags in 50tagList.txt")
        if to_path is None:
            paths = list(ids)
        else:
            to_7d, paths_7d = to_path
            unmapped = [i for i in ids if i not in to_7d or to_7d[i] not in paths_7d]
            if unmapped:
                raise DatasetFormatError(f"{len(unmapped)} {name} ids have no 7digital path, e.g. {unmapped[0]}")
            paths = [paths_7d[to_7d[i]] for i in ids]
        splits[name] = Split(name, paths, targets > 0, list(ids))
    return Dataset("msd", labels, splits, "usual split (filtered_list_*.cP), 7digital paths" if to_path else "usual split, MSD ids as paths")


# Not 50tagList.txt: that names the usual split's vocabulary, which CALS does not share.
CALS_TAG_FILES = ("tags.npy", "tags.txt")


def load_msd_cals(split_dir: str | os.PathLike, labels: Sequence[str] | None = None) -> Dataset:
    """MSD CALS split: ``{train,valid,test}_ids.npy`` + ``{split}_binaries.npy``; audio ``{id[2]}/{id[3]}/{id[4]}/{id}.wav``.

    CALS has its own 50-tag vocabulary: names come from ``labels`` or a ``tags.npy``/``tags.txt``
    beside the arrays; otherwise columns are named ``tag_00``..``tag_49`` with a warning.
    """
    folder = Path(split_dir)
    splits = {}
    for name, file in zip(SPLITS, ("train", "valid", "test")):
        ids = [_as_str(i) for i in load_npy(_require(folder / f"{file}_ids.npy")).tolist()]
        binaries = load_npy(_require(folder / f"{file}_binaries.npy"))
        if binaries.ndim != 2 or binaries.shape[0] != len(ids):
            raise DatasetFormatError(f"{file}_binaries.npy has shape {binaries.shape} for {len(ids)} ids")
        short = [i for i in ids if len(i) < 5]
        if short:
            raise DatasetFormatError(f"{file}_ids.npy: {short[0]!r} is not an MSD track id")
        splits[name] = Split(name, [f"{i[2]}/{i[3]}/{i[4]}/{i}.wav" for i in ids], binaries > 0, ids)
    width = splits["train"].targets.shape[1]
    notes = []
    if labels is None:
        found = next((folder / f for f in CALS_TAG_FILES if (folder / f).is_file()), None)
        if found is not None:
            labels = [str(t) for t in load_npy(found).tolist()] if found.suffix == ".npy" else _read_lines(found)
        else:
            labels = [f"tag_{j:02d}" for j in range(width)]
            notes.append("no CALS tag names found; columns are named tag_00..")
            warnings.warn(f"{folder}: no tags.npy/tags.txt; CALS columns are unnamed (tag_00..)", stacklevel=2)
    return Dataset("msd-cals", list(labels), splits, "CALS artist-level split", notes)


# -- registry -----------------------------------------------------------------------------------
DATASETS = (
    *(f"mtg-jamendo-{s}" for s in MTG_JAMENDO_SUBSETS),
    "mtt",
    "msd",
    "msd-cals",
)


def load_dataset(name: str, metadata: str | os.PathLike, **kwargs) -> Dataset:
    """Load a dataset by name (see :data:`DATASETS`) from its split files at ``metadata``."""
    if name.startswith("mtg-jamendo-"):
        return load_mtg_jamendo(metadata, name.removeprefix("mtg-jamendo-"), **kwargs)
    loaders = {"mtt": load_mtt, "msd": load_msd, "msd-cals": load_msd_cals}
    if name not in loaders:
        raise ValueError(f"unknown dataset {name!r}; choose from {', '.join(DATASETS)}")
    return loaders[name](metadata, **kwargs)
