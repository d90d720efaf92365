"""Output conventions a script relies on (issue 18 items 16, 17, 19): the version, JSON Lines, TSV escaping."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

import maest
from eval_data import tiny_model
from maest.cli import app
from maest.cli.tsv import tsv_field

ROOT = Path(__file__).resolve().parents[2]


def test_version_has_one_source_and_is_current():
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "maest.__version__"}
    assert maest.__version__ == "0.3.0"
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"maest {maest.__version__}"


def test_root_help_shows_version_as_a_plain_flag():
    result = CliRunner().invoke(app, ["--help"], terminal_width=100)
    line = next(line for line in result.output.splitlines() if "--version" in line)
    assert "<bool>" not in line and "Print the version" in line


def test_tsv_field_escapes_what_would_split_a_row():
    assert tsv_field("a\tb\nc\rd\\e") == "a\\tb\\nc\\rd\\\\e"
    assert tsv_field("01. Intro.mp3") == "01. Intro.mp3"


def test_tag_tsv_and_json_lines_with_a_tab_and_a_newline_in_a_path(tmp_path):
    model = tiny_model(tmp_path / "tiny")
    music = tmp_path / "music"
    music.mkdir()
    names = ["tab\there.wav", "new\nline.wav"]
    for name in names:
        sf.write(music / name, 0.1 * np.sin(np.arange(16000) / 5).astype(np.float32), 16000)
    tsv = CliRunner().invoke(app, ["tag", str(music), "-m", str(model), "--format", "tsv", "--top-k", "2",
                                   "--device", "cpu"])
    assert tsv.exit_code == 0, tsv.output
    rows = [line.split("\t") for line in tsv.stdout.splitlines()]
    assert len(rows) == 4 and all(len(row) == 3 for row in rows)
    unescaped = {row[0].replace("\\t", "\t").replace("\\n", "\n") for row in rows}
    assert unescaped == {str(music / name) for name in names}

    lines = CliRunner().invoke(app, ["tag", str(music), "-m", str(model), "--format", "json", "--device", "cpu"])
    records = [json.loads(line) for line in lines.stdout.splitlines()]  # JSON Lines: one object per line
    assert {record["path"] for record in records} == {str(music / name) for name in names}
    help_text = " ".join(CliRunner().invoke(app, ["tag", "--help"]).output.replace("│", " ").split())
    assert "JSON Lines" in help_text
    assert "JSON Lines" in (ROOT / "README.md").read_text()


def test_data_folder_of_the_readme_run_is_ignored():
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    for path in ("data/demo/labels.json", "data/demo/store/shard-0.npy"):
        checked = subprocess.run(["git", "-C", str(ROOT), "check-ignore", "--no-index", "-q", path])
        assert checked.returncode == 0, f"{path} is not ignored by .gitignore"
