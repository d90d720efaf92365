"""Which files a run takes (discovery under folders, extension filter) and where their outputs go."""

from __future__ import annotations

import errno
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


def as_input_list(inputs: str | os.PathLike | Sequence[str | os.PathLike]) -> list[str | os.PathLike]:
    """A single path (str or PathLike) is one input, not a sequence of characters."""
    if isinstance(inputs, (str, bytes, os.PathLike)):
        return [os.fsdecode(inputs) if isinstance(inputs, bytes) else inputs]
    return list(inputs)


def find_audio(inputs: str | os.PathLike | Sequence[str | os.PathLike], extensions: Sequence[str] | None = None
               ) -> tuple[list[AudioItem], list[tuple[str, str]]]:
    """Files under ``inputs`` (folders recursively, sorted) with a wanted extension, and bad inputs.

    A file given directly is taken whatever its extension; its key is its name. A file reached twice
    (overlapping inputs such as ``in/sub in/sub/deeper``, or two links to one file) is taken once,
    under the first key. Bad inputs, returned as ``(path, reason)``: missing inputs, and dangling
    symbolic links or link loops found in folders (the user expects those files to be processed).
    """
    wanted = normalize_extensions(extensions)
    items: list[AudioItem] = []
    missing: list[tuple[str, str]] = []
    seen: set[str] = set()

    def take(path: Path, key: str) -> None:
        real = os.path.realpath(path)
        if real not in seen:
            seen.add(real)
            items.append(AudioItem(path, key))

    for given in as_input_list(inputs):
        root = Path(given)
        if root.is_dir():
            for path in sorted(_walk_files(root, missing)):
                if path.is_file():
                    if path.suffix.lower() in wanted:
                        take(path, path.relative_to(root).as_posix())
                elif path.is_symlink() and _may_be_wanted(path, wanted):
                    link = os.path.join(os.path.realpath(path.parent), path.name)  # found once, reported once
                    if link not in seen:
                        seen.add(link)
                        missing.append((str(path), broken_link_reason(path)))
        elif root.exists():
            take(root, root.name)
        elif root.is_symlink():
            missing.append((str(root), broken_link_reason(root)))
        else:
            missing.append((str(root), "no such file or folder"))
    return items, missing


def folders_read_again(failed: Sequence[str], inputs: str | os.PathLike | Sequence[str | os.PathLike],
                       unreadable: Sequence[tuple[str, str]]) -> list[str]:
    """Folders of earlier failure lines that this walk of ``inputs`` read (it lists those it could not
    in ``unreadable``): their lines are settled, their files are now the run's tracks."""
    roots = [os.path.abspath(os.fspath(root)) for root in as_input_list(inputs)]
    still = {path for path, _ in unreadable}
    inside = lambda path: any(os.path.commonpath([root, os.path.abspath(path)]) == root for root in roots)  # noqa: E731
    return [path for path in failed if path not in still and os.path.isdir(path) and inside(path)]


def _may_be_wanted(link: Path, wanted: set[str]) -> bool:
    """A broken link the run would have taken: its name or its target's has a wanted extension, or
    neither has an extension (it may have pointed to a folder)."""
    target = Path(os.readlink(link))
    suffixes = {link.suffix.lower(), target.suffix.lower()}
    return bool(suffixes & wanted) or suffixes == {""}


def broken_link_reason(link: Path) -> str:
    """Why a symbolic link cannot be read: a loop, or a target that does not exist."""
    try:
        link.resolve(strict=True)
    except RuntimeError:  # Python < 3.13 reports a loop this way
        return f"symbolic link loop ({link} -> {os.readlink(link)})"
    except OSError as error:
        if error.errno == errno.ELOOP:
            return f"symbolic link loop ({link} -> {os.readlink(link)})"
        return f"dangling symbolic link: its target {os.readlink(link)} does not exist"
    return f"symbolic link to {os.readlink(link)}, which is not a file"


def _walk_files(root: Path, unreadable: list[tuple[str, str]]) -> Iterator[Path]:
    """Files under ``root``, following symlinked folders (``rglob`` skips them) but entering each
    real folder once, so link loops end. A folder that cannot be listed (no permission, an I/O
    error) is appended to ``unreadable`` as ``(folder, reason)``: its tracks are failures, not silently absent."""
    seen: set[str] = set()

    def report(error: OSError) -> None:
        folder = error.filename if error.filename is not None else str(root)
        unreadable.append((os.fsdecode(folder), f"folder cannot be read ({error.strerror or error}): "
                                                  "its files were not searched; fix its permissions and rerun"))

    for folder, subfolders, files in os.walk(root, onerror=report, followlinks=True):
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


def audio_for_key(key: str, audio_root: str | os.PathLike | None = None) -> Path | None:
    """The audio file an output key names (the inverse of :func:`output_path`), or None.

    A key is a table's ``path`` or a tree's relative output name; ``.npy``/``.npz`` names lose their
    suffix and every audio extension is tried (``song.npy`` -> ``song.mp3``), as is the key itself,
    absolute or under ``audio_root``.
    """
    candidates = [Path(key)]
    if audio_root is not None:
        candidates.append(Path(audio_root).expanduser() / key)
    for candidate in list(candidates):
        if candidate.suffix.lower() in (".npy", ".npz"):
            # Only the output suffix goes; the rest of the name keeps its dots ("01. Intro.npy" ->
            # "01. Intro.flac", not "01.flac" as with_suffix would make of it).
            stripped = candidate.with_name(candidate.name[: -len(candidate.suffix)])
            candidates.append(stripped)
            candidates.extend(stripped.with_name(stripped.name + ext) for ext in sorted(audio.AUDIO_EXTENSIONS))
    return next((c for c in candidates if c.is_file()), None)


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
