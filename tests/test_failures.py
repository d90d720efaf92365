"""The failures writer: TSV, atomic, merged by path so a subset rerun keeps earlier failures."""

from __future__ import annotations

from maest.failures import format_failures, read_failures, write_failures


def test_merge_keeps_other_paths_and_replaces_the_resolved_ones(tmp_path):
    target = tmp_path / "failures.tsv"
    write_failures(target, [("/music/a  b.wav", "empty file"), ("/music/c.mp3", "not audio")])
    held = write_failures(target, {"/music/d.ogg": "truncated\n at 3 s"}, merge=True,
                          resolved=["/music/c.mp3", "/music/d.ogg"])  # c now decodes, d fails
    assert held == read_failures(target) == {"/music/a  b.wav": "empty file", "/music/d.ogg": "truncated at 3 s"}
    assert target.read_text() == "/music/a  b.wav\tempty file\n/music/d.ogg\ttruncated at 3 s\n"
    write_failures(target, {}, merge=True, resolved=["/music/a  b.wav", "/music/d.ogg"])
    assert not target.exists()  # nothing left to report
    write_failures(target, {}, keep_empty=True)
    assert target.read_text() == ""
    assert not list(tmp_path.glob("*.partial"))


def test_without_merge_the_file_is_this_runs_and_fields_stay_on_one_line(tmp_path):
    target = tmp_path / "f.tsv"
    write_failures(target, {"old.wav": "x"})
    write_failures(target, [("tab\there.wav", "two\tfields")])
    assert read_failures(target) == {"tab here.wav": "two fields"}
    assert format_failures([("p", "a  b\r\nc")]) == "p\ta b c\n"
    assert read_failures(tmp_path / "absent.tsv") == {}
