"""Resuming into an output folder: the settings it was made with, and which tracks are still to do.

The first run writes its settings (``maest-embed.json``); a later run into the same folder must use
the same ones (else it would mix embeddings) and skips the tracks its sink already holds.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from maest.atomic import atomic_write
from maest.extraction.errors import SettingsMismatchError
from maest.extraction.files import AudioItem
from maest.extraction.sinks import Sink
from maest.inference import EmbedOptions

SETTINGS_FILE = "maest-embed.json"


def model_name(model: str | os.PathLike | Any) -> str:
    """How the settings name a model: a pipeline by its config name, a local checkpoint by its
    absolute path (so cwd changes do not look like new settings), anything else as given."""
    if not isinstance(model, (str, os.PathLike)):
        return model.config.name
    return str(Path(model).resolve()) if Path(model).exists() else str(model)


def run_settings(name: str, segment_frames: int, options: EmbedOptions, per_segment: bool, fmt: str) -> dict:
    """Everything that changes an output's numbers or layout."""
    return {
        "model": name,
        "segment_frames": segment_frames,
        "blocks": options.blocks,
        "tokens": list(options.tokens),
        "patchout_time": options.patchout_time,
        "patchout_freq": list(options.patchout_freq),
        "overlap": options.overlap,
        "crop": options.crop,
        "per_segment": per_segment,
        "format": fmt,
    }


def check_settings(output_dir: Path, settings: dict) -> None:
    """Claim ``output_dir`` for ``settings``, or raise :class:`SettingsMismatchError` if it holds others."""
    path = output_dir / SETTINGS_FILE
    if path.exists():
        previous = json.loads(path.read_text())
        changed = {k: (previous.get(k), v) for k, v in settings.items() if previous.get(k) != v}
        if changed:
            details = ", ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in changed.items())
            raise SettingsMismatchError(
                f"{output_dir} holds outputs made with other settings ({details}); "
                "choose another output folder or delete that one"
            )
    else:
        atomic_write(path, lambda f: f.write(json.dumps(settings, indent=2).encode()), shared=True)


def pending_items(items: Sequence[AudioItem], sink: Sink) -> tuple[list[AudioItem], int]:
    """``(items still to do, number already in the sink)``, in input order."""
    done = sink.done_keys([item.key for item in items])
    todo = [item for item in items if item.key not in done]
    return todo, len(items) - len(todo)
