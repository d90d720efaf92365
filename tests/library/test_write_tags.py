"""`maest tag --write-tags` and maest.library: every format, audio untouched, kills, reruns, read-only files."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from mutagen.flac import FLAC
from typer.testing import CliRunner

from library_data import EXTENSIONS, decoded, make_clips, song, tiny_tagger, write_clip
from maest.cli import app
from maest.library import (ADDED_FIELD, SETTINGS_FIELD, TagChoice, TagChoiceError, UnsupportedFormatError,
                           choose_labels, field_values, open_tags, read_field, remove_maest_tags, update_file_tags)
from maest.library.update import TEMP_SUFFIX

SRC = str(Path(__file__).resolve().parents[2] / "src")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> str:
    return tiny_tagger(tmp_path_factory.mktemp("ckpt") / "tiny")


@pytest.fixture
def clips(tmp_path) -> list[Path]:
    return make_clips(tmp_path / "music")


def fields(path: Path, *names: str) -> dict[str, list[str]]:
    audio = open_tags(path)
    return {name: read_field(audio, name) for name in names}


def run(*args: str):
    return CliRunner().invoke(app, list(args))


def test_choice_threshold_top_k_and_layouts():
    labels = ["Rock---Punk", "Electronic---Techno", "Electronic---House", "Mood"]
    p = np.array([0.05, 0.9, 0.4, 0.3])
    assert choose_labels(p, labels, TagChoice(threshold=0.35)) == [("Electronic---Techno", 0.9), ("Electronic---House", 0.4)]
    assert [lab for lab, _ in choose_labels(p, labels, TagChoice(threshold=0.0, top_k=2))] == \
        ["Electronic---Techno", "Electronic---House"]
    assert choose_labels(p, labels, TagChoice(threshold=0.95)) == [("Electronic---Techno", 0.9)]  # the top one stays
    assert choose_labels(p, labels, TagChoice(threshold=0.95, min_labels=0)) == []
    chosen = choose_labels(p, labels, TagChoice(threshold=0.2, top_k=4))
    assert field_values(chosen, TagChoice()) == {"GENRE": ["Electronic"], "STYLE": ["Techno", "House", "Mood"]}
    assert field_values(chosen, TagChoice(layout="joined", style_field="discogs_style")) == {
        "GENRE": [], "DISCOGS_STYLE": ["Electronic---Techno", "Electronic---House", "Mood"]}
    for bad in (dict(threshold=1.5), dict(layout="x"), dict(genre_field="STYLE"), dict(style_field="MAEST_X"),
                dict(top_k=0)):
        with pytest.raises(TagChoiceError):
            TagChoice(**bad)


def test_every_format_is_tagged_audio_untouched_mode_kept_and_rerun_changes_nothing(clips, tmp_path, checkpoint):
    flac = next(p for p in clips if p.suffix == ".flac")
    md5 = FLAC(flac).info.md5_signature
    assert md5 != 0
    before = {p: decoded(p) for p in clips}
    for p in clips:
        os.chmod(p, 0o640)
    failures = tmp_path / "failures.tsv"
    result = run("tag", str(tmp_path / "music"), "-m", checkpoint, "--write-tags", "--threshold", "0",
                 "--top-k", "2", "--no-progress", "--failures", str(failures))
    assert result.exit_code == 0, result.output
    assert f"tagged {len(EXTENSIONS)} files" in result.output and not failures.exists()
    for p in clips:
        got = fields(p, "GENRE", "STYLE", SETTINGS_FIELD, ADDED_FIELD)
        assert len(got["STYLE"]) == 2 and 1 <= len(got["GENRE"]) <= 2, (p, got)
        assert got[SETTINGS_FIELD][0].startswith("maest ") and "top_k=2" in got[SETTINGS_FIELD][0]
        assert sorted(got[ADDED_FIELD]) == sorted([f"GENRE={g}" for g in got["GENRE"]] + [f"STYLE={s}" for s in got["STYLE"]])
        np.testing.assert_array_equal(decoded(p), before[p], err_msg=str(p))
        assert stat.S_IMODE(p.stat().st_mode) == 0o640
    assert FLAC(flac).info.md5_signature == md5
    # every format holds the same labels (all clips are tagged by one model; values sit where each format keeps them)
    stamp = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in clips}
    again = run("tag", str(tmp_path / "music"), "-m", checkpoint, "--write-tags", "--threshold", "0", "--top-k", "2",
                "--no-progress", "--failures", str(failures))
    assert again.exit_code == 0 and f"{len(EXTENSIONS)} already tagged" in again.output, again.output
    forced = run("tag", str(tmp_path / "music"), "-m", checkpoint, "--write-tags", "--threshold", "0", "--top-k", "2",
                 "--no-progress", "--replace", "--failures", str(failures))  # --replace recomputes: same values
    assert forced.exit_code == 0 and f"tagged 0 files, {len(EXTENSIONS)} unchanged" in forced.output, forced.output
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in clips} == stamp
    assert not list((tmp_path / "music").glob(".*"))  # no temporary files left


def test_format_specific_frames(clips):
    values = {"GENRE": ["Electronic", "Rock"], "STYLE": ["Techno", "Punk"]}
    for p in clips:
        update_file_tags(p, values, "s")
    from mutagen.id3 import ID3
    from mutagen.mp4 import MP4

    id3 = ID3(next(p for p in clips if p.suffix == ".mp3"))
    assert id3.version == (2, 4, 0)
    assert id3["TCON"].genres == ["Electronic", "Rock"] and id3["TXXX:STYLE"].text == ["Techno", "Punk"]
    mp4 = MP4(next(p for p in clips if p.suffix == ".m4a")).tags
    assert mp4["\xa9gen"] == ["Electronic", "Rock"]
    assert [bytes(v) for v in mp4["----:com.apple.iTunes:STYLE"]] == [b"Techno", b"Punk"]
    vorbis = FLAC(next(p for p in clips if p.suffix == ".flac")).tags
    assert vorbis["GENRE"] == ["Electronic", "Rock"] and vorbis["STYLE"] == ["Techno", "Punk"]


def test_user_values_are_kept_replaced_on_request_and_undo_removes_only_maests(clips):
    for p in clips:
        update_file_tags(p, {"GENRE": ["Jazz"], "STYLE": []}, None)  # the user's own genre, no maest bookkeeping
        change = update_file_tags(p, {"GENRE": ["Electronic", "jazz"], "STYLE": ["Techno"]}, "a")
        assert change.written
        assert fields(p, "GENRE", "STYLE") == {"GENRE": ["Jazz", "Electronic"], "STYLE": ["Techno"]}
        # new settings: maest's earlier values are replaced, the user's stay
        update_file_tags(p, {"GENRE": ["Rock"], "STYLE": ["Punk"]}, "b")
        assert fields(p, "GENRE", "STYLE") == {"GENRE": ["Jazz", "Rock"], "STYLE": ["Punk"]}
        dry = update_file_tags(p, {"GENRE": ["Pop"], "STYLE": []}, "c", replace=True, dry_run=True)
        assert not dry.written and dry.changes["GENRE"] == (["Jazz", "Rock"], ["Pop"])
        assert fields(p, "GENRE")["GENRE"] == ["Jazz", "Rock"]
        remove_maest_tags(p)
        assert fields(p, "GENRE", "STYLE", SETTINGS_FIELD, ADDED_FIELD) == {
            "GENRE": ["Jazz"], "STYLE": [], SETTINGS_FIELD: [], ADDED_FIELD: []}


def test_keep_mtime(clips):
    p = clips[0]
    os.utime(p, ns=(1_000_000_000_000_000_000, 1_000_000_000_000_000_000))
    update_file_tags(p, {"STYLE": ["Techno"]}, "s", keep_mtime=True)
    assert p.stat().st_mtime_ns == 1_000_000_000_000_000_000
    update_file_tags(p, {"STYLE": ["House"]}, "s")
    assert p.stat().st_mtime_ns > 1_000_000_000_000_000_000


def test_unsupported_read_only_and_linked_files_are_reported_untouched(tmp_path, checkpoint, audio_dir):
    music = tmp_path / "music"
    clips = make_clips(music / "ok", seconds=1.0)
    adts = write_clip(music / "raw.aac", song(1, 1.0, 44100, np.random.default_rng(0)), 44100)
    (music / "bad.mp3").write_bytes((audio_dir / "not_audio.mp3").read_bytes())
    locked = clips[0]
    os.chmod(locked, 0o444)
    frozen = music / "frozen"
    frozen_clip = make_clips(frozen, seconds=1.0)[1]
    linked = clips[2]
    os.link(linked, tmp_path / "second-link")
    os.chmod(frozen, 0o555)
    try:
        untouched = {p: p.read_bytes() for p in (locked, frozen_clip, linked, adts)}
        failures = tmp_path / "failures.tsv"
        result = run("tag", str(music), "-m", checkpoint, "--write-tags", "--no-progress", "--failures", str(failures))
        assert result.exit_code == 0, result.output
        reasons = dict(line.split("\t", 1) for line in failures.read_text().splitlines())
        assert "does not write tags into this format (AAC)" in reasons[str(adts)]
        assert "cannot read its tags" in reasons[str(music / "bad.mp3")]
        assert "read-only" in reasons[str(locked)] and "chmod u+w" in reasons[str(locked)]
        assert "folder" in reasons[str(frozen_clip)] and "read-only" in reasons[str(frozen_clip)]
        assert "hard links" in reasons[str(linked)]
        assert all(p.read_bytes() == data for p, data in untouched.items())
        assert f"tagged {len(clips) - 2} files" in result.output
        # a fixed file leaves the failures file on the next run
        os.chmod(locked, 0o644)
        run("tag", str(music), "-m", checkpoint, "--write-tags", "--no-progress", "--failures", str(failures))
        assert str(locked) not in failures.read_text() and str(adts) in failures.read_text()
    finally:
        os.chmod(frozen, 0o755)
    with pytest.raises(UnsupportedFormatError):
        update_file_tags(adts, {"STYLE": ["x"]}, "s")


def test_dry_run_prints_and_writes_nothing(clips, tmp_path, checkpoint):
    data = {p: p.read_bytes() for p in clips}
    result = run("tag", str(tmp_path / "music"), "-m", checkpoint, "--write-tags", "--dry-run", "--no-progress",
                 "--failures", str(tmp_path / "f.tsv"))
    assert result.exit_code == 0, result.output
    assert "would change" in result.output and "STYLE: +" in result.output
    assert all(p.read_bytes() == d for p, d in data.items())


KILL_LOOP = """
import sys
from maest.library import update_file_tags
paths = sys.argv[1:]
sys.stdout.write("ready\\n"); sys.stdout.flush()
n = 0
while True:
    for p in paths:
        update_file_tags(p, {"GENRE": [f"G{n % 2}"], "STYLE": [f"S{n % 2}-{i}" for i in range(40)]}, f"run{n % 2}",
                         replace=True)
    n += 1
