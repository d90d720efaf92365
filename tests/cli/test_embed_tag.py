"""Batch extraction and the `maest embed` / `maest tag` commands: formats, resume, bad files."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from typer.testing import CliRunner

from conftest import BAD_CLIPS, GOOD_CLIPS
from maest import extraction
from maest.checkpoints import save_native
from maest.cli import app
from maest.configs import MaestConfig
from maest.extraction import OutputCollisionError, SettingsMismatchError, extract, read_table, resume
from maest.inference import EmbedOptions, load_model
from maest.model import Maest
from maest.spec import EmbeddingSpec

LABELS = ["Rock---Punk", "Electronic---Techno", "Jazz---Bop", "Pop---Ballad", "Classical---Baroque"]
SRC = str(Path(__file__).resolve().parents[2] / "src")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> str:
    torch.manual_seed(1)
    path = tmp_path_factory.mktemp("ckpt") / "tiny"
    config = MaestConfig(depth=2, width=32, heads=2, num_classes=5, segment_frames=200, labels=LABELS, name="tiny")
    save_native(Maest(config), path)
    return str(path)


@pytest.fixture(scope="module")
def pipeline(checkpoint):
    return load_model(checkpoint, device="cpu")


@pytest.fixture
def collection(tmp_path, audio_dir) -> Path:
    """The real clips (good and bad) in a nested tree, plus a file the extension filter skips."""
    root = tmp_path / "music"
    for i, name in enumerate(GOOD_CLIPS + BAD_CLIPS):
        folder = root / ("a" if i % 2 else "b/c")
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(audio_dir / name, folder / name)
    (root / "notes.txt").write_text("not audio, and not an audio extension")
    return root


def run_cli(*args: str):
    return CliRunner().invoke(app, list(args))


def embed_args(root, out, checkpoint, *extra):
    return ["embed", str(root), "-o", str(out), "--model", checkpoint, "--blocks", "2", "--no-progress", *extra]


def test_cli_embeds_good_files_reports_bad_ones_and_matches_the_api(collection, tmp_path, checkpoint, pipeline):
    out = tmp_path / "out"
    result = run_cli(*embed_args(collection, out, checkpoint, "--workers", "2", "--batch-size", "3"))
    assert result.exit_code == 0, result.output
    assert "5 succeeded, 3 failed, 0 skipped" in result.output
    outputs = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.npy"))
    expected = sorted(p.relative_to(collection).with_suffix(".npy").as_posix()
                      for p in collection.rglob("*") if p.name in GOOD_CLIPS)
    assert outputs == expected  # mirrors the tree; bad files and notes.txt have no output
    failures = dict(line.split("\t") for line in (out / "failures.tsv").read_text().splitlines())
    assert sorted(Path(p).name for p in failures) == sorted(BAD_CLIPS)
    reasons = {Path(p).name: r for p, r in failures.items()}
    assert "empty" in reasons["empty.wav"] and "truncated" in reasons["truncated_techbattle.ogg"]
    assert "not a readable audio file" in reasons["not_audio.mp3"]
    for name in GOOD_CLIPS:
        source = next(collection.rglob(name))
        saved = np.load(out / source.relative_to(collection).with_suffix(".npy"))
        np.testing.assert_allclose(saved, pipeline.embed(source, blocks=2), atol=1e-6)
    assert json.loads((out / "maest-embed.json").read_text())["blocks"] == 2


def test_rerun_skips_finished_tracks_and_refuses_other_settings(collection, tmp_path, checkpoint):
    out = tmp_path / "out"
    first = run_cli(*embed_args(collection, out, checkpoint, "--workers", "0"))
    assert first.exit_code == 0, first.output
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.npy")}
    second = run_cli(*embed_args(collection, out, checkpoint, "--workers", "0"))
    assert second.exit_code == 0 and "0 succeeded, 3 failed, 5 skipped" in second.output
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.npy")} == before
    other = run_cli(*embed_args(collection, out, checkpoint, "--patchout-time", "2"))
    assert other.exit_code != 0 and "other settings" in other.output


def test_nothing_succeeded_is_an_error_exit(tmp_path, audio_dir, checkpoint):
    result = run_cli(*embed_args(audio_dir / "empty.wav", tmp_path / "out", checkpoint))
    assert result.exit_code == 1 and "0 succeeded, 1 failed" in result.output


def test_extension_filter_and_options(collection, tmp_path, checkpoint, pipeline):
    out = tmp_path / "out"
    result = run_cli(*embed_args(collection, out, checkpoint, "--ext", "flac,WAV", "--tokens", "avg,cls",
                                 "--patchout-freq", "0,8", "--patchout-time", "2", "--per-segment"))
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in out.rglob("*.npy"))
    assert names == ["ambience_12s_16k_mono.npy", "menu_0.5s_44k_stereo.npy", "temple_8s_48k_stereo.npy"]
    source = next(collection.rglob("temple_8s_48k_stereo.flac"))
    saved = np.load(next(out.rglob("temple_8s_48k_stereo.npy")))
    expected, _ = pipeline.embed(source, blocks=2, tokens=("avg", "cls"), patchout_freq=(0, 8), patchout_time=2,
                                 per_segment=True)
    assert saved.shape == expected.shape == (len(expected), 64)
    np.testing.assert_allclose(saved, expected, atol=1e-6)


def test_npz_and_parquet_round_trip(collection, tmp_path, checkpoint, pipeline):
    npz_out, table_out = tmp_path / "npz", tmp_path / "parquet"
    assert run_cli(*embed_args(collection, npz_out, checkpoint, "--format", "npz", "--per-segment")).exit_code == 0
    assert run_cli(*embed_args(collection, table_out, checkpoint, "--format", "parquet", "--per-segment")).exit_code == 0
    paths, table = read_table(table_out / "embeddings.parquet")
    assert sorted(Path(p).name for p in paths) == sorted(GOOD_CLIPS)
    assert not (table_out / "embeddings.parts").exists()
    import pyarrow.parquet as pq

    full = pq.read_table(table_out / "embeddings.parquet").to_pylist()
    for row, key, embedding in zip(full, paths, table):
        source = collection / key
        segments, starts = pipeline.embed(source, blocks=2, per_segment=True)
        with np.load(npz_out / Path(key).with_suffix(".npz")) as npz:
            np.testing.assert_allclose(npz["segment_embeddings"], segments, atol=1e-6)
            np.testing.assert_allclose(npz["segment_starts"], starts)
            np.testing.assert_allclose(npz["embedding"], segments.mean(0), atol=1e-6)
            np.testing.assert_allclose(embedding, npz["embedding"], atol=1e-7)
            assert float(npz["duration"]) == pytest.approx(row["duration"])
        assert row["segments"] == len(segments) == len(row["segment_starts"])
        np.testing.assert_allclose(np.array(row["segment_embeddings"]), segments, atol=1e-6)


def test_parquet_run_stopped_early_keeps_finished_tracks_and_resumes(collection, tmp_path, pipeline, monkeypatch):
    out = tmp_path / "out"
    calls = {"n": 0}
    original = extraction.ParquetSink.add

    def add_then_stop(self, key, result):
        original(self, key, result)
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(extraction.ParquetSink, "add", add_then_stop)
    with pytest.raises(KeyboardInterrupt):
        extract([collection], out, pipeline, blocks=2, output_format="parquet", progress=False)
    assert not (out / "embeddings.parquet").exists() and len(list((out / "embeddings.parts").glob("*.parquet"))) == 1
    monkeypatch.setattr(extraction.ParquetSink, "add", original)
    summary = extract([collection], out, pipeline, blocks=2, output_format="parquet", progress=False)
    assert (summary.succeeded, summary.skipped, summary.failed) == (3, 2, 3)
    paths, table = read_table(out / "embeddings.parquet")
    assert len(paths) == len(set(paths)) == 5 and table.shape == (5, 96)
    assert not list(out.rglob("*.partial"))


def test_killed_run_leaves_no_partial_outputs_and_resumes(tmp_path, checkpoint):
    root, out = tmp_path / "many", tmp_path / "out"
    rng = np.random.default_rng(0)
    for i in range(60):
        (root / f"d{i % 3}").mkdir(parents=True, exist_ok=True)
        sf.write(root / f"d{i % 3}" / f"t{i:02d}.wav", (0.1 * rng.standard_normal(16000 * 4)).astype(np.float32), 16000)
    command = [sys.executable, "-m", "maest.cli", *embed_args(root, out, checkpoint, "--workers", "0", "--batch-size", "4")]
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""), "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not list(out.rglob("*.npy")) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done = list(out.rglob("*.npy"))
    assert 0 < len(done) < 60, "the run should have been killed part way"
    for path in done:  # whatever exists is complete
        assert np.load(path).shape == (96,)
    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{60 - len(done)} succeeded, 0 failed, {len(done)} skipped" in rerun.stdout
    outputs = sorted(out.rglob("*.npy"))
    assert len(outputs) == 60 and all(np.load(p).shape == (96,) for p in outputs)
    assert not list(out.rglob("*.partial"))


def test_colliding_outputs_are_refused(tmp_path, audio_dir, pipeline):
    root = tmp_path / "music"
    root.mkdir()
    shutil.copy(audio_dir / "ambience_12s_16k_mono.wav", root / "song.wav")
    shutil.copy(audio_dir / "temple_8s_48k_stereo.flac", root / "song.flac")
    with pytest.raises(OutputCollisionError, match="song"):
        extract([root], tmp_path / "out", pipeline, blocks=2, progress=False)


def test_settings_are_checked_by_the_library(collection, tmp_path, pipeline):
    extract([collection], tmp_path / "out", pipeline, blocks=2, progress=False, extensions=["wav"])
    with pytest.raises(SettingsMismatchError, match="blocks"):
        extract([collection], tmp_path / "out", pipeline, blocks=1, progress=False)


def test_tag_command_formats(collection, checkpoint, pipeline):
    result = run_cli("tag", str(collection), "--model", checkpoint, "--top-k", "2", "--format", "json")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    assert sorted(Path(r["path"]).name for r in rows) == sorted(GOOD_CLIPS)
    for row in rows:
        expected = pipeline.tag(row["path"], top_k=2)
        assert [t["label"] for t in row["tags"]] == [label for label, _ in expected]
        assert row["tags"][0]["probability"] == pytest.approx(expected[0][1], abs=1e-5)
    assert "failed:" in result.output and "empty.wav" in result.output
    tsv = run_cli("tag", str(collection / "a"), "--model", checkpoint, "--top-k", "3", "--format", "tsv")
    lines = [l.split("\t") for l in tsv.output.splitlines() if l.count("\t") == 2]
    assert tsv.exit_code == 0 and len(lines) == 3 * 2 and all(label in LABELS for _, label, _ in lines)
    table = run_cli("tag", str(collection / "b"), "--model", checkpoint)
    assert table.exit_code == 0 and any(label in table.output for label in LABELS)


def test_tags_come_in_input_order_although_tracks_finish_out_of_order(audio_dir, pipeline):
    # The 0.5 s clip is a batch of its own length that only runs when the queue is flushed at the
    # end, so the tracks after it finish first.
    clips = ["menu_0.5s_44k_stereo.wav", "empty.wav", "techbattle_30s_44k_stereo.ogg", "ambience_12s_16k_mono.wav"]
    paths = [audio_dir / name for name in clips]
    results = list(extraction.tag_files(paths, pipeline, batch_size=2))
    assert [Path(path).name for path, _, _ in results] == clips
    assert results[1][1] is None and "empty" in results[1][2]
    for path, probabilities, _ in results[2:]:
        np.testing.assert_allclose(probabilities, pipeline.predict(path), atol=1e-5)
    options = EmbedOptions(blocks=None)
    batcher = pipeline.batcher(pipeline.tagger(options), options, batch_size=2)
    finished = [Path(item.path).name for item, _, _ in extraction.process(
        extraction.find_audio(paths)[0], batcher, pipeline.decoder)]
    assert finished != clips  # the reordering above is real work, not the natural order


def test_shards_split_the_files_and_together_cover_them(collection, tmp_path, checkpoint):
    out = tmp_path / "out"
    for index in range(2):
        result = run_cli(*embed_args(collection, out, checkpoint, "--shard", f"{index}/2", "--format", "parquet"))
        assert result.exit_code == 0, result.output
    first, _ = read_table(out / "embeddings.shard-0-of-2.parquet")
    second, _ = read_table(out / "embeddings.shard-1-of-2.parquet")
    assert not set(first) & set(second) and sorted(Path(p).name for p in first + second) == sorted(GOOD_CLIPS)
    failed = [(out / f"failures.shard-{i}-of-2.tsv").read_text().count("\n") for i in range(2)]
    assert sum(failed) == len(BAD_CLIPS)
    assert run_cli(*embed_args(collection, out, checkpoint, "--shard", "2/2")).exit_code != 0


def test_invalid_options_fail_before_the_output_folder_is_claimed(tmp_path, audio_dir, pipeline):
    """A typo (overlap 1.0, crop 'middle') must not write settings that then refuse the corrected run."""
    out = tmp_path / "out"
    for bad in [dict(overlap=1.0), dict(crop="middle")]:
        with pytest.raises(ValueError, match="overlap|crop"):
            extract([audio_dir / "menu_0.5s_44k_stereo.wav"], out, pipeline, blocks=2, progress=False, **bad)
        assert not (out / "maest-embed.json").exists()
    summary = extract([audio_dir / "menu_0.5s_44k_stereo.wav"], out, pipeline, blocks=2, progress=False)
    assert (summary.succeeded, summary.failed) == (1, 0)


def test_parquet_rerun_clears_a_part_whose_write_was_killed(tmp_path, audio_dir, pipeline):
    out = tmp_path / "out"
    clip = audio_dir / "menu_0.5s_44k_stereo.wav"
    (out / "embeddings.parts").mkdir(parents=True)
    (out / "embeddings.parts" / "part-1-1.parquet.partial").write_bytes(b"PAR1 half a part")
    summary = extract([clip], out, pipeline, blocks=2, output_format="parquet", progress=False)
    assert summary.succeeded == 1
    assert read_table(out / "embeddings.parquet")[0] == [clip.name]
    assert not list(out.rglob("*.partial")) and not (out / "embeddings.parts").exists()


def test_failures_file_keeps_paths_exactly(tmp_path, audio_dir, pipeline):
    """A failed file's path in failures.tsv is the real path (runs of spaces, unicode) so it can be retried."""
    root = tmp_path / "música  nueva"
    root.mkdir()
    bad = root / "Artist  -  Song   (live).wav"
    shutil.copy(audio_dir / "empty.wav", bad)
    shutil.copy(audio_dir / "menu_0.5s_44k_stereo.wav", root / "ok  song.wav")
    out = tmp_path / "out"
    summary = extract([root], out, pipeline, blocks=2, progress=False)
    assert (summary.succeeded, summary.failed) == (1, 1)
    assert (out / "ok  song.npy").exists()
    [line] = (out / "failures.tsv").read_text().splitlines()
    path, reason = line.split("\t")
    assert path == str(bad) and Path(path).exists() and "empty" in reason


