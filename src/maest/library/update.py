"""Updating one file's tags safely: merge with what is there, then copy, tag, fsync and rename.

The file is never modified in place. Its bytes are copied to a hidden file in the same folder, the
copy is tagged with mutagen (which rewrites metadata blocks only, never audio frames), flushed to
disk, given the original's mode, owner (when allowed), extended attributes and, optionally, mtime,
and renamed over the original. A kill at any moment leaves the original as it was, or the fully
tagged copy in its place; a killed run may leave a hidden ``.<name>.maest-tagging`` file behind,
which the next run over that file replaces.

Values maest added are listed in ``MAEST_ADDED`` (``FIELD=value``), so a later run replaces them
(new threshold, new model) while the user's own values stay, and :func:`remove_maest_tags` undoes
exactly them. A file whose tags would not change is not written at all.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import stat
from dataclasses import dataclass, field
from pathlib import Path

from maest.library.choice import ADDED_FIELD, SETTINGS_FIELD
from maest.library.formats import TagWriteError, open_tags, read_field, save_tags, write_field

TEMP_SUFFIX = ".maest-tagging"
MAX_NAME_BYTES = 255


@dataclass
class FileChange:
    """What an update did (or, in a dry run, would do) to one file: ``{FIELD: (old values, new values)}``."""

    path: str
    changes: dict[str, tuple[list[str], list[str]]] = field(default_factory=dict)
    written: bool = False

    def lines(self) -> list[str]:
        """Readable lines, one per changed field (bookkeeping fields left out)."""
        out = []
        for name, (old, new) in self.changes.items():
            if name in (ADDED_FIELD, SETTINGS_FIELD):
                continue
            gone = [v for v in old if v not in new]
            came = [v for v in new if v not in old]
            out.append(f"  {name}: " + " ".join([f"+{v!r}" for v in came] + [f"-{v!r}" for v in gone]))
        return out


def stored_settings(path: str | os.PathLike) -> str | None:
    """The ``MAEST_SETTINGS`` value of a file (None: never tagged by maest, or unreadable)."""
    try:
        values = read_field(open_tags(path), SETTINGS_FIELD)
    except TagWriteError:
        return None
    return values[0] if values else None


def _parse_added(entries: list[str]) -> set[tuple[str, str]]:
    pairs = (entry.partition("=") for entry in entries)
    return {(name.upper(), value) for name, sep, value in pairs if sep}


def plan(current: dict[str, list[str]], values: dict[str, list[str]], settings: str | None,
         replace: bool) -> dict[str, list[str]]:
    """The new values of every field in ``current`` (which holds the fields of ``values`` and the bookkeeping).

    A field keeps the user's values (all of them unless ``replace``) and gets maest's after them,
    except those already there (compared without case); values maest added earlier are dropped first.
    ``settings`` None removes maest's bookkeeping (undo).
    """
    before = _parse_added(current.get(ADDED_FIELD, []))
    added = [f"{name}={value}" for name, value in sorted(before) if name not in values]
    new: dict[str, list[str]] = {}
    for name, ours in values.items():
        kept = [] if replace else [v for v in current.get(name, []) if (name, v) not in before]
        seen = {v.casefold() for v in kept}
        fresh = [v for v in ours if v.casefold() not in seen]
        new[name] = kept + fresh
        added += [f"{name}={v}" for v in fresh]
    new[ADDED_FIELD] = added if settings is not None else []
    new[SETTINGS_FIELD] = [settings] if settings is not None else []
    return new


def update_file_tags(path: str | os.PathLike, values: dict[str, list[str]], settings: str, *, replace: bool = False,
                     dry_run: bool = False, keep_mtime: bool = False) -> FileChange:
    """Merge ``values`` (``{FIELD: values}``) into ``path``'s tags and write them safely (see the module doc).

    Raises :class:`~maest.library.formats.TagWriteError` (the file is left as it was) for a format
    maest does not write, an unreadable file, a read-only file or folder, a file with several hard links.
    """
    return _apply(path, values, settings, replace, dry_run, keep_mtime)


def remove_maest_tags(path: str | os.PathLike, *, dry_run: bool = False, keep_mtime: bool = False) -> FileChange:
    """Undo: remove the values maest added (``MAEST_ADDED``) and its bookkeeping fields; the user's values stay."""
    entries = read_field(open_tags(path), ADDED_FIELD)
    names = sorted({name for name, _ in _parse_added(entries)})
    return _apply(path, {name: [] for name in names}, None, False, dry_run, keep_mtime)


