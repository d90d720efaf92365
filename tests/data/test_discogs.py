"""Discogs dumps -> ground truth: parsing the real schema, aggregation, filters, splits, tag files."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from maest.data import discogs
from maest.data.groundtruth import (
    GroundTruthError,
    Track,
    read_groundtruth,
    read_tag_file,
    split_labels,
    split_tracks,
)


def _release(rid, artists, genres, styles, master=None, extra=""):
    rid_attr = f' id="{rid}"' if rid is not None else ""
    artist_xml = "".join(f"<artist><id>{a}</id><name>Artist {a}</name><anv/><join/><role/><tracks/></artist>" for a in artists)
    master_xml = f'<master_id is_main_release="true">{master}</master_id>' if master is not None else ""
    return (
        f'<release{rid_attr} status="Accepted"><images><image height="600" type="primary"/></images>'
        f"<artists>{artist_xml}</artists><title>Title {rid}</title>"
        f"<extraartists><artist><id>777</id><name>Producer</name><role>Producer</role></artist></extraartists>"
        f"<genres>{''.join(f'<genre>{g}</genre>' for g in genres)}</genres>"
        f"<styles>{''.join(f'<style>{s}</style>' for s in styles)}</styles>"
        f"<country>UK</country>{master_xml}"
        f"<tracklist><track><position>A1</position><title>t</title><artists><artist><id>888</id><name>Guest</name></artist></artists></track></tracklist>"
        f"{extra}</release>"
    )


def _master(mid, artist, styles=()):
    return (
        f'<master id="{mid}"><main_release>1</main_release><artists><artist><id>{artist}</id><name>A</name></artist></artists>'
        f"<genres><genre>Electronic</genre></genres><styles>{''.join(f'<style>{s}</style>' for s in styles)}</styles>"
        f"<year>1999</year><title>M</title></master>"
    )


def _gz(path: Path, root: str, records: list[str]) -> Path:
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write(f'<?xml version="1.0" encoding="UTF-8"?>\n<{root}>\n' + "\n".join(records) + f"\n</{root}>\n")
    return path


@pytest.fixture()
def dumps(tmp_path: Path) -> dict[str, Path]:
    six = ["Techno", "House", "Ambient", "Trance", "Electro", "Minimal"]
    releases = [
        _release(1, [1], ["Electronic"], ["Techno"], master=100),
        _release(2, [1], ["Electronic"], ["House"], master=100),  # not mapped: aggregated via master 100
        _release(3, [2], ["Electronic", "Funk / Soul"], ["Disco", "Techno"], master=200),
        _release(4, [4], ["Electronic"], six[:3], master=400),
        _release(41, [4], ["Electronic"], six[3:], master=400),  # master 400 aggregates 6 styles
        _release(5, [5], ["Rock"], ["Punk"]),  # no master: own group
        _release(6, [6], ["Electronic"], ["Techno"], master=999),  # master not in the masters dump
        _release("abc", [7], ["Rock"], ["Punk"]),  # malformed id
        _release(None, [7], ["Rock"], ["Punk"]),  # missing id
        _release(9, [9], ["Rock"], ["Punk"], master="x1"),  # malformed master id
        _release(10, [10], ["Jazz"], ["Bop"]),
        _release(11, [194], ["Electronic"], ["Techno"]),  # "Various" artist
        _release(12, [], [], ["Techno"]),  # style without genre
    ]
    masters = [_master(100, 1, ["Techno"]), _master(200, 2), _master(400, 4), '<master><main_release>3</main_release></master>']
    mapping = tmp_path / "mapping.csv"
    mapping.write_text(
        "path,release_id,duration\n"
        "a/1.mp3,1,180\n"
        "a/1b.mp3,1,200\n"
        "b/3.mp3,3,100\n"
        "c/4.mp3,4,100\n"
        "d/5.mp3,5,100\n"
        "e/6.mp3,6,100\n"
        "a/short.mp3,1,10\n"
        "missing.mp3,12345,100\n"
        "bad.mp3,xyz,100\n"
        "j/10.mp3,10,100\n"
        "v/11.mp3,11,100\n"
        '"with, comma.mp3",2,100\n'
    )
    return {
        "releases": _gz(tmp_path / "releases.xml.gz", "releases", releases),
        "masters": _gz(tmp_path / "masters.xml.gz", "masters", masters),
        "mapping": mapping,
    }


def test_iter_records_reads_real_schema_and_counts_malformed(dumps):
    problems = discogs.Problems()
    records = {r.id: r for r in discogs.iter_records(dumps["releases"], "release", problems)}
    assert sorted(records) == [1, 2, 3, 4, 5, 6, 9, 10, 11, 12, 41]
    assert records[1].artists == ["1"]  # extraartists and tracklist artists are not release artists
    assert records[3].genres == ["Electronic", "Funk / Soul"] and records[3].styles == ["Disco", "Techno"]
    assert records[1].master_id == 100 and records[5].master_id is None and records[9].master_id is None
    assert problems.counts["release without a valid id"] == 2
    assert problems.counts["release with a malformed master_id"] == 1
    masters = list(discogs.iter_records(dumps["masters"], "master", problems))
    assert [m.id for m in masters] == [100, 200, 400] and masters[0].main_release == 1
    assert problems.counts["master without a valid id"] == 1


def test_pair_styles_uses_known_genre_of_each_style():
    problems = discogs.Problems()
    known = frozenset({"Electronic---Techno", "Electronic---Disco", "Funk / Soul---Disco"})
    labels = discogs.pair_styles(["Electronic", "Funk / Soul"], ["Disco", "Techno", "Weird"], known, problems)
    assert labels == {"Electronic---Disco", "Funk / Soul---Disco", "Electronic---Techno",
                      "Electronic---Weird", "Funk / Soul---Weird"}
    assert discogs.pair_styles([], ["Techno"], known, problems) == set()
    assert problems.counts["style without genre"] == 1


def test_master_aggregation_durations_and_problems(dumps):
    problems = discogs.Problems()
    tracks = {t.path: t for t in discogs.discogs_tracks(dumps["mapping"], dumps["releases"], dumps["masters"], problems=problems, progress=False)}
    assert tracks["a/1.mp3"].labels == ["Electronic---House", "Electronic---Techno"]  # styles of release 2 too
    assert tracks["a/1.mp3"].group == "master:100" and tracks["a/1.mp3"].artists == ["1"]
    assert tracks["b/3.mp3"].labels == ["Electronic---Disco", "Electronic---Techno", "Funk / Soul---Disco"]
    assert len(tracks["c/4.mp3"].labels) == 6
    assert tracks["d/5.mp3"].group == "release:5"
    assert tracks["e/6.mp3"].group == "release:6"  # unknown master -> own group
    assert tracks["v/11.mp3"].artists == []  # "Various" is no artist
    assert tracks["with, comma.mp3"].labels == tracks["a/1.mp3"].labels
    assert "a/short.mp3" not in tracks and "missing.mp3" not in tracks and "bad.mp3" not in tracks
    assert problems.counts["track not longer than 20 s"] == 1
    assert problems.counts["mapped release not in the releases dump"] == 1
    assert problems.counts["mapping row with a malformed release id"] == 1
    assert problems.counts["release with a master not in the masters dump (own group)"] == 1


def test_filters_drop_many_styles_and_none_in_top_n(dumps, tmp_path):
    problems = discogs.Problems()
    tracks = discogs.discogs_tracks(dumps["mapping"], dumps["releases"], dumps["masters"], problems=problems, progress=False)
    out = tmp_path / "gt"
    summary = discogs.build_groundtruth(out, tracks, top_n=3, validation=0, test=0, problems=problems)
    labels = json.loads((out / "labels.json").read_text())
    # Techno (6 tracks) and House (3) lead; the ties of one track break by name.
    assert labels == ["Electronic---Disco", "Electronic---House", "Electronic---Techno"]
    paths, targets, read_labels = read_groundtruth(out / "train.tsv")
    assert read_labels == labels
    assert "c/4.mp3" not in paths  # master with 6 styles
    assert "d/5.mp3" not in paths and "j/10.mp3" not in paths  # none of the top-3 styles
    assert paths.index("b/3.mp3") >= 0
    assert targets[paths.index("b/3.mp3")].tolist() == [True, False, True]
    assert summary["train_tracks"] == len(paths) == 6
    assert summary["dropped_or_malformed"]["track of a master with more than 5 styles"] == 1
    assert summary["dropped_or_malformed"]["track without any of the top 3 styles"] == 2
    assert json.loads((out / "summary.json").read_text())["kept_tracks"] == 6


def _synthetic_tracks(n=400, seed=1) -> list[Track]:
    rng = np.random.default_rng(seed)
    tracks = []
    for i in range(n):
        artist = int(rng.integers(120))
        artists = [str(artist)]
        if rng.random() < 0.03:
            artists.append(str(rng.integers(120)))  # collaborations link artists
        tracks.append(Track(f"t{i}.mp3", ["x"], artists, f"master:{artist * 3 + rng.integers(3)}"))
    return tracks


def test_splits_are_artist_and_group_disjoint_and_deterministic():
    tracks = _synthetic_tracks()
    splits = split_tracks(tracks, validation=0.1, test=40, seed=3)
    assert sum(len(v) for v in splits.values()) == len(tracks)
    owner: dict[str, str] = {}
    for name, members in splits.items():
        for track in members:
            for key in track.artists + [track.group]:
                assert owner.setdefault(key, name) == name, f"{key} in {owner[key]} and {name}"
    assert 25 <= len(splits["validation"]) <= 40 and 25 <= len(splits["test"]) <= 40
    again = split_tracks(tracks, validation=0.1, test=40, seed=3)
    assert [t.path for t in again["test"]] == [t.path for t in splits["test"]]
    other = split_tracks(tracks, validation=0.1, test=40, seed=4)
    assert [t.path for t in other["test"]] != [t.path for t in splits["test"]]
    with pytest.raises(ValueError, match="exceed"):
        split_tracks(tracks, validation=300, test=200)


def test_split_labels_rejoins_labels_with_commas():
    known = {"Folk, World, & Country---Folk", "Rock---Punk"}
    assert split_labels("Folk, World, & Country---Folk,Rock---Punk,mine", known) == [
        "Folk, World, & Country---Folk", "Rock---Punk", "mine"]
    assert split_labels("", known) == []


def test_tag_file_round_trip(tmp_path):
    tags = tmp_path / "tags.tsv"
    lines = ["# my labels"]
    for i in range(30):
        label = "Folk, World, & Country---Folk" if i % 2 else "calm"
        lines.append(f"music/{i}.flac\t{label},loud\tartist{i % 7}")
    tags.write_text("\n".join(lines) + "\n")
    tracks = read_tag_file(tags)
    assert tracks[1].labels == ["Folk, World, & Country---Folk", "loud"] and tracks[1].artists == ["artist1"]
    out = tmp_path / "gt"
    summary = discogs.build_groundtruth(out, tracks, top_n=10, validation=0.2, test=0.2, seed=0)
    assert summary["labels"] == 3
    seen = {}
    for name in ("train", "validation", "test"):
        paths, targets, labels = read_groundtruth(out / f"{name}.tsv", out / "labels.json")
        assert targets.dtype == bool and targets.shape == (len(paths), 3)
        for path, row in zip(paths, targets):
            i = int(Path(path).stem)
            expected = {"Folk, World, & Country---Folk" if i % 2 else "calm", "loud"}
            assert {labels[k] for k in np.flatnonzero(row)} == expected
            assert seen.setdefault(f"artist{i % 7}", name) == name
    bad = tmp_path / "bad.tsv"
    bad.write_text("only-a-path\n")
    with pytest.raises(GroundTruthError, match="bad.tsv:1"):
        read_tag_file(bad)


def test_read_groundtruth_rejects_unknown_labels(tmp_path):
    (tmp_path / "labels.json").write_text('["a", "b"]')
    (tmp_path / "train.tsv").write_text("x.wav\ta,c\n")
    with pytest.raises(GroundTruthError, match="'c'"):
        read_groundtruth(tmp_path / "train.tsv")


def test_truncated_dump_is_a_clear_error(tmp_path):
    path = tmp_path / "releases.xml.gz"
    data = gzip.compress(b'<releases><release id="1"><genres><genre>Rock</genre></genres></release><release id="2">')
    path.write_bytes(data[: len(data) - 5])
    with pytest.raises(discogs.DiscogsError, match="download complete"):
        list(discogs.iter_records(path, "release", discogs.Problems()))


def test_cli_discogs_labels(dumps, tmp_path):
    from typer.testing import CliRunner

    from maest.cli import app

    out = tmp_path / "cli-gt"
    result = CliRunner().invoke(app, [
        "discogs-labels", str(out), "--mapping", str(dumps["mapping"]), "--releases", str(dumps["releases"]),
        "--masters", str(dumps["masters"]), "--top-n", "3", "--validation", "0", "--test", "0", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert (out / "train.tsv").is_file() and "kept_tracks" in result.output
    result = CliRunner().invoke(app, ["discogs-labels", str(out), "--mapping", str(dumps["mapping"])])
    assert result.exit_code != 0 and "--releases" in result.output


def test_a_track_mapped_to_two_releases_is_one_track_in_one_split(tmp_path):
    # An in-house mapping lists a file once per release it appears on (album and compilation):
    # the file must become one track, and never sit in two splits (the same audio in train and test).
    releases = [_release(100 + i, [i], ["Electronic"], ["Techno"]) for i in range(40)]
    releases += [_release(200 + i, [1000 + i], ["Electronic"], ["Techno"]) for i in range(40)]
    dumps = _gz(tmp_path / "releases.xml.gz", "releases", releases)
    mapping = tmp_path / "mapping.csv"
    mapping.write_text("".join(f"t{i}.mp3,{100 + i},100\nt{i}.mp3,{200 + i},100\n" for i in range(40)))
    problems = discogs.Problems()
    tracks = discogs.discogs_tracks(mapping, dumps, problems=problems, progress=False)
    assert sorted(t.path for t in tracks) == sorted(f"t{i}.mp3" for i in range(40))
    assert problems.counts["mapping row repeating a track path (first release kept)"] == 40
    # Tracks repeated by any other source (a tag file) still never span splits.
    doubled = [Track(f"t{i}.mp3", ["x"], [f"a{i}"]) for i in range(40)] + [
        Track(f"t{i}.mp3", ["x"], [f"b{i}"]) for i in range(40)]
    splits = split_tracks(doubled, validation=0.3, test=0.3, seed=0)
    where: dict[str, set[str]] = {}
    for name, members in splits.items():
        for track in members:
            where.setdefault(track.path, set()).add(name)
    assert all(len(names) == 1 for names in where.values()), {p: n for p, n in where.items() if len(n) > 1}


def test_tracks_of_exactly_the_minimum_duration_are_dropped(tmp_path):
    # "keep tracks longer than 20 s": 20.0 s is not longer than 20 s.
    dumps = _gz(tmp_path / "releases.xml.gz", "releases", [_release(1, [1], ["Electronic"], ["Techno"])])
    mapping = tmp_path / "mapping.csv"
    mapping.write_text("a.mp3,1,20\nb.mp3,1,20.01\nc.mp3,1\n")
    tracks = discogs.discogs_tracks(mapping, dumps, progress=False)
    assert [t.path for t in tracks] == ["b.mp3", "c.mp3"]


def test_swapped_dumps_are_a_clear_error(dumps):
    # The releases dump given as --masters would silently drop every master (no aggregation).
    with pytest.raises(discogs.DiscogsError, match="no <master> records"):
        discogs.discogs_tracks(dumps["mapping"], dumps["releases"], dumps["releases"], progress=False)
    with pytest.raises(discogs.DiscogsError, match="no <release> records"):
        discogs.discogs_tracks(dumps["mapping"], dumps["masters"], dumps["masters"], progress=False)


def test_split_labels_looks_labels_up_without_copying_the_label_map():
    # read_groundtruth passes its label -> column map for every line; copying it into a set per line
    # made reading a 3.3 M-track split take minutes.
    class NotToCopy(dict):
        def __iter__(self):
            raise AssertionError("the label map was copied")

    column = NotToCopy({"Folk, World, & Country---Folk": 0, "Rock---Punk": 1})
    assert split_labels("Folk, World, & Country---Folk,Rock---Punk", column) == [
        "Folk, World, & Country---Folk", "Rock---Punk"]
