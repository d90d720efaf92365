"""What the dataset loaders return: a :class:`Dataset` of named label columns and ``train``/``validation``/
``test`` :class:`Split` s, plus the audio-presence check and the copy without missing tracks.

Kept apart from the loaders (:mod:`maest.evaluate.datasets`, which re-exports these names), so code
that evaluates or fits on a dataset does not read the published file formats.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SPLITS = ("train", "validation", "test")


class DatasetFormatError(ValueError):
    """Split files are missing or do not have the documented format; the message names the file."""


class MissingAudioError(FileNotFoundError):
    """Audio files listed by the split are absent under the audio root (see :func:`check_audio`)."""

    def __init__(self, report: "AudioCheck"):
        self.report = report
        super().__init__(report.summary() + "\npass allow_missing=True (--allow-missing) to evaluate without them")


@dataclass
class Split:
    """One split: ``paths`` relative to the audio root, ``targets`` bool (N, labels), track ``ids``."""

    name: str
    paths: list[str]
    targets: np.ndarray
    ids: list[str]

    def __post_init__(self):
        self.targets = np.asarray(self.targets, dtype=bool)
        if not (len(self.paths) == len(self.ids) == self.targets.shape[0]):
            raise DatasetFormatError(
                f"split {self.name}: {len(self.paths)} paths, {len(self.ids)} ids, {self.targets.shape[0]} target rows"
            )

    def __len__(self) -> int:
        return len(self.paths)

    def subset(self, keep: np.ndarray) -> "Split":
        idx = np.flatnonzero(keep)
        return Split(self.name, [self.paths[i] for i in idx], self.targets[idx], [self.ids[i] for i in idx])


@dataclass
class Dataset:
    """A multi-label dataset: ``labels`` name the target columns; ``variant`` says which files were read."""

    name: str
    labels: list[str]
    splits: dict[str, Split]
    variant: str = ""
    notes: list[str] = field(default_factory=list)

    def __post_init__(self):
        for split in self.splits.values():
            if split.targets.shape[1] != len(self.labels):
                raise DatasetFormatError(f"split {split.name} has {split.targets.shape[1]} columns for {len(self.labels)} labels")

    def counts(self) -> dict[str, int]:
        return {name: len(split) for name, split in self.splits.items()}

    def fingerprint(self) -> str:
        """A digest of the labels and every split's paths and targets (keys resumable results)."""
        digest = hashlib.blake2b(digest_size=8)
        digest.update(json.dumps([self.name, self.labels]).encode())
        for name, split in self.splits.items():
            digest.update(json.dumps([name, split.paths]).encode())
            digest.update(np.ascontiguousarray(split.targets, dtype=np.uint8).tobytes())
        return digest.hexdigest()

    def all_paths(self) -> list[str]:
        """Every distinct audio path, in split order (a track may appear in only one split)."""
        seen: dict[str, None] = {}
        for split in self.splits.values():
            seen.update(dict.fromkeys(split.paths))
        return list(seen)


# -- audio presence -----------------------------------------------------------------------------
@dataclass
class AudioCheck:
    """Which listed audio files exist under ``root``, per split; ``missing`` keeps every absent path."""

    root: str
    total: dict[str, int]
    missing: dict[str, list[str]]

    @property
    def ok(self) -> bool:
        return not any(self.missing.values())

    def summary(self) -> str:
        lines = [f"audio root {self.root}:"]
        for name, total in self.total.items():
            gone = self.missing[name]
            example = f" (e.g. {gone[0]})" if gone else ""
            lines.append(f"  {name}: {total - len(gone)}/{total} present, {len(gone)} missing{example}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {
            "root": self.root,
            "splits": {n: {"total": t, "missing": len(self.missing[n]), "missing_examples": self.missing[n][:20]} for n, t in self.total.items()},
        }


def check_audio(dataset: Dataset, root: str | os.PathLike) -> AudioCheck:
    """Count the split's audio files missing under ``root``, per split (nothing is dropped here)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"audio root {root} is not a directory")
    total, missing = {}, {}
    for name, split in dataset.splits.items():
        total[name] = len(split)
        missing[name] = [p for p in split.paths if not (root / p).is_file()]
    return AudioCheck(str(root), total, missing)


def drop_paths(dataset: Dataset, paths: set[str], note: str) -> Dataset:
    """A copy of ``dataset`` without tracks whose path is in ``paths``, recording ``note``."""
    splits = {n: s.subset(np.array([p not in paths for p in s.paths], dtype=bool)) for n, s in dataset.splits.items()}
    return Dataset(dataset.name, dataset.labels, splits, dataset.variant, [*dataset.notes, note])