def test_symlinked_folders_are_searched_once(tmp_path, audio_dir):
    """A collection of symlinked album folders is found (rglob skips them); a link loop ends."""
    elsewhere = tmp_path / "disk2" / "album"
    elsewhere.mkdir(parents=True)
    shutil.copy(audio_dir / "menu_0.5s_44k_stereo.wav", elsewhere / "song.wav")
    root = tmp_path / "music"
    (root / "real").mkdir(parents=True)
    shutil.copy(audio_dir / "temple_8s_48k_stereo.flac", root / "real" / "other.flac")
    (root / "linked").symlink_to(elsewhere, target_is_directory=True)
    (root / "real" / "loop").symlink_to(root, target_is_directory=True)
    items, missing = extraction.find_audio([root])
    assert not missing
    assert sorted(item.key for item in items) == ["linked/song.wav", "real/other.flac"]


def test_shards_starting_together_both_claim_the_output_folder(tmp_path, pipeline, monkeypatch):
    """Two shards writing maest-embed.json at the same moment must both start (no shared partial)."""
    import threading

    barrier = threading.Barrier(2, timeout=10)
    dumps = json.dumps

    def dumps_in_step(*args, **kwargs):
        barrier.wait()  # both writers have opened their partial file before either renames it
        return dumps(*args, **kwargs)

    monkeypatch.setattr(resume.json, "dumps", dumps_in_step)
    settings = extraction.run_settings("tiny", pipeline.config.segment_frames, EmbeddingSpec(blocks=2), False, "npy")
    errors = []

    def claim():
        try:
            extraction.check_settings(tmp_path, settings)
        except Exception as error:  # noqa: BLE001 - collected for the assertion below
            errors.append(error)

    threads = [threading.Thread(target=claim) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert json.loads((tmp_path / "maest-embed.json").read_text())["blocks"] == 2
    assert not list(tmp_path.glob("*.partial"))


def test_long_track_names_are_written_and_unwritable_outputs_are_reported(tmp_path, audio_dir, pipeline):
    music = tmp_path / "music"
    music.mkdir()
    long_wav = music / ("x" * 251 + ".wav")  # 255 bytes: its output fits, "<output>.partial" would not
    long_au = music / ("y" * 252 + ".au")  # 255 bytes: its output "<name>.npy" would be 256
    for path in (long_wav, long_au):
        shutil.copy(audio_dir / "menu_0.5s_44k_stereo.wav", path)
    out = tmp_path / "out"
    summary = extract([music], out, pipeline, blocks=1, progress=False)
    assert summary.succeeded == 1 and summary.failed == 1
    np.testing.assert_allclose(np.load(out / ("x" * 251 + ".npy")), pipeline.embed(long_wav, blocks=1), atol=1e-6)
    failures = (out / "failures.tsv").read_text()
    assert long_au.name in failures and "cannot write its output" in failures
    assert not list(out.rglob("*.partial"))


def test_a_subset_rerun_keeps_earlier_failures_and_a_fixed_file_leaves_them(collection, tmp_path, audio_dir, pipeline):
    from maest.failures import read_failures

    out = tmp_path / "out"
    extract([collection], out, pipeline, blocks=2, progress=False)
    first = read_failures(out / "failures.tsv")
    assert sorted(Path(p).name for p in first) == sorted(BAD_CLIPS)
    extract([collection / "b"], out / "b", pipeline, blocks=2, progress=False)  # another folder: untouched
    extract([next(collection.rglob("menu_0.5s_44k_stereo.wav"))], out, pipeline, blocks=2, progress=False)
    assert read_failures(out / "failures.tsv") == first  # a subset rerun does not erase them
    fixed = next(collection.rglob("empty.wav"))
    shutil.copy(audio_dir / "menu_0.5s_44k_stereo.wav", fixed)
    summary = extract([collection], out, pipeline, blocks=2, progress=False)
    assert summary.failed == len(BAD_CLIPS) - 1
    assert set(read_failures(out / "failures.tsv")) == set(first) - {str(fixed)}
