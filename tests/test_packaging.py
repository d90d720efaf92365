"""The install a user gets (issue 11 items 15-16): current torch admitted, the hub client in the core."""

from __future__ import annotations

from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def _project() -> dict:
    return tomllib.loads(PYPROJECT.read_text())["project"]


def test_torch_has_no_upper_cap():
    (torch,) = [Requirement(r) for r in _project()["dependencies"] if Requirement(r).name == "torch"]
    for version in ("2.4.0", "2.13.0", "2.14.1", "2.15.0", "3.0.0"):
        assert torch.specifier.contains(Version(version)), version
    assert not torch.specifier.contains(Version("2.3.1"))


def test_huggingface_hub_is_core_and_hub_extra_still_resolves():
    names = {Requirement(r).name.replace("-", "_").lower() for r in _project()["dependencies"]}
    assert "huggingface_hub" in names
    assert _project()["optional-dependencies"]["hub"] == []
