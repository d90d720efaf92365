"""The beets plugin on real beets: import, attributes, queries, beet write, cache, maestsimilar, removal.

Every command runs ``python -m beets`` in a subprocess with its own BEETSDIR (a library in a temporary
folder) and a tiny random-weights model saved locally: no download, no autotagging.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import GOOD_CLIPS
from library_data import decoded, make_clips, song, tiny_tagger, write_clip
from maest.library import open_tags, read_field, update_file_tags

pytest.importorskip("beets")
SRC = str(Path(__file__).resolve().parents[2] / "src")
SONGS = 4


def beet(beetsdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "BEETSDIR": str(beetsdir), "PYTHONPATH": SRC}
    done = subprocess.run([sys.executable, "-m", "beets", *args], env=env, capture_output=True, text=True, timeout=300)
    if check:
        assert done.returncode == 0, done.stdout + done.stderr
    return done


@pytest.fixture(scope="module")
def library(tmp_path_factory, audio_dir) -> dict:
    """A beets library of every format, the shared clips and two excerpts of each of four songs, imported with -A."""
    root = tmp_path_factory.mktemp("beets")
    music = root / "music"
    formats = make_clips(music / "formats", seconds=2.0)
    rng = np.random.default_rng(3)
    excerpts = {}
    (music / "songs").mkdir()
    for kind in range(SONGS):  # one stream per song, cut in two: the "other excerpt" of each
        whole = song(kind, 8.0, 44100, rng)
        ext = ["flac", "mp3", "m4a", "ogg"][kind]
        pair = [write_clip(music / "songs" / f"song{kind}-{half}.{ext}", whole[half * 4 * 44100:(half + 1) * 4 * 44100],
                           44100) for half in (0, 1)]
        excerpts[kind] = pair
    for name in GOOD_CLIPS:
        (music / "shared").mkdir(exist_ok=True)
        shutil.copy(audio_dir / name, music / "shared" / name)
    model = tiny_tagger(root / "tiny")
    beetsdir = root / "config"
    beetsdir.mkdir()
    (beetsdir / "config.yaml").write_text(f"""
directory: {root / 'lib'}
library: {root / 'library.db'}
plugins: maest
import:
  write: no
  copy: no
  duplicate_action: keep  # untagged test files all look like one album to beets
maest:
  model: {model}
  blocks: 2
  device: cpu
  threshold: 0.2
  top_k: 2
  genre: yes
""")
    files = sorted(p for p in music.rglob("*") if p.is_file())
    update_file_tags(formats[1], {"GENRE": ["Jazz"]}, None)  # a user's own genre, which genre: yes must keep
    audio = {p: decoded(p) for p in files}
    imported = beet(beetsdir, "-v", "import", "-A", "-q", str(music))
    return dict(root=root, beetsdir=beetsdir, files=files, formats=formats, excerpts=excerpts, audio=audio,
                import_log=imported.stdout + imported.stderr)


def listing(beetsdir: Path, *query: str) -> dict[str, str]:
    out = beet(beetsdir, "ls", "-f", "$path\t$maest_style\t$maest_top_prob", *query).stdout
    return {line.split("\t")[0]: line for line in out.splitlines() if line}


def test_import_stores_queryable_attributes(library):
    beetsdir, files = library["beetsdir"], library["files"]
    counts = [tuple(int(n) for n in m) for m in re.findall(r"(\d+) items analysed, (\d+) from the cache, (\d+) failed",
                                                          library["import_log"])]
    assert len(counts) == 3 and tuple(map(sum, zip(*counts))) == (len(files), 0, 0)  # one import task per folder
    rows = listing(beetsdir)
    assert set(rows) == {str(p) for p in files}
    styles = {path: row.split("\t")[1] for path, row in rows.items()}
    assert all(styles.values()), styles
    one = next(iter(styles.values())).split("; ")[0]
    matched = listing(beetsdir, f"maest_style:{one}")
    assert matched and all(one in styles[p] for p in matched)
    assert all(0.2 <= float(row.split("\t")[2]) <= 1.0 for row in rows.values())
    numeric = listing(beetsdir, "maest_top_prob:0.2..1")  # the float attribute takes range queries
    assert set(numeric) == set(rows)
    out = beet(beetsdir, "ls", "-f", "$path\t$genres\t$maest_genre").stdout.splitlines()
    genres = {line.split("\t")[0]: line.split("\t")[1:] for line in out}
    user = str(library["formats"][1])
    assert library["formats"][1].suffix == ".ogg"
    for path, (beets_genres, maest_genres) in genres.items():
        assert maest_genres, path
        if path == user:
            assert beets_genres == "; ".join(["Jazz", *[g for g in maest_genres.split("; ") if g != "Jazz"]])
        elif "shared" not in path:  # the shared clips may carry genres of their own
            assert beets_genres == maest_genres, path


def test_rerun_does_no_model_work_and_beet_write_writes_styles_audio_unchanged(library):
    beetsdir = library["beetsdir"]
    before = {p: p.read_bytes() for p in library["files"]}
    again = beet(beetsdir, "-v", "maest")
    assert f"0 items analysed, {len(library['files'])} from the cache" in again.stdout + again.stderr
    assert all(p.read_bytes() == before[p] for p in library["files"])  # import.write is no: files untouched
    beet(beetsdir, "write")
    rows = listing(beetsdir)
    for path in library["formats"]:
        expected = rows[str(path)].split("\t")[1].split("; ")
        assert read_field(open_tags(path), "STYLE") == expected, path
    for path in library["files"]:
        np.testing.assert_array_equal(decoded(path), library["audio"][path], err_msg=str(path))
    # the files changed (tags), the audio did not: the cache stays valid
    after = beet(beetsdir, "-v", "maest")
    assert f"0 items analysed, {len(library['files'])} from the cache" in after.stdout + after.stderr
    assert "maest_style" not in beet(beetsdir, "write", "-p").stdout  # nothing left to write


def similar(beetsdir: Path, path: Path, *extra: str) -> list[str]:
    out = beet(beetsdir, "maestsimilar", f"path:{path}", "-n", "3", *extra).stdout
    return [line.rsplit("(", 1)[1].rstrip(")") for line in out.splitlines()[1:] if line.startswith(" ")]


def test_maestsimilar_ranks_the_other_excerpt_first_writes_m3u_and_follows_removals(library):
    beetsdir = library["beetsdir"]
    for kind, (first, second) in library["excerpts"].items():
        assert similar(beetsdir, first)[0] == str(second), kind
        assert similar(beetsdir, second)[0] == str(first), kind
    playlist = library["root"] / "like.m3u"
    first, second = library["excerpts"][0]
    found = similar(beetsdir, first, "--m3u", str(playlist))
    assert playlist.read_text().splitlines() == ["#EXTM3U", str(first), *found]
    beet(beetsdir, "rm", "-f", f"path:{second}")
    assert str(second) not in similar(beetsdir, first)
    assert second.exists()  # beet rm without -d keeps the file
    missing = beet(beetsdir, "maestsimilar", "path:/no/such/file", check=False)
    assert missing.returncode != 0 and "no item matches" in missing.stdout + missing.stderr
