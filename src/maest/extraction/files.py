"""Which files a run takes (discovery under folders, extension filter) and where their outputs go."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from maest import audio
from maest.extraction.errors import OutputCollisionError


@dataclass(frozen=True)
class AudioItem:
    """An input file and its key: its path relative to the root it was found under (posix)."""

    path: Path
    key: str


def normalize_extensions(extensions: Sequence[str] | None) -> set[str]:
    """``["mp3", ".WAV"]`` -> ``{".mp3", ".wav"}``; None -> every extension :mod:`maest.audio` reads."""
    if extensions is None:
        return set(audio.AUDIO_EXTENSIONS)
    return {("." + e.lower().lstrip(".")) for e in extensions if e.strip()}


def find_audio(inputs: Sequence[str | os.PathLike], extensions: Sequence[str] | None = None) -> tuple[list[AudioItem], list[tuple[str, str]]]:
    """Files under ``inputs`` (folders recursively, sorted) with a wanted extension, and missing inputs.

    A file given directly is taken whatever its extension; its key is its name.
    """
    wanted = normalize_extensions(extensions)
    items: list[AudioItem] = []
    missing: list[tuple[str, str]] = []
    for given in inputs:
        root = Path(given)
        if root.is_dir():
            for path in sorted(p for p in _walk_files(root) if p.suffix.lower() in wanted and p.is_file()):
                items.append(AudioItem(path, path.relative_to(root).as_posix()))
        elif root.exists():
            items.append(AudioItem(root, root.name))
        else:
            missing.append((str(root), "no such file or folder"))
    return items, missing


def _walk_files(root: Path) -> Iterator[Path]:
    """Files under ``root``, following symlinked folders (``rglob`` skips them) but entering each
    real folder once, so link loops end."""
    seen: set[str] = set()
    for folder, subfolders, files in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:
            subfolders[:] = []
            continue
        seen.add(real)
        subfolders.sort()  # a deterministic walk: the same folder always gets the same keys
        yield from (Path(folder) / name for name in files)


def output_path(output_dir: Path, key: str, fmt: str) -> Path:
    """Where one track's output goes: the input's relative path with the format's suffix."""
    return output_dir / Path(key).with_suffix("." + fmt)


def check_collisions(items: Sequence[AudioItem], fmt: str) -> None:
    """Raise :class:`OutputCollisionError` when two inputs would write the same output (or table row)."""
    seen: dict[str, str] = {}
    clashes = []
    for item in items:
        target = Path(item.key).with_suffix("." + fmt).as_posix() if fmt != "parquet" else item.key
        if target in seen:
            clashes.append(f"{seen[target]} and {item.path} -> {target}")
        seen[target] = str(item.path)
    if clashes:
        raise OutputCollisionError(
            "several inputs would write the same output (rename them or extract them into separate "
            "output folders): " + "; ".join(clashes[:5]) + (" ..." if len(clashes) > 5 else "")
        )


def shard_suffix(shard: tuple[int, int] | None) -> str:
    """``.shard-i-of-n`` for ``shard=(i, n)`` ("" for None): it names the shard's table and failures
    file, so shards writing into one folder do not overwrite each other."""
    if shard is None:
        return ""
    index, count = shard
    if not 0 <= index < count:
        raise ValueError(f"shard must be (index, count) with 0 <= index < count, got {shard}")
    return f".shard-{index}-of-{count}"


def take_shard(items: list[AudioItem], missing: list[tuple[str, str]], shard: tuple[int, int] | None
               ) -> tuple[list[AudioItem], list[tuple[str, str]]]:
    """The shard's items (every n-th from the i-th, 0-based); missing inputs are reported by shard 0 only."""
    if shard is None:
        return items, missing
    index, count = shard
    return items[index::count], (missing if index == 0 else [])
