"""The Ray engine (maest.distributed) on a local 2-CPU cluster: equal to the local engine, resumable
after a killed driver, a killed actor retried with every track written once, settings refused."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import pytest

from conftest import BAD_CLIPS, SHARED_DATA
from distributed_data import slow_model, write_clips
from eval_data import tiny_model
from maest.extraction import SettingsMismatchError, extract, read_table
from maest.inference import MaestPipeline

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")
from maest.distributed import embed_dataset, extract_ray  # noqa: E402

TESTS = str(Path(__file__).resolve().parents[1])  # tests/: the shared helpers (distributed_data, eval_data)
SRC = str(Path(__file__).resolve().parents[2] / "src")


@pytest.fixture(scope="module")
def cluster():
    """One local cluster for every Ray test (starting one takes ~10 s); its workers import maest and
    this folder's helpers. Yields the address a second driver (a subprocess) connects to."""
    if ray.is_initialized():
        ray.shutdown()
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([SRC, TESTS] + ([saved] if saved else []))
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        address = ray.get_runtime_context().gcs_address
        assert address.startswith("127.0.0.1:"), f"the test cluster must stay on loopback, got {address}"
        yield address
    finally:
        ray.shutdown()
        for sig, handler in handlers.items():  # ray.init installs its own; later tests expect pytest's
            signal.signal(sig, handler)
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return tiny_model(tmp_path_factory.mktemp("ckpt") / "tiny")


def collection(root: Path, count: int) -> Path:
    """Generated clips (one shorter than a segment), plus the real bad files when ../shared/data is there."""
    write_clips(root, count)
    if (SHARED_DATA / "audio").is_dir():
        for name in BAD_CLIPS:
            shutil.copy(SHARED_DATA / "audio" / name, root / name)
    return root


def bad_count() -> int:
    return len(BAD_CLIPS) if (SHARED_DATA / "audio").is_dir() else 0


def test_ray_engine_writes_what_the_local_engine_writes(cluster, tmp_path, checkpoint):
    root = collection(tmp_path / "music", 6)
    huge = (1e20 * np.random.default_rng(0).standard_normal(16000)).astype(np.float32)
    sf.write(root / "huge.wav", huge, 16000, subtype="FLOAT")  # finite samples, a non-finite mel
    options = dict(blocks=2, per_segment=True, output_format="npz", progress=False)
    local = extract([root], tmp_path / "local", str(checkpoint), **options)
    distributed = extract_ray([root], tmp_path / "ray", str(checkpoint), concurrency=1, **options)
    assert (distributed.succeeded, distributed.failed, distributed.skipped) == (6, bad_count() + 1, 0)
    assert (local.succeeded, local.failed) == (distributed.succeeded, distributed.failed)
    assert sorted(distributed.failures) == sorted(local.failures)
    assert distributed.audio_seconds == pytest.approx(local.audio_seconds)
    for name in ("failures.tsv", "maest-embed.json"):
        assert (tmp_path / "ray" / name).read_text() == (tmp_path / "local" / name).read_text()
    outputs = sorted((tmp_path / "local").rglob("*.npz"))
    assert len(outputs) == 6
    for path in outputs:
        expected, got = np.load(path), np.load(tmp_path / "ray" / path.relative_to(tmp_path / "local"))
        np.testing.assert_allclose(got["embedding"], expected["embedding"], atol=1e-5, rtol=0)
        np.testing.assert_allclose(got["segment_embeddings"], expected["segment_embeddings"], atol=1e-5, rtol=0)
        np.testing.assert_array_equal(got["segment_starts"], expected["segment_starts"])
        assert float(got["duration"]) == float(expected["duration"])


def test_embed_dataset_rows_carry_embeddings_or_failure_reasons(cluster, tmp_path, checkpoint):
    good = write_clips(tmp_path, 2)
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF but not really")
    pipeline = MaestPipeline(__import__("maest.checkpoints", fromlist=["load_checkpoint"]).load_checkpoint(checkpoint),
                             "cpu")
    dataset = ray.data.from_items([{"path": str(p)} for p in [*good, bad]])
    rows = {row["key"]: row for row in embed_dataset(dataset, pipeline, blocks=2).take_all()}
    assert set(rows) == {str(p) for p in [*good, bad]}
    assert rows[str(bad)]["error"] and len(rows[str(bad)]["embedding"]) == 0
    for path in good:
        row = rows[str(path)]
        assert row["error"] is None
        expected, starts = pipeline.embed(str(path), blocks=2, per_segment=True)
        np.testing.assert_allclose(np.asarray(row["segment_embeddings"], np.float32), expected, atol=1e-5)
        np.testing.assert_allclose(row["embedding"], expected.mean(axis=0), atol=1e-5)
        np.testing.assert_array_equal(row["segment_starts"], starts)


