"""Index writers with real processes: concurrent adds exclude each other, a kill at any step of a
commit leaves the old or the new index, a busy index waits (bounded), indexes written by 0.2 load."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import index_data
from maest import index as mi
from maest.index.lock import writer_lock

pytest.importorskip("faiss")

WRITER = Path(__file__).with_name("index_writer.py")
SRC = Path(mi.__file__).resolve().parents[2]
SPEC = {"model": "tiny-0", "blocks": 2, "tokens": ["cls", "dist", "avg"], "format": "npy"}
LEGACY = Path(__file__).with_name("legacy")


def write_tree(root: Path, keys: list[str], vectors: np.ndarray, spec: dict | None = SPEC) -> Path:
    return index_data.write_tree(root, keys, vectors, spec)


def writer(*args, start: bool = True) -> subprocess.Popen | subprocess.CompletedProcess:
    command = [sys.executable, str(WRITER), *map(str, args)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    if start:
        return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)


def assert_rows_match(index: mi.Index, vectors: dict[str, np.ndarray]) -> None:
    """Every indexed key holds its own vector (not another key's): the index did not tear."""
    stored = mi.vectors.all_vectors(index.structure)
    expected = np.stack([vectors[key] for key in index.keys])
    np.testing.assert_allclose(stored, expected / np.linalg.norm(expected, axis=1, keepdims=True), atol=1e-6)


def test_concurrent_adds_keep_every_track_with_its_own_vector(tmp_path):
    rng = np.random.default_rng(0)
    dims, base, per_writer, writers = 64, 100, 400, 3
    keys = [f"a/t{i:05d}.npy" for i in range(base + per_writer * writers)]
    vectors = rng.standard_normal((len(keys), dims)).astype(np.float32)
    write_tree(tmp_path / "base", keys[:base], vectors[:base])
    mi.build_index(tmp_path / "base", tmp_path / "ix")
    for w in range(writers):
        rows = slice(base + w * per_writer, base + (w + 1) * per_writer)
        write_tree(tmp_path / f"new{w}", keys[rows], vectors[rows])
    start_at = time.time() + 2.0  # after the imports: every writer starts its add at this instant
    runs = [writer("add", tmp_path / "ix", tmp_path / f"new{w}", start_at) for w in range(writers)]
    for run in runs:
        out, err = run.communicate(timeout=120)
        assert run.returncode == 0, err
        assert f"added {per_writer}, skipped 0" in out
    index = mi.load(tmp_path / "ix")
    assert sorted(index.keys) == sorted(keys) and len(index) == base + per_writer * writers
    assert_rows_match(index, dict(zip(keys, vectors)))
    generations = [p.name for p in (tmp_path / "ix").iterdir() if p.name.startswith("gen-")]
    assert generations == [index.generation]  # older generations were removed
    assert not list((tmp_path / "ix").glob("*.partial"))


@pytest.mark.parametrize("layout", ["current", "legacy-0.2"])
def test_a_kill_at_any_step_of_an_add_leaves_the_old_or_the_new_index(tmp_path, layout):
    source = np.load(LEGACY / "source.npy")  # 12 tracks: 8 in the 0.2 fixture index, 4 to add
    keys = [f"album/t{i:02d}.npy" for i in range(12)]
    if layout == "legacy-0.2":
        shutil.copytree(LEGACY / "exact", tmp_path / "template")
    else:
        mi.build_index(mi.EmbeddingSet(keys[:8], source[:8], SPEC), tmp_path / "template")
    write_tree(tmp_path / "emb", keys, source)
    vectors = dict(zip(keys, source))

    killer = writer("kill-each", tmp_path / "template", tmp_path / "emb", tmp_path, start=False)
    assert killer.returncode == 0, killer.stderr
    report = killer.stdout.splitlines()
    assert len(report) >= 8, killer.stdout  # lock, generation folder, three files, manifest, clean-up
    outcomes = set()
    for step, line in enumerate(report, 1):
        assert line == f"step {step} killed", (line, killer.stderr)
        folder = tmp_path / f"killed-{step}"
        index = mi.load(folder)  # whatever the step: a loadable index ...
        assert index.keys in (keys[:8], keys), step  # ... holding the old tracks or all of them
        assert_rows_match(index, vectors)
        outcomes.add(len(index))
        added = mi.add_to_index(folder, tmp_path / "emb").added  # and the next add completes it
        assert sorted(mi.load(folder).keys) == sorted(keys) and len(added) == 12 - len(index)
        leftovers = [p.name for p in folder.iterdir() if p.name not in ("index.json", "index.lock")]
        assert leftovers == [mi.load(folder).generation], (step, leftovers)  # nothing stale stays behind
    assert outcomes == {8, 12}  # the kills fell both before and after the commit


@pytest.mark.parametrize("name", ["exact", "hnsw-pca"])
def test_indexes_written_by_0_2_load_search_and_take_adds(tmp_path, name):
    source = np.load(LEGACY / "source.npy")
    keys = [f"album/t{i:02d}.npy" for i in range(12)]
    folder = shutil.copytree(LEGACY / name, tmp_path / name)
    index = mi.load(folder, ef_search=64)
    assert index.keys == keys[:8] and index.generation is None and index.info.embedding_spec["model"] == "tiny-0"
    assert index.search(source[3], k=1)[0] == (keys[3], pytest.approx(1.0, abs=2e-2))  # float16 + PCA: close
    report = mi.add_to_index(folder, write_tree(tmp_path / "emb", keys, source))
    assert sorted(report.added) == keys[8:]
    grown = mi.load(folder, ef_search=64)
    assert grown.keys == keys and grown.info.format_version == mi.search.FORMAT_VERSION
    np.testing.assert_array_equal(grown.pca.mean if grown.pca else 0, index.pca.mean if index.pca else 0)
    assert grown.search(source[10], k=1)[0][0] == keys[10]
    assert sorted(p.name for p in folder.iterdir()) == sorted([grown.generation, "index.json", "index.lock"])


def test_a_busy_index_waits_then_says_index_busy(tmp_path):
    from maest.cli import app

    rng = np.random.default_rng(1)
    keys = [f"t{i}.npy" for i in range(30)]
    vectors = rng.standard_normal((30, 16)).astype(np.float32)
    write_tree(tmp_path / "emb", keys[:20], vectors[:20])
    mi.build_index(tmp_path / "emb", tmp_path / "ix")
    write_tree(tmp_path / "emb", keys, vectors)
    held, release = writer_lock(tmp_path / "ix", wait=0), None
    held.__enter__()  # another writer, busy
    try:
        started = time.monotonic()
        busy = CliRunner().invoke(app, ["index", "add", str(tmp_path / "ix"), str(tmp_path / "emb"), "--wait", "0.5"])
        assert busy.exit_code == 1 and 0.5 <= time.monotonic() - started < 5
        assert "index busy" in busy.output and f"pid {os.getpid()}" in busy.output and "--wait" in busy.output
        assert "Traceback" not in busy.output
        with pytest.raises(mi.IndexBusyError, match="index busy"):
            mi.build_index(tmp_path / "emb", tmp_path / "ix", overwrite=True, wait=0)
        assert len(mi.load(tmp_path / "ix")) == 20  # nothing written while locked
        release = threading.Timer(0.5, held.__exit__, (None, None, None))  # the other writer finishes
        release.start()
        waited = CliRunner().invoke(app, ["index", "add", str(tmp_path / "ix"), str(tmp_path / "emb"), "--wait", "30"])
    finally:
        if release is None:
            held.__exit__(None, None, None)
        else:
            release.join()
    assert waited.exit_code == 0, waited.output
    assert "waiting up to 30 s" in waited.output and "added 10, skipped 20" in waited.output


def test_readers_see_whole_states_while_a_writer_commits(tmp_path):
    rng = np.random.default_rng(2)
    keys = [f"t{i:03d}.npy" for i in range(200)]
    vectors = rng.standard_normal((200, 32)).astype(np.float32)
    mi.build_index(mi.EmbeddingSet(keys[:20], vectors[:20], SPEC), tmp_path / "ix")
    stop, failures, seen = threading.Event(), [], set()

    def read_forever():
        while not stop.is_set():
            try:
                index = mi.load(tmp_path / "ix")
                assert index.keys == keys[:len(index)]
                seen.add(len(index))
            except Exception as error:  # noqa: BLE001 (reported below)
                failures.append(error)

    reader = threading.Thread(target=read_forever)
    reader.start()
    try:
        for end in range(30, 201, 10):  # 18 commits, each removing the generation before it
            mi.add_to_index(tmp_path / "ix", mi.EmbeddingSet(keys[:end], vectors[:end], SPEC))
    finally:
        stop.set()
        reader.join()
    assert not failures, failures[:3]
    assert len(seen) > 1  # the reader did overlap the commits
