"""The command line as a whole: every command listed, fast import, clear errors for missing extras."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

from typer.testing import CliRunner

from maest.cli import app

COMMANDS = ["discogs-labels", "prepare", "embed", "tag", "eval", "train", "demo-data", "experiment", "export"]


def test_help_lists_every_command():
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in COMMANDS:
        assert command in result.output
        assert CliRunner().invoke(app, [command, "--help"]).exit_code == 0


def test_import_maest_does_not_import_torch():
    code = "import sys, maest, maest.cli; print('torch' in sys.modules)"
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert output.strip() == "False"


def test_missing_extra_names_the_install_command(monkeypatch, tmp_path):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "lightning" else real(name, *a))
    result = CliRunner().invoke(app, ["train", "--config", str(tmp_path / "any.yaml")])
    assert result.exit_code == 1
    assert "pip install 'maest[train]'" in result.output