def test_rerun_after_a_killed_driver_adds_only_the_missing_tracks(cluster, tmp_path, checkpoint):
    root, out = tmp_path / "many", tmp_path / "out"
    write_clips(root, 48, seconds=(2.0,))
    command = [sys.executable, "-m", "maest.cli", "embed", str(root), "-o", str(out), "-m", str(checkpoint),
               "--blocks", "2", "--engine", "ray", "--ray-address", cluster, "--no-progress"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, TESTS, os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list(out.rglob("*.npy")) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done = list(out.rglob("*.npy"))
    assert 0 < len(done) < 48, "the driver should have been killed part way"
    summary = extract_ray([root], out, str(checkpoint), blocks=2, progress=False)
    assert (summary.succeeded, summary.skipped, summary.failed) == (48 - len(done), len(done), 0)
    outputs = sorted(out.rglob("*.npy"))
    assert len(outputs) == 48 and all(np.load(p).shape == (96,) for p in outputs)
    assert not list(out.rglob("*.partial"))


def _actor_pids() -> dict[int, str]:
    """Process id -> title of this machine's maest model actors (Ray titles them after the class;
    ``...).submit`` is appended while one computes)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if title.startswith("ray::") and "TrackEmbedder" in title:
                found[int(entry.name)] = title
    return found


def test_a_killed_actor_is_retried_and_every_track_is_written_once(cluster, tmp_path):
    root, out = tmp_path / "music", tmp_path / "out"
    pipeline = MaestPipeline(slow_model(delay=0.25), "cpu")
    options = dict(blocks=2, output_format="parquet", per_segment=True, progress=False)
    write_clips(root, 8, seconds=(2.0,))
    first = extract([root], out, pipeline, **options)  # half the folder by the local engine
    assert first.succeeded == 8
    paths = write_clips(root, 16, seconds=(2.0,))  # the same first 8, and 8 more
    results, killed = {}, []

    def run():
        results["summary"] = extract_ray([root], out, pipeline, **options)

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 120
    while thread.is_alive() and not killed and time.monotonic() < deadline:
        busy = [pid for pid, title in _actor_pids().items() if ")." in title]  # computing, not loading
        if busy:
            os.kill(busy[0], signal.SIGKILL)
            killed.append(busy[0])
        time.sleep(0.01)
    thread.join(timeout=180)
    assert killed, "no computing actor was found to kill"
    summary = results["summary"]
    assert (summary.succeeded, summary.skipped, summary.failed) == (8, 8, 0)
    keys, embeddings = read_table(out / "embeddings.parquet")
    assert sorted(keys) == sorted(p.relative_to(root).as_posix() for p in paths) == sorted(set(keys))
    reference = extract([root], tmp_path / "local", pipeline, **options)
    assert reference.succeeded == 16
    local_keys, local_embeddings = read_table(tmp_path / "local" / "embeddings.parquet")
    assert keys == local_keys
    np.testing.assert_allclose(embeddings, local_embeddings, atol=1e-5, rtol=0)


def test_changed_settings_are_refused_before_any_work(cluster, tmp_path, checkpoint):
    root = tmp_path / "music"
    write_clips(root, 1)
    extract([root], tmp_path / "out", str(checkpoint), blocks=2, progress=False)
    settings = json.loads((tmp_path / "out" / "maest-embed.json").read_text())
    with pytest.raises(SettingsMismatchError, match=r"blocks \(2 vs 1\)"):
        extract_ray([root], tmp_path / "out", str(checkpoint), blocks=1, progress=False)
    with pytest.raises(SettingsMismatchError, match=r"precision \(fp32 vs bf16\)"):
        extract_ray([root], tmp_path / "out", str(checkpoint), blocks=2, precision="bf16", progress=False)
    assert json.loads((tmp_path / "out" / "maest-embed.json").read_text()) == settings


def test_stages_in_process_long_tracks_decoded_by_the_actor(tmp_path, checkpoint):
    """The stage functions without a cluster: a track over ``actor_decode_seconds`` travels as its path
    only and the actor decodes it; shipped, actor-decoded and failed rows give the local numbers."""
    import pyarrow as pa

    from maest.checkpoints import load_checkpoint
    from maest.distributed.stages import DECODE_IN_ACTOR, TrackEmbedder, decode_batch, table_results
    from maest.inference import EmbedOptions

    short, long = write_clips(tmp_path, 2, seconds=(1.0, 3.5))
    bad = tmp_path / "bad.mp3"
    bad.write_bytes(b"\0" * 100)
    pipeline = MaestPipeline(load_checkpoint(checkpoint), "cpu")
    paths = [str(short), str(long), str(bad)]
    decoded = decode_batch(pa.table({"path": paths}), pipeline.decoder, actor_decode_seconds=2.0)
    assert decoded.column("frames").to_pylist()[1] == DECODE_IN_ACTOR and len(decoded.column("mel")[1].as_py()) == 0
    assert decoded.column("error").to_pylist()[:2] == [None, None] and decoded.column("error")[2].as_py()
    actor = TrackEmbedder(pipeline.model, EmbedOptions(blocks=2), 8, "fp32", "cpu")
    rows = {key: (result, reason) for key, result, reason in table_results(actor(decoded))}
    for path in paths[:2]:
        expected, starts = pipeline.embed(path, blocks=2, per_segment=True)
        result, reason = rows[path]
        assert reason is None
        np.testing.assert_allclose(result.outputs, expected, atol=1e-5, rtol=0)
        np.testing.assert_array_equal(result.start_seconds, starts)
    assert rows[str(bad)][0] is None and rows[str(bad)][1]


def _driver_env() -> dict:
    """A second driver's environment, without the tests' loopback switch: maest must keep a loopback
    --ray-address as given by itself (Ray rewrites it to the machine's network address)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, TESTS, os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    env.pop("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", None)
    return env


def test_tag_on_a_loopback_cluster_gives_the_local_tags(cluster, tmp_path, checkpoint):
    from typer.testing import CliRunner

    from maest.cli import app

    root = tmp_path / "music"
    write_clips(root, 3)
    common = ["tag", str(root), "-m", str(checkpoint), "--format", "json", "--top-k", "4"]
    local = CliRunner().invoke(app, common)
    assert local.exit_code == 0, local.output
    command = [sys.executable, "-m", "maest.cli", *common, "--engine", "ray", "--ray-address", cluster]
    done = subprocess.run(command, env=_driver_env(), capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    expected = [json.loads(line) for line in local.stdout.splitlines() if line.startswith("{")]
    assert [r["path"] for r in rows] == [r["path"] for r in expected] and len(rows) == 3
    for got, want in zip(rows, expected):
        assert [t["label"] for t in got["tags"]] == [t["label"] for t in want["tags"]]
        np.testing.assert_allclose([t["probability"] for t in got["tags"]],
                                   [t["probability"] for t in want["tags"]], atol=2e-6)


def test_head_fit_embeds_on_the_ray_engine_as_on_the_local_one(cluster, tmp_path, checkpoint):
    from maest.distributed import RayEngine
    from maest.heads import fit_head

    root = tmp_path / "classes"
    for label, seed in (("low", 0), ("high", 1)):
        write_clips(root / label, 4, seconds=(1.0, 2.0), seed=seed)
    local = fit_head(root, tmp_path / "head-local", model=str(checkpoint), blocks=2, progress=False)
    with RayEngine() as engine:  # joins the test's cluster (already connected): leaves it running
        distributed = fit_head(root, tmp_path / "head-ray", model=str(checkpoint), blocks=2, progress=False,
                               engine=engine)
    assert ray.is_initialized()
    assert distributed.tracks == local.tracks and distributed.tracks["used"] == 8
    assert distributed.validation_metrics == local.validation_metrics
    caches = {name: sorted((tmp_path / name / "embeddings").rglob("*.npy")) for name in ("head-local", "head-ray")}
    assert len(caches["head-local"]) == 8 == len(caches["head-ray"])
    for a, b in zip(caches["head-local"], caches["head-ray"]):
        np.testing.assert_allclose(np.load(b), np.load(a), atol=1e-5, rtol=0)
