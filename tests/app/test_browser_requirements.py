"""A missing Chromium fails the browser test under CI instead of skipping it (issue 18 item 15)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("gradio")
pytest.importorskip("selenium")

TESTS = Path(__file__).resolve().parents[1]
README = TESTS.parent / "README.md"


def _run_browser_test(tmp_path: Path, ci: bool) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env.update(MAEST_CHROMIUM=str(tmp_path / "no-chromium"), MAEST_CHROMEDRIVER=str(tmp_path / "no-driver"),
               PYTHONPATH=os.pathsep.join([str(TESTS.parent / "src"), os.environ.get("PYTHONPATH", "")]),
               **({"CI": "1"} if ci else {}))
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
                           str(TESTS / "app" / "test_browser.py")], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)


def test_missing_chromium_fails_under_ci(tmp_path):
    ci = _run_browser_test(tmp_path, ci=True)
    assert ci.returncode == 1 and "chromium chromium-driver" in ci.stdout, ci.stdout[-2000:]
    assert "skipped" not in ci.stdout.splitlines()[-1]


def test_readme_test_section_names_the_browser_packages():
    test_section = README.read_text().split("## Test", 1)[1].split("\n## ", 1)[0]
    assert "apt-get install chromium chromium-driver" in test_section