"""


def test_sigkill_during_writes_leaves_each_file_old_or_new(tmp_path):
    clips = make_clips(tmp_path / "music", seconds=1.0)
    audio = {p: decoded(p) for p in clips}
    states = {f"run{k}": ([f"G{k}"], [f"S{k}-{i}" for i in range(40)]) for k in (0, 1)}
    rng = np.random.default_rng(0)
    env = {**os.environ, "PYTHONPATH": SRC}
    checked = 0
    for attempt in range(6):
        proc = subprocess.Popen([sys.executable, "-c", KILL_LOOP, *map(str, clips)], stdout=subprocess.PIPE, env=env)
        assert proc.stdout.readline() == b"ready\n"
        time.sleep(float(rng.uniform(0.05, 0.6)))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        for p in clips:
            got = fields(p, "GENRE", "STYLE", SETTINGS_FIELD)
            if attempt == 0 and not got[SETTINGS_FIELD]:
                continue  # killed before its first write
            genre, styles = states[got[SETTINGS_FIELD][0]]
            assert got["GENRE"] == genre and got["STYLE"] == styles, (p, got)  # complete, never a mix
            np.testing.assert_array_equal(decoded(p), audio[p])
            checked += 1
    assert checked >= len(clips) * 4
    leftovers = list((tmp_path / "music").glob(f".*{TEMP_SUFFIX}"))
    for p in clips:  # a left-over copy of a killed write is replaced by the next write to that file
        update_file_tags(p, {"STYLE": ["done"]}, "final")
    assert all(not t.exists() for t in leftovers)


def test_a_symbolic_link_keeps_pointing_at_the_tagged_file(clips, tmp_path):
    target = clips[0]
    link = tmp_path / f"link{target.suffix}"
    link.symlink_to(target)
    update_file_tags(link, {"STYLE": ["Techno"]}, "s")
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert fields(target, "STYLE")["STYLE"] == ["Techno"]


def test_write_tags_with_a_head_writes_its_on_labels(tmp_path):
    from maest.heads import fit_head, load_head, tag_files_with_head
    from maest.inference import load_model

    from eval_data import tiny_model

    rng = np.random.default_rng(0)
    model = str(tiny_model(tmp_path / "tiny"))
    for kind, name in ((0, "low"), (2, "high")):  # two classes of clearly different sound
        (tmp_path / "fit" / name).mkdir(parents=True)
        for i in range(5):
            write_clip(tmp_path / "fit" / name / f"{i}.flac", song(kind, 1.5, 44100, rng), 44100)
    fit_head(tmp_path / "fit", tmp_path / "head", model=model, blocks=2, cache_dir=tmp_path / "cache", progress=False)
    music = make_clips(tmp_path / "music", seconds=1.5)
    result = run("tag", str(tmp_path / "music"), "--head", str(tmp_path / "head"), "--write-tags", "--layout", "joined",
                 "--style-field", "MOOD", "--no-progress", "--failures", str(tmp_path / "f.tsv"))
    assert result.exit_code == 0, result.output
    head = load_head(tmp_path / "head")
    expected = {path: [label for label, _, on in tags if on][:5]
                for path, tags, _ in tag_files_with_head(tmp_path / "music", head, load_model(model, device="cpu"))}
    for p in music:
        got = fields(p, "MOOD", "GENRE", SETTINGS_FIELD)
        assert got["MOOD"] == expected[str(p)] and got["MOOD"] and got["GENRE"] == [], (p, got)
        assert "; head " in got[SETTINGS_FIELD][0]
