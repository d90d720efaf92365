"""The experiment YAMLs shipped inside the package: ``maest train --config tiny`` works from any folder.

A ``--config`` value is a file when one exists at that path; otherwise a shipped config's name
(``tiny``, ``maest-30s-passt``, with or without ``.yaml``); a value with a folder in it is always a
file path, so a typo in a path is an error, never a silently shipped config.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path


def shipped_names() -> list[str]:
    """Names of the configs shipped with maest, sorted."""
    folder = resources.files("maest").joinpath("resources/train")
    return sorted(entry.name[: -len(".yaml")] for entry in folder.iterdir() if entry.name.endswith(".yaml"))


def shipped_text(name: str) -> str | None:
    """The YAML text of a shipped config (``tiny`` or ``tiny.yaml``), None when there is no such one."""
    stem = name[: -len(".yaml")] if name.endswith(".yaml") else name
    if stem not in shipped_names():
        return None
    return resources.files("maest").joinpath(f"resources/train/{stem}.yaml").read_text(encoding="utf-8")


def config_text(config: str | os.PathLike) -> tuple[str, str] | None:
    """``(text, where)`` for a file path or a shipped name (a file wins); None when neither exists."""
    path = Path(config).expanduser()
    if path.is_file():
        return path.read_text(encoding="utf-8"), str(path)
    if os.sep in str(config) or "/" in str(config):
        return None  # a path the user meant as a file: never silently swapped for a shipped one
    text = shipped_text(str(config))
    return (text, f"shipped config {path.stem}") if text is not None else None
