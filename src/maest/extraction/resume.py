"""Resuming into an output folder: the settings it was made with, and which tracks are still to do.

The first run writes its settings (``maest-embed.json``); a later run into the same folder must use
the same ones (else it would mix embeddings) and skips the tracks its sink already holds. The file
is claimed atomically (hard link of a complete file, else exclusive create), so of two runs started
at the same moment with different settings one is refused; with the same settings (shards) both go on.

The settings hold the weights' fingerprint (:mod:`maest.checkpoints.fingerprint`), so new weights saved
at the same model path are refused too. A folder made before fingerprints were recorded is accepted
(nothing tells which weights made it) and gets this run's fingerprint, which guards it from then on.
Fields recorded later (segments, precision, resampler) count as what maest then used: maest, fp32, essentia
(:meth:`maest.spec.EmbeddingSpec.from_dict`).
"""

from __future__ import annotations

import errno
import json
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from maest.atomic import PARTIAL, atomic_write
from maest.extraction.errors import SettingsMismatchError
from maest.extraction.files import AudioItem
from maest.extraction.sinks import Sink
from maest.spec import EmbeddingSpec

SETTINGS_FILE = "maest-embed.json"


def model_name(model: str | os.PathLike | Any) -> str:
    """How the settings name a model: a pipeline by its config name, a local checkpoint by its
    absolute path (so cwd changes do not look like new settings), anything else as given."""
    if not isinstance(model, (str, os.PathLike)):
        return model.config.name
    return str(Path(model).resolve()) if Path(model).exists() else str(model)


WEIGHTS_KEY = "weights"
LAYOUT_KEYS = ("model", "segment_frames", "per_segment", "format")  # the output's layout, beside the spec


def run_settings(name: str, segment_frames: int, spec: EmbeddingSpec, per_segment: bool, fmt: str) -> dict:
    """Everything that changes an output's numbers or layout: the spec's dict (weights, precision,
    resampler... outputs of different specs must not mix in one folder) and the layout."""
    return {"model": name, "segment_frames": segment_frames, **spec.to_dict(), "per_segment": per_segment,
            "format": fmt}


def check_settings(output_dir: Path, settings: dict) -> None:
    """Claim ``output_dir`` for ``settings``, or raise :class:`SettingsMismatchError` naming what differs."""
    path = Path(output_dir) / SETTINGS_FILE
    if not path.exists() and _claim(path, settings):
        return
    previous = _read_settings(path)
    old_spec, new_spec = EmbeddingSpec.from_dict(previous), EmbeddingSpec.from_dict(settings)
    changed = [f"{k} ({previous.get(k)!r} vs {settings.get(k)!r})" for k in LAYOUT_KEYS
               if k in settings and previous.get(k) != settings[k]]
    changed += [d for d in old_spec.replace(weights=None).differences(new_spec.replace(weights=None))]
    if changed:
        # The default precision follows the machine (auto): a folder made on another one names its own.
        only_precision = len(changed) == 1 and changed[0].startswith("precision")
        hint = f", or pass --precision {previous.get('precision', 'fp32')}" if only_precision else ""
        raise SettingsMismatchError(
            f"{output_dir} holds outputs made with other settings (differs in: {'; '.join(changed)}); "
            f"choose another output folder or delete that one{hint}"
        )
    old, new = previous.get(WEIGHTS_KEY), settings.get(WEIGHTS_KEY)
    if old is not None and new is not None and old != new:
        raise SettingsMismatchError(
            f"{output_dir} holds outputs made with other weights: the checkpoint at {settings.get('model')} "
            f"changed since (differs in: weights ({old[:12]} vs {new[:12]})); choose another output folder or "
            "delete that one"
        )
    missing = {k: v for k, v in settings.items() if k not in previous}
    if missing:  # a folder from before fingerprints (or the resampler) were recorded: from now on it is guarded
        atomic_write(path, lambda f: f.write(_settings_text({**previous, **missing})), shared=True)


def _settings_text(settings: dict) -> bytes:
    return json.dumps(settings, indent=2).encode()


def _claim(path: Path, settings: dict) -> bool:
    """Create ``path`` holding ``settings`` unless it exists (then False): a complete file is hard-linked
    into place, which fails if another run got there first; file systems without hard links get an
    exclusive create instead (readers wait for its content, see :func:`_read_settings`)."""
    text = _settings_text(settings)
    partial = path.with_name(f"{path.name}.{os.getpid()}-{threading.get_ident()}{PARTIAL}")
    try:
        with open(partial, "wb") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(partial, path)
            return True
        except FileExistsError:
            return False
        except OSError as error:
            if error.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
                raise
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as f:
            f.write(text)
        return True
    finally:
        partial.unlink(missing_ok=True)


def _read_settings(path: Path, wait_seconds: float = 5.0) -> dict:
    """The settings in ``path``; waits briefly for a file another run is still writing (exclusive create)."""
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            return json.loads(path.read_text())
        except ValueError:
            if time.monotonic() > deadline:
                raise SettingsMismatchError(f"{path} is not valid JSON; delete it or choose another output folder") from None
            time.sleep(0.05)


def pending_items(items: Sequence[AudioItem], sink: Sink) -> tuple[list[AudioItem], int]:
    """``(items still to do, number already in the sink)``, in input order."""
    done = sink.done_keys([item.key for item in items])
    todo = [item for item in items if item.key not in done]
    return todo, len(items) - len(todo)
