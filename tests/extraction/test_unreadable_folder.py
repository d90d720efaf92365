"""A folder the user cannot read is a failure (failures.tsv, the tag output), never silently skipped.

Root reads a mode-000 folder anyway, and the tests run as root here and in CI: the walk and the run
then happen in a forked child that drops to the unprivileged ``nobody`` user first.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from maest.checkpoints import save_native
from maest.configs import MaestConfig
from maest.extraction import extract, find_audio
from maest.failures import read_failures
from maest.inference import load_model
from maest.model import Maest


def _unprivileged(work: Callable[[], object]) -> object:
    """``work()``'s JSON-able result, computed by a user that file permissions apply to."""
    if os.geteuid() != 0:
        return work()
    nobody = pwd.getpwnam("nobody")
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through the pipe
        status = 1
        try:
            os.close(read_end)
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)
            torch.set_num_threads(1)
            payload = json.dumps(work()).encode()
            with os.fdopen(write_end, "wb") as pipe:
                pipe.write(payload)
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        payload = pipe.read()
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the unprivileged child failed"
    return json.loads(payload)


@pytest.fixture
def collection():
    """``music/ok/a.wav`` and ``music/locked/b.wav`` with ``locked`` at mode 000, in a folder ``nobody`` can reach."""
    base = Path(tempfile.mkdtemp(prefix="maest-locked-"))
    os.chmod(base, 0o777)
    music = base / "music"
    rng = np.random.default_rng(0)
    for rel in ("ok/a.wav", "locked/b.wav"):
        (music / rel).parent.mkdir(parents=True, exist_ok=True)
        sf.write(music / rel, (0.1 * rng.normal(size=16000)).astype(np.float32), 16000)
    for folder in (music, music / "ok", music / "locked"):
        os.chmod(folder, 0o755)
    os.chmod(music / "ok" / "a.wav", 0o644)
    os.chmod(music / "locked", 0o000)
    try:
        yield base, music
    finally:
        os.chmod(music / "locked", 0o755)
        shutil.rmtree(base)


def test_the_walk_reports_an_unreadable_folder(collection):
    _, music = collection

    def walk():
        items, bad = find_audio(music)
        return [item.key for item in items], bad

    keys, bad = _unprivileged(walk)
    assert keys == ["ok/a.wav"]
    assert [path for path, _ in bad] == [str(music / "locked")]
    assert "folder cannot be read" in bad[0][1] and "Permission denied" in bad[0][1]


def test_embed_lists_an_unreadable_folder_in_failures_tsv(collection):
    base, music = collection
    torch.manual_seed(0)
    checkpoint = save_native(Maest(MaestConfig(depth=2, width=32, heads=2, num_classes=3, segment_frames=64,
                                               name="tiny")), base / "tiny")
    for path in [base / "tiny", *(base / "tiny").rglob("*")]:
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
    pipeline = load_model(checkpoint, "cpu")
    out = base / "out"

    def run():
        summary = extract(music, out, pipeline, blocks=2, progress=False)
        return summary.succeeded, summary.failed

    assert _unprivileged(run) == [1, 1]
    failures = read_failures(out / "failures.tsv")
    assert list(failures) == [str(music / "locked")] and "folder cannot be read" in failures[str(music / "locked")]
    assert (out / "ok" / "a.npy").is_file()
    os.chmod(music / "locked", 0o755)  # fixed: the rerun embeds its track and settles its line
    assert _unprivileged(run) == [1, 0]
    assert not (out / "failures.tsv").exists() and (out / "locked" / "b.npy").is_file()


def test_a_head_fit_class_tree_with_an_unreadable_folder_is_an_error(collection):
    from maest.heads import HeadDataError, read_labels

    _, music = collection

    def read():
        try:
            read_labels(music)
        except HeadDataError as error:
            return str(error)
        return "read without an error"

    message = _unprivileged(read)
    assert message.startswith(f"folder {music / 'locked'} cannot be read (Permission denied)")
