"""Split loaders: exact counts on the real split files; MSD, CALS and MTT variants on generated files."""

from __future__ import annotations

import csv
import os
import pickle

import numpy as np
import pytest

from maest.evaluate.datasets import (
    DatasetFormatError,
    MissingAudioError,
    check_audio,
    load_dataset,
    load_msd,
    load_msd_cals,
    load_mtt,
    load_mtt_annotations,
    load_mtt_binary,
)
from maest.evaluate.safe_pickle import UnsafePickleError, load_npy, safe_load

SPLIT_NAMES = ("train", "validation", "test")


# -- real files ---------------------------------------------------------------------------------
@pytest.mark.parametrize("subset,n_labels", [("genre", 87), ("instrument", 40), ("moodtheme", 56), ("top50tags", 50)])
def test_mtg_jamendo_counts_match_the_files(splits_dir, subset, n_labels):
    folder = splits_dir / "mtg-jamendo" / "split-0"
    dataset = load_dataset(f"mtg-jamendo-{subset}", splits_dir / "mtg-jamendo")
    tags = set()
    for name in SPLIT_NAMES:
        raw = (folder / f"autotagging_{subset}-{name}.tsv").read_bytes()
        lines = raw.split(b"\r\n")
        assert lines[-1] == b"" and b"\r" not in b"".join(lines)  # CRLF throughout
        rows = lines[1:-1]  # header and final empty piece
        split = dataset.splits[name]
        assert len(split) == len(rows)
        # Independent parse: the csv module; every field from the sixth on is a tag.
        with open(folder / f"autotagging_{subset}-{name}.tsv", newline="") as f:
            records = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))[1:]
        assert split.ids == [r[0] for r in records]
        assert split.paths == [r[3] for r in records]
        np.testing.assert_array_equal(split.targets.sum(1), [len(r) - 5 for r in records])
        for i in (0, len(records) // 2, len(records) - 1):
            assert {dataset.labels[j] for j in np.flatnonzero(split.targets[i])} == set(records[i][5:])
        tags.update(t for r in records for t in r[5:])
    assert len(dataset.labels) == len(tags) == n_labels
    assert all(p.endswith(".mp3") and "\r" not in p for p in dataset.all_paths())
    # Counts read from the current public files (the paper's Table 2 differs slightly for some).
    print(subset, dataset.counts(), sum(dataset.counts().values()))


def test_mtg_jamendo_low_quality_paths(splits_dir):
    dataset = load_dataset("mtg-jamendo-moodtheme", splits_dir / "mtg-jamendo", low_quality=True)
    first = dataset.splits["train"]
    assert first.paths[0] == "48/948.low.mp3"
    assert all(p.endswith(".low.mp3") for p in first.paths)


def test_mtt_tsv_counts(splits_dir):
    dataset = load_mtt(splits_dir / "mtt")
    assert dataset.counts() == {"train": 18_706, "validation": 1_825, "test": 5_329}
    assert dataset.labels == (splits_dir / "mtt" / "tags.txt").read_text().splitlines()
    untagged = {n: int((~s.targets.any(1)).sum()) for n, s in dataset.splits.items()}
    assert untagged == {"train": 3_459, "validation": 296, "test": 997}
    with open(splits_dir / "mtt" / "train.tsv", newline="") as f:
        rows = list(csv.reader(f, delimiter="\t"))[1:]
    train = dataset.splits["train"]
    assert train.paths == [r[0] for r in rows]
    np.testing.assert_array_equal(train.targets.sum(1), [len([t for t in r[1].split(",") if t]) for r in rows])


# -- MTT variants (generated, real formats) -----------------------------------------------------
def _annotations(path, tags, rows):
    with open(path, "w", newline="") as f:
        writer = csv.writer(f, delimiter="\t", quotechar='"', quoting=csv.QUOTE_ALL, lineterminator="\n")
        writer.writerow(["clip_id", *tags, "mp3_path"])
        for clip, values, mp3 in rows:
            writer.writerow([clip, *values, mp3])


def test_mtt_annotations_final_split_by_folder_and_top_tags(tmp_path):
    tags = ["guitar", "classical", "slow", "techno", "rare"]
    rows = [
        ("2", [1, 1, 0, 0, 0], "0/a-1.mp3"),
        ("6", [1, 0, 1, 0, 0], "b/b-1.mp3"),
        ("10", [0, 1, 1, 1, 0], "c/c-1.mp3"),
        ("35644", [1, 1, 1, 1, 1], "c/corrupt.mp3"),  # a known-corrupt clip: excluded
        ("12", [1, 0, 0, 1, 0], "d/d-1.mp3"),
        ("15", [0, 0, 0, 0, 1], "f/f-1.mp3"),  # no top-4 tag: kept unless drop_untagged
    ]
    _annotations(tmp_path / "annotations_final.csv", tags, rows)
    dataset = load_mtt(tmp_path, top_n=4)
    assert dataset.labels == ["classical", "guitar", "slow", "techno"]  # top 4 by count, alphabetical
    assert dataset.counts() == {"train": 2, "validation": 1, "test": 2}
    assert dataset.splits["validation"].paths == ["c/c-1.mp3"]
    np.testing.assert_array_equal(dataset.splits["train"].targets, [[1, 1, 0, 0], [0, 1, 1, 0]])
    assert not dataset.splits["test"].targets[1].any()
    assert load_mtt_annotations(tmp_path / "annotations_final.csv", top_n=4, drop_untagged=True).counts()["test"] == 1
    # Columns are mapped by name: the same file with columns shuffled gives the same targets.
    order = [3, 0, 4, 2, 1]
    _annotations(tmp_path / "shuffled.csv", [tags[i] for i in order], [(c, [v[i] for i in order], p) for c, v, p in rows])
    shuffled = load_mtt_annotations(tmp_path / "shuffled.csv", labels=dataset.labels)
    for name in SPLIT_NAMES:
        np.testing.assert_array_equal(shuffled.splits[name].targets, dataset.splits[name].targets)


def test_mtt_binary_npy_variant_maps_columns_by_name(tmp_path):
    tags = np.array(["rock", "guitar", "ambient"])  # frequency order, as published
    binary = np.array([[1, 0, 0], [0, 1, 1], [1, 1, 0], [0, 0, 1]])
    np.save(tmp_path / "binary.npy", binary)
    np.save(tmp_path / "tags.npy", tags)
    np.save(tmp_path / "train.npy", np.array(["0\t0/x.mp3", "2\tb/y.mp3"]))
    np.save(tmp_path / "valid.npy", np.array(["1\tc/z.mp3"]))
    np.save(tmp_path / "test.npy", np.array(["3\td/w.mp3"]))
    dataset = load_mtt(tmp_path)
    assert "binary.npy" in dataset.variant
    assert dataset.labels == ["ambient", "guitar", "rock"]
    np.testing.assert_array_equal(dataset.splits["train"].targets, [[0, 0, 1], [0, 1, 1]])
    assert dataset.splits["validation"].paths == ["c/z.mp3"] and dataset.splits["test"].ids == ["3"]
    with pytest.raises(DatasetFormatError, match="not among"):
        load_mtt_binary(tmp_path, labels=["rock", "piano"])


# -- MSD usual split: py2 pickles through the restricted unpickler -------------------------------
def _msd_files(folder, n_train=5, n_valid=2, n_test=3, numpy_module=None):
    tags = ["rock", "pop", "jazz", "female vocalists"]
    ids = [f"TRAAAA{i:012d}" for i in range(n_train + n_valid + n_test)]
    rng = np.random.default_rng(0)
    vectors = {i: (rng.random((len(tags), 1)) < 0.5).astype(np.int64) for i in ids}

    def dump(obj, name):
        data = pickle.dumps(obj, protocol=2)  # the py2-compatible protocol of the published files
        if numpy_module:  # protocol 2 names globals as text lines: rewrite numpy 2's module name
            data = data.replace(b"cnumpy._core.multiarray\n", f"c{numpy_module}\n".encode())
        (folder / name).write_bytes(data)

    dump(ids[: n_train + n_valid], "filtered_list_train.cP")
    dump(ids[n_train + n_valid :], "filtered_list_test.cP")
    dump(vectors, "msd_id_to_tag_vector.cP")
    dump({i: 1000 + k for k, i in enumerate(ids)}, "MSD_id_to_7D_id.pkl")
    dump({1000 + k: f"{k % 10}/{k % 7}/{1000 + k}.clip.mp3" for k in range(len(ids))}, "7D_id_to_path.pkl")
    (folder / "50tagList.txt").write_text("\n".join(tags) + "\n")
    return ids, vectors, tags


@pytest.mark.parametrize("numpy_module", [None, "numpy.core.multiarray"])
def test_msd_usual_split(tmp_path, numpy_module):
    ids, vectors, tags = _msd_files(tmp_path, numpy_module=numpy_module)
    if numpy_module:
        assert b"cnumpy.core.multiarray\n_reconstruct" in (tmp_path / "msd_id_to_tag_vector.cP").read_bytes()
    dataset = load_msd(tmp_path, train_count=5)
    assert dataset.labels == tags
    assert dataset.counts() == {"train": 5, "validation": 2, "test": 3}
    assert dataset.splits["validation"].ids == ids[5:7]
    assert dataset.splits["train"].paths[1] == "1/1/1001.clip.mp3"
    np.testing.assert_array_equal(dataset.splits["test"].targets[0], vectors[ids[7]].reshape(-1) > 0)
    with pytest.raises(DatasetFormatError, match="more than"):
        load_msd(tmp_path)  # the real train count needs the real (long) list


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    _msd_files(tmp_path)
    (tmp_path / "filtered_list_test.cP").write_bytes(pickle.dumps(["TRX", _Payload(marker)], protocol=2))
    with pytest.raises(UnsafePickleError, match="posix.system|os.system"):
        load_msd(tmp_path, train_count=5)
    assert not marker.exists()
    for evil in (pickle.dumps(_Payload(marker), protocol=0), pickle.dumps(_Payload(marker), protocol=4)):
        (tmp_path / "evil.pkl").write_bytes(evil)
        with pytest.raises(UnsafePickleError):
            safe_load(tmp_path / "evil.pkl")
    assert not marker.exists()


# -- MSD CALS -----------------------------------------------------------------------------------
def test_msd_cals_split_and_paths(tmp_path):
    rng = np.random.default_rng(1)
    for name, n in (("train", 4), ("valid", 2), ("test", 3)):
        ids = np.array([f"TR{chr(65 + k)}{chr(66 + k)}{chr(67 + k)}{name[:2].upper()}12345678{k}" for k in range(n)])
        if name == "valid":  # object arrays (pickled payload) load through the restricted unpickler
            ids = ids.astype(object)
        np.save(tmp_path / f"{name}_ids.npy", ids, allow_pickle=True)
        np.save(tmp_path / f"{name}_binaries.npy", (rng.random((n, 5)) < 0.5).astype(np.float32))
    with pytest.warns(UserWarning, match="unnamed"):
        dataset = load_msd_cals(tmp_path)
    assert dataset.counts() == {"train": 4, "validation": 2, "test": 3}
    assert dataset.labels == [f"tag_{j:02d}" for j in range(5)]
    first = dataset.splits["train"].ids[0]
    assert dataset.splits["train"].paths[0] == f"{first[2]}/{first[3]}/{first[4]}/{first}.wav" == "A/B/C/TRABCTR123456780.wav"
    np.testing.assert_array_equal(dataset.splits["test"].targets, np.load(tmp_path / "test_binaries.npy") > 0)
    assert load_npy(tmp_path / "valid_ids.npy").tolist() == dataset.splits["validation"].ids
    (tmp_path / "tags.txt").write_text("\n".join("abcde"))
    assert load_dataset("msd-cals", tmp_path).labels == list("abcde")


# -- audio presence -----------------------------------------------------------------------------
def test_check_audio_reports_missing_per_split(tmp_path):
    (tmp_path / "meta").mkdir()
    ids, _, _ = _msd_files(tmp_path / "meta")
    dataset = load_msd(tmp_path / "meta", train_count=5)
    root = tmp_path / "audio"
    for rel in dataset.splits["train"].paths[:3] + dataset.splits["test"].paths:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"x")
    report = check_audio(dataset, root)
    assert {n: len(m) for n, m in report.missing.items()} == {"train": 2, "validation": 2, "test": 0}
    assert report.total == {"train": 5, "validation": 2, "test": 3} and not report.ok
    assert "train: 3/5 present, 2 missing" in report.summary()
    assert report.to_dict()["splits"]["validation"]["missing"] == 2
    assert "--allow-missing" in str(MissingAudioError(report))


def test_unknown_dataset_and_missing_files(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset"):
        load_dataset("gtzan", tmp_path)
    with pytest.raises(DatasetFormatError, match="missing"):
        load_dataset("mtg-jamendo-genre", tmp_path)
    with pytest.raises(DatasetFormatError, match="no MTT split files"):
        load_mtt(tmp_path)


def test_msd_cals_does_not_take_the_usual_split_vocabulary(tmp_path):
    """CALS has its own 50 tags (downstream.md): the usual split's 50tagList.txt beside it must not name its columns."""
    for name, n in (("train", 2), ("valid", 1), ("test", 1)):
        np.save(tmp_path / f"{name}_ids.npy", np.array([f"TRABC{name.upper()}{k:08d}" for k in range(n)]))
        np.save(tmp_path / f"{name}_binaries.npy", np.eye(n, 3, dtype=np.float32))
    (tmp_path / "50tagList.txt").write_text("rock\npop\njazz\n")
    with pytest.warns(UserWarning, match="unnamed"):
        dataset = load_msd_cals(tmp_path)
    assert dataset.labels == ["tag_00", "tag_01", "tag_02"]