def _apply(path: str | os.PathLike, values: dict[str, list[str]], settings: str | None, replace: bool,
           dry_run: bool, keep_mtime: bool) -> FileChange:
    target = Path(os.path.realpath(path))  # a link keeps pointing at the tagged file
    audio = open_tags(target)
    names = list(values) + [ADDED_FIELD, SETTINGS_FIELD]
    current = {name: read_field(audio, name) for name in names}
    new = plan(current, values, settings, replace)
    change = FileChange(str(path), {n: (current[n], new[n]) for n in names if current[n] != new[n]})
    if not change.changes or dry_run:
        return change
    check_writable(target)
    _write_copy(target, new, keep_mtime)
    change.written = True
    return change


def check_writable(target: Path) -> None:
    """Raise :class:`TagWriteError` unless ``target`` may be replaced by a tagged copy.

    A file or folder without its owner's write bit counts as read-only even for root (who could
    write it anyway): marking music read-only is how a collector says "do not touch"."""
    info = target.stat()
    if not os.access(target, os.W_OK) or not info.st_mode & stat.S_IWUSR:
        raise TagWriteError("the file is read-only: make it writable (chmod u+w) to tag it")
    folder = target.parent.stat()
    if not os.access(target.parent, os.W_OK | os.X_OK) or not folder.st_mode & stat.S_IWUSR:
        raise TagWriteError(f"its folder {target.parent} is read-only: the tagged copy is written beside the file, "
                            "then renamed over it; make the folder writable (chmod u+w)")
    if info.st_nlink > 1:
        raise TagWriteError(f"the file has {info.st_nlink} hard links; replacing it would leave the other links "
                            "untagged: tag a copy, or break the links first")


def temp_path(target: Path) -> Path:
    """The hidden file beside ``target`` that its tagged copy is written to."""
    name = f".{target.name}{TEMP_SUFFIX}"
    if len(os.fsencode(name)) > MAX_NAME_BYTES:
        name = "." + hashlib.sha1(os.fsencode(target.name)).hexdigest()[:20] + TEMP_SUFFIX
    return target.with_name(name)


def _write_copy(target: Path, new: dict[str, list[str]], keep_mtime: bool) -> None:
    before = target.stat()
    temp = temp_path(target)
    try:
        shutil.copyfile(target, temp)
        copy = open_tags(temp)
        for name, values in new.items():
            write_field(copy, name, values)
        save_tags(copy)
        with open(temp, "rb+") as f:
            os.fsync(f.fileno())
        shutil.copystat(target, temp)  # mode, times, extended attributes
        try:
            os.chown(temp, before.st_uid, before.st_gid)
        except (PermissionError, AttributeError):
            pass  # only the owner or root may give files away; the copy stays ours
        if not keep_mtime:
            os.utime(temp)
        after = target.stat()
        if (after.st_mtime_ns, after.st_size) != (before.st_mtime_ns, before.st_size):
            raise TagWriteError("the file changed while it was being tagged; run again")
        os.replace(temp, target)
    except PermissionError as error:
        temp.unlink(missing_ok=True)
        raise TagWriteError(f"cannot write beside it ({error.strerror}): make the folder writable") from None
    except OSError as error:
        temp.unlink(missing_ok=True)
        if isinstance(error, TagWriteError):
            raise
        if error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
            raise  # the whole run cannot go on
        raise TagWriteError(f"cannot write its tags: {error}") from None
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    _fsync_folder(target.parent)


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable (POSIX); folders cannot be opened on Windows."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
