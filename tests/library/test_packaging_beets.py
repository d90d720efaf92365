"""The wheel ships the beets plugin: ``beetsplug/maest.py`` in the ``beetsplug`` namespace (no ``__init__.py``)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_wheel_holds_the_plugin_as_a_namespace_package(tmp_path):
    tree = tmp_path / "tree"
    tree.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, tree / name)
    shutil.copytree(ROOT / "src", tree / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", str(tree), "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(tmp_path / "dist")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    (wheel,) = (tmp_path / "dist").glob("maest-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "beetsplug/maest.py" in names and "beetsplug/__init__.py" not in names
    assert {"maest/library/update.py", "maest/library/formats.py", "maest/cli/write_tags.py"} <= names
    assert not (ROOT / "src" / "beetsplug" / "__init__.py").exists()  # beets and other plugins share the namespace
