"""The README's tiny run as a new user types it, from a folder that is not the clone (issue 18 item 14)."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("lightning")

from maest.train.config import ConfigError, load_config  # noqa: E402
from maest.train.shipped import shipped_names  # noqa: E402

SRC = str(Path(__file__).resolve().parents[2] / "src")


def maest_command(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": SRC}
    return subprocess.run([sys.executable, "-m", "maest.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def test_every_readme_config_is_shipped_by_name():
    assert {"tiny", "effnet-b0", "maest-10s-passt", "maest-30s-passt"} <= set(shipped_names())
    for name in shipped_names():
        assert load_config(name).name == name.replace(".yaml", "")  # each config names its run after itself
    assert load_config("tiny.yaml").model.arch["depth"] == 2


def test_a_path_is_never_swapped_for_a_shipped_config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"no config file at configs/tiny.yaml.*shipped: .*tiny"):
        load_config("configs/tiny.yaml")
    with pytest.raises(ConfigError, match="shipped: effnet-b0"):
        load_config("tinny")
    (tmp_path / "tiny").write_text("name: mine\n")  # a file of that name wins over the shipped one
    assert load_config("tiny").name == "mine"


def test_readme_tiny_run_works_from_any_folder(tmp_path):
    home, elsewhere = tmp_path / "fresh", tmp_path / "elsewhere"
    home.mkdir()
    elsewhere.mkdir()
    made = maest_command("demo-data", "data/demo", "--tracks", "24", "--seconds", "3", "--classes", "3",
                         "--no-progress", cwd=home)
    assert made.returncode == 0, made.stderr
    printed = made.stdout.strip().split("train on it with ", 1)[1]
    args = shlex.split(printed)
    assert args[:4] == ["maest", "train", "--config", "tiny"]
    assert Path(args[-1].split("=", 1)[1]) == (home / "data" / "demo").resolve()  # absolute: works anywhere
    fast = ["--set", "trainer.max_epochs=1", "--set", "data.samples_per_epoch=16", "--set", "swa.start_epoch=0",
            "--set", "trainer.progress_bar=false"]
    trained = maest_command(*args[1:], *fast, cwd=elsewhere)  # the printed command, from another folder
    assert trained.returncode == 0, trained.stderr[-2000:]
    assert (elsewhere / "runs" / "tiny" / "model" / "model.safetensors").is_file()
    tagged = maest_command("tag", str(home / "data/demo/audio/track00000.wav"), "--model", "runs/tiny/model",
                           "--device", "cpu", cwd=elsewhere)
    assert tagged.returncode == 0 and "track00000.wav" in tagged.stdout, tagged.stderr
