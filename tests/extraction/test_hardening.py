"""`maest embed` / `maest tag` against a hostile collection and a careless user (issue 11).

Each test names the item it covers; each failed before the fix it guards.
"""

from __future__ import annotations

import json
import multiprocessing
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
from maest.batching import TrackResult
from maest.checkpoints import save_native
from maest.checkpoints import fingerprint as fp
from maest.cli import app
from maest.configs import MaestConfig
from maest.extraction import SettingsMismatchError, extract, resume, sinks
from maest.extraction.errors import NonFiniteOutputError, OutputNotWritableError
from maest.failures import read_failures
from maest.inference import EmbedOptions, load_model, top_labels
from maest.model import Maest
from maest.spec import EmbeddingSpec

SRC = str(Path(__file__).resolve().parents[2] / "src")
LABELS = ["Rock---Punk", "Electronic---Techno", "Jazz---Bop", "Pop---Ballad", "Classical---Baroque"]


def tiny_checkpoint(path: Path, seed: int = 1) -> Path:
    torch.manual_seed(seed)
    config = MaestConfig(depth=2, width=32, heads=2, num_classes=5, segment_frames=200, labels=LABELS, name="tiny")
    return save_native(Maest(config), path)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> str:
    return str(tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny"))


@pytest.fixture(scope="module")
def pipeline(checkpoint):
    return load_model(checkpoint, device="cpu")


def write_wav(path: Path, seconds: float = 3.0, scale: float = 0.1, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    samples = scale * np.random.default_rng(seed).standard_normal(int(16000 * seconds))
    sf.write(path, samples.astype(np.float32), 16000, subtype="FLOAT")
    return path


def strict_json(line: str):
    """json.loads that refuses NaN / Infinity, as every other JSON reader does."""
    return json.loads(line, parse_constant=lambda name: pytest.fail(f"invalid JSON constant {name} in {line!r}"))


def embed_args(root, out, checkpoint, *extra):
    return ["embed", *([str(r) for r in root] if isinstance(root, list) else [str(root)]), "-o", str(out),
            "--model", checkpoint, "--blocks", "2", "--no-progress", *extra]


# -- 2. non-finite outputs ------------------------------------------------------------------------
def test_huge_float_samples_are_a_failure_not_a_nan_embedding(tmp_path, pipeline):
    music = tmp_path / "music"
    write_wav(music / "good.wav")
    write_wav(music / "huge.wav", scale=1e20)  # finite samples, but the mel overflows to NaN
    out = tmp_path / "out"
    summary = extract([music], out, pipeline, blocks=2, progress=False)
    assert (summary.succeeded, summary.failed) == (1, 1)
    assert not (out / "huge.npy").exists() and np.isfinite(np.load(out / "good.npy")).all()
    assert "NaN or infinity" in read_failures(out / "failures.tsv")[str(music / "huge.wav")]


def test_tag_json_is_valid_json_when_a_track_is_not_finite(tmp_path, checkpoint):
    music = tmp_path / "music"
    write_wav(music / "good.wav")
    write_wav(music / "huge.wav", scale=1e20)
    result = CliRunner().invoke(app, ["tag", str(music), "--model", checkpoint, "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = [strict_json(line) for line in result.stdout.splitlines() if line.strip()]
    assert [Path(row["path"]).name for row in rows] == ["good.wav"]
    assert "huge.wav" in result.stderr and "NaN or infinity" in result.stderr


def test_nan_model_outputs_fail_their_track_only(tmp_path, pipeline):
    """A model that makes NaN for one track's segments: that track fails, the others are saved."""
    music = tmp_path / "music"
    for i in range(4):
        write_wav(music / f"t{i}.wav", seconds=5, seed=i)
    run_batch = pipeline.embedder(EmbedOptions(blocks=2))
    poisoned = pipeline.mel(music / "t2.wav")[0][:, :200]

    def embed_or_nan(mel):
        out = run_batch(mel)
        out[[bool(torch.equal(segment, poisoned)) for segment in mel]] = np.nan
        return out

    batcher = pipeline.batcher(embed_or_nan, EmbedOptions(blocks=2), batch_size=3)
    results = {item.path.name: (result, reason) for item, result, reason in
               extraction.process(extraction.find_audio([music])[0], batcher, pipeline.decoder)}
    assert results["t2.wav"][0] is None and "outputs hold NaN or infinity (1 of" in results["t2.wav"][1]
    for name in ("t0.wav", "t1.wav", "t3.wav"):
        np.testing.assert_allclose(results[name][0].track, pipeline.embed(music / name, blocks=2), atol=1e-6)


def test_a_nan_segment_does_not_change_the_other_rows_of_its_batch(pipeline):
    """Why checking whole tracks is enough: rows of a batch are computed independently (no padding)."""
    torch.manual_seed(0)
    good = torch.randn(3, 96, 200)
    bad = good.clone()
    bad[1] = float("nan")
    run_batch = pipeline.embedder(EmbedOptions(blocks=2))
    clean, mixed = run_batch(good), run_batch(bad)
    assert np.isnan(mixed[1]).all()
    np.testing.assert_allclose(mixed[[0, 2]], clean[[0, 2]], atol=1e-6)


@pytest.mark.parametrize("fmt", ["npy", "npz", "parquet"])
def test_sinks_refuse_non_finite_results(tmp_path, fmt):
    sink = extraction.open_sink(tmp_path, fmt, per_segment=False)
    bad = TrackResult(np.array([[1.0, np.inf]], np.float32), np.zeros(1))
    with pytest.raises(NonFiniteOutputError):
        sink.add("a.wav", bad)
    sink.add("b.wav", TrackResult(np.ones((1, 2), np.float32), np.zeros(1)))
    sink.close()
    assert sink.done_keys(["a.wav", "b.wav"]) == {"b.wav"}


# -- 3. broken links ------------------------------------------------------------------------------
def test_dangling_links_and_link_loops_are_reported(tmp_path, audio_dir):
    music = tmp_path / "music"
    (music / "album").mkdir(parents=True)
    shutil.copy(audio_dir / "menu_0.5s_44k_stereo.wav", music / "album" / "ok.wav")
    (music / "album" / "gone.mp3").symlink_to(tmp_path / "unmounted" / "gone.mp3")
    (music / "loop-a.flac").symlink_to(music / "loop-b.flac")
    (music / "loop-b.flac").symlink_to(music / "loop-a.flac")
    (music / "old-album").symlink_to(tmp_path / "unmounted" / "old-album")  # a folder link, dangling
    (music / "cover.jpg").symlink_to(tmp_path / "unmounted" / "cover.jpg")  # not audio: not reported
    items, bad = extraction.find_audio([music])
    assert [item.key for item in items] == ["album/ok.wav"]
    reasons = {Path(path).name: reason for path, reason in bad}
    assert sorted(reasons) == ["gone.mp3", "loop-a.flac", "loop-b.flac", "old-album"]
    assert "dangling" in reasons["gone.mp3"] and "loop" in reasons["loop-a.flac"]
    out = tmp_path / "out"
    summary = extract(music, out, load_model(tiny_checkpoint(tmp_path / "m"), "cpu"), blocks=2, progress=False)
    assert (summary.succeeded, summary.failed) == (1, 4)
    assert sorted(Path(p).name for p in read_failures(out / "failures.tsv")) == sorted(reasons)


# -- 5. settings race -----------------------------------------------------------------------------
def _claim_in_process(output_dir, blocks, barrier, results, hard_links=True):
    import errno
    import json as json_module

    if not hard_links:  # e.g. a FAT or SMB output disk: the exclusive-create path

        def no_link(*args):
            raise OSError(errno.EPERM, "Operation not permitted")

        resume.os.link = no_link

    dumps = json_module.dumps

    def slow_dumps(*args, **kwargs):  # widens the window between "is it there?" and "write it"
        time.sleep(0.05)
        return dumps(*args, **kwargs)

    resume.json.dumps = slow_dumps
    settings = extraction.run_settings("tiny", 200, EmbeddingSpec(blocks=blocks), False, "npy")
    barrier.wait()
    try:
        extraction.check_settings(Path(output_dir), settings)
        results.put((blocks, "claimed"))
    except SettingsMismatchError:
        results.put((blocks, "refused"))


@pytest.mark.parametrize("same,hard_links", [(False, True), (True, True), (False, False), (True, False)])
def test_two_processes_claiming_one_folder_at_once(tmp_path, same, hard_links):
    """Different settings: exactly one wins, every time. Same settings (shards): both go on."""
    context = multiprocessing.get_context("fork")
    for attempt in range(5):
        out = tmp_path / f"out{attempt}"
        out.mkdir()
        barrier, results = context.Barrier(2), context.Queue()
        blocks = (2, 2) if same else (1, 2)
        processes = [context.Process(target=_claim_in_process, args=(str(out), b, barrier, results, hard_links)) for b in blocks]
        for process in processes:
            process.start()
        for process in processes:
            process.join(30)
        outcomes = sorted(results.get(timeout=5) for _ in processes)
        if same:
            assert outcomes == [(2, "claimed"), (2, "claimed")]
        else:
            assert sorted(o for _, o in outcomes) == ["claimed", "refused"], outcomes
            winner = next(b for b, o in outcomes if o == "claimed")
            assert json.loads((out / "maest-embed.json").read_text())["blocks"] == winner
        assert not list(out.glob("*.partial"))


# -- 6. weights fingerprint -----------------------------------------------------------------------
def test_new_weights_at_the_same_path_are_refused(tmp_path, audio_dir):
    clip = audio_dir / "menu_0.5s_44k_stereo.wav"
    model_dir = tiny_checkpoint(tmp_path / "model", seed=1)
    out = tmp_path / "out"
    extract([clip], out, str(model_dir), blocks=2, device="cpu", progress=False)
    assert json.loads((out / "maest-embed.json").read_text())["weights"] == load_model(str(model_dir), "cpu").fingerprint
    shutil.copytree(model_dir, tmp_path / "copy")  # a copy (new mtimes) is the same model
    shutil.rmtree(model_dir)
    shutil.copytree(tmp_path / "copy", model_dir)
    assert extract([clip], out, str(model_dir), blocks=2, device="cpu", progress=False).skipped == 1
    tiny_checkpoint(model_dir, seed=2)  # retrained, saved over the old weights
    with pytest.raises(SettingsMismatchError, match="other weights"):
        extract([clip], out, str(model_dir), blocks=2, device="cpu", progress=False)


def test_a_folder_from_before_fingerprints_is_accepted_and_then_guarded(tmp_path, audio_dir):
    clip = audio_dir / "menu_0.5s_44k_stereo.wav"
    model_dir = tiny_checkpoint(tmp_path / "model", seed=1)
    out = tmp_path / "out"
    extract([clip], out, str(model_dir), blocks=2, device="cpu", progress=False)
    settings = json.loads((out / "maest-embed.json").read_text())
    recorded = settings.pop("weights")
    (out / "maest-embed.json").write_text(json.dumps(settings))  # as written by an older maest
    extract([clip], out, str(model_dir), blocks=2, device="cpu", progress=False)
    assert json.loads((out / "maest-embed.json").read_text())["weights"] == recorded
    tiny_checkpoint(model_dir, seed=2)
    with pytest.raises(SettingsMismatchError, match="other weights"):
        extract([clip], out, str(model_dir), blocks=2, device="cpu", progress=False)


def test_fingerprint_sees_every_tensor_and_not_the_file_format(tmp_path):
    """A change of any single tensor shows; the same weights saved in another format do not."""
    from maest.checkpoints import load_checkpoint, save_native, save_official

    model = Maest(MaestConfig(depth=2, width=32, heads=2, num_classes=5, segment_frames=200))
    base = fp.weights_fingerprint(model)
    assert fp.weights_fingerprint(load_checkpoint(save_native(model, tmp_path / "native"))) == base
    assert fp.weights_fingerprint(load_checkpoint(save_official(model, tmp_path / "official.pt"))) == base
    state = model.state_dict()
    for name in ("head_dist.bias", "blocks.1.mlp.fc2.bias", "cls_token", "blocks.0.attn.qkv.weight"):
        changed = Maest(model.config)
        changed.load_state_dict({**state, name: state[name] + 1e-3})
        assert fp.weights_fingerprint(changed) != base, name


# -- 7. unwritable output, failures as they happen -------------------------------------------------
def test_an_immutable_output_folder_fails_before_the_first_track(tmp_path, audio_dir, pipeline):
    if shutil.which("chattr") is None:
        pytest.skip("chattr is not available")
    music, out = tmp_path / "music", tmp_path / "out"
    (music / "a").mkdir(parents=True)
    shutil.copy(audio_dir / "menu_0.5s_44k_stereo.wav", music / "a" / "first.wav")
    shutil.copy(audio_dir / "empty.wav", music / "a" / "bad.wav")
    extract([music], out, pipeline, blocks=2, progress=False)
    shutil.copy(audio_dir / "ambience_12s_16k_mono.wav", music / "a" / "second.wav")
    for locked in (out, out / "failures.tsv"):  # the folder, or only the failures file
        if subprocess.run(["chattr", "+i", str(locked)], capture_output=True).returncode != 0:
            pytest.skip("cannot make a folder immutable here")
        try:
            with pytest.raises(OutputNotWritableError, match="cannot write into the output folder"):
                extract([music], out, pipeline, blocks=2, progress=False)
            assert not (out / "a" / "second.npy").exists()  # out/a itself is writable: nothing was embedded
        finally:
            subprocess.run(["chattr", "-i", str(locked)], check=True)


def test_failures_are_on_disk_as_soon_as_they_happen(tmp_path, audio_dir, pipeline, monkeypatch):
    music, out = tmp_path / "music", tmp_path / "out"
    music.mkdir()
    shutil.copy(audio_dir / "empty.wav", music / "a.wav")
    shutil.copy(audio_dir / "menu_0.5s_44k_stereo.wav", music / "b.wav")
    seen = []
    original = sinks.FileSink.add

    def add_and_look(self, key, result):
        seen.append(read_failures(out / "failures.tsv"))
        raise KeyboardInterrupt  # the run dies at its first output

    monkeypatch.setattr(sinks.FileSink, "add", add_and_look)
    with pytest.raises(KeyboardInterrupt):
        extract([music], out, pipeline, blocks=2, progress=False)
    assert list(seen[0]) == [str(music / "a.wav")]
    monkeypatch.setattr(sinks.FileSink, "add", original)
    extract([music], out, pipeline, blocks=2, progress=False)
    assert (out / "failures.tsv").read_text().count("\n") == 1  # one line per path after the merge


# -- 8. parquet: bounded loss on a kill, resume across shard layouts -------------------------------
def test_parquet_parts_are_written_on_time_not_only_every_64_tracks(tmp_path, monkeypatch):
    clock = iter(range(0, 10_000, 20))
    monkeypatch.setattr(sinks.time, "monotonic", lambda: float(next(clock)))
    sink = extraction.open_sink(tmp_path, "parquet", per_segment=False)  # parts every 30 s or 64 tracks
    result = TrackResult(np.ones((1, 4), np.float32), np.zeros(1), 1.0)
    sink.add("a.wav", result)
    assert not (tmp_path / "embeddings.parts").exists()  # 20 s since the start: still buffered
    sink.add("b.wav", result)  # 40 s: written, so a kill now loses nothing
    assert len(list((tmp_path / "embeddings.parts").glob("*.parquet"))) == 1
    assert extraction.open_sink(tmp_path, "parquet", per_segment=False).done_keys() == {"a.wav", "b.wav"}


def test_an_unsharded_parquet_rerun_after_sharded_runs_embeds_nothing_again(tmp_path, audio_dir, pipeline):
    music, out = tmp_path / "music", tmp_path / "out"
    music.mkdir()
    for name in GOOD_CLIPS[:3]:
        shutil.copy(audio_dir / name, music / name)
    for index in range(2):
        extract([music], out, pipeline, blocks=2, output_format="parquet", shard=(index, 2), progress=False)
    summary = extract([music], out, pipeline, blocks=2, output_format="parquet", progress=False)
    assert (summary.succeeded, summary.skipped) == (0, 3)
    assert not (out / "embeddings.parquet").exists()


# -- 9. options checked first; SIGTERM cleans up -----------------------------------------------------
def test_bad_options_fail_before_the_output_folder_is_touched(tmp_path, audio_dir, pipeline):
    clip, out = audio_dir / "menu_0.5s_44k_stereo.wav", tmp_path / "out"
    for bad in [dict(batch_size=0), dict(workers=-1), dict(shard=(2, 2)), dict(output_format="csv")]:
        with pytest.raises(ValueError):
            extract([clip], out, pipeline, blocks=2, progress=False, **bad)
        assert not out.exists(), bad
    result = CliRunner().invoke(app, embed_args(clip, out, "no-such-model", "--batch-size", "0"))
    assert result.exit_code != 0 and not out.exists()


STUCK_RUN = """
import pathlib, sys, time
from maest import streaming
file_mel = streaming.file_mel
def stuck_file_mel(path, *args, **kwargs):
    if pathlib.Path(path).name == "zz-stuck.wav":  # the last track: hold the run here until SIGTERM
        pathlib.Path(sys.argv[1]).touch()
        time.sleep(300)
    return file_mel(path, *args, **kwargs)
streaming.file_mel = stuck_file_mel
from maest.cli import app
app(sys.argv[2:], prog_name="maest")
"""


def test_sigterm_flushes_parquet_and_failures_and_leaves_no_partial_files(tmp_path, audio_dir, checkpoint):
    music, out, stuck = tmp_path / "music", tmp_path / "out", tmp_path / "stuck"
    music.mkdir()
    shutil.copy(audio_dir / "empty.wav", music / "a-bad.wav")
    for i, name in enumerate(["t0.wav", "t1.wav", "t2.wav", "zz-stuck.wav"]):
        write_wav(music / name, seed=i)
    command = [sys.executable, "-c", STUCK_RUN, str(stuck),
               *embed_args(music, out, checkpoint, "--format", "parquet", "--batch-size", "1", "--decode-workers", "0")]
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""), "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not stuck.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert stuck.exists(), process.communicate()
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143, stderr
    keys = set(extraction.open_sink(out, "parquet", per_segment=False).done_keys())
    assert keys == {"t0.wav", "t1.wav", "t2.wav"}  # the buffered tracks were flushed as a part
    assert list(read_failures(out / "failures.tsv")) == [str(music / "a-bad.wav")]
    assert not list(out.rglob("*.partial"))
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


def test_sigterm_handler_is_restored_after_a_run(tmp_path, audio_dir, pipeline):
    extract([audio_dir / "menu_0.5s_44k_stereo.wav"], tmp_path / "out", pipeline, blocks=2, progress=False)
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


# -- 10. overlapping inputs, subset reruns -------------------------------------------------------------
def test_overlapping_inputs_embed_each_file_once(tmp_path, pipeline):
    music = tmp_path / "in"
    write_wav(music / "sub" / "one.wav")
    write_wav(music / "sub" / "deeper" / "two.wav", seed=1)
    items, _ = extraction.find_audio([music / "sub", music / "sub" / "deeper", music / "sub" / "one.wav"])
    assert [item.key for item in items] == ["deeper/two.wav", "one.wav"]
    out = tmp_path / "out"
    summary = extract([music / "sub", music / "sub" / "deeper"], out, pipeline, blocks=2, progress=False)
    assert summary.succeeded == 2
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.npy")) == ["deeper/two.npy", "one.npy"]


def test_an_extension_subset_rerun_keeps_the_other_failures(tmp_path, audio_dir, checkpoint):
    music, out = tmp_path / "music", tmp_path / "out"
    music.mkdir()
    for name in ["empty.wav", "not_audio.mp3", "menu_0.5s_44k_stereo.wav"]:
        shutil.copy(audio_dir / name, music / name)
    assert CliRunner().invoke(app, embed_args(music, out, checkpoint)).exit_code == 0
    assert CliRunner().invoke(app, embed_args(music, out, checkpoint, "--ext", "wav")).exit_code == 0
    assert sorted(Path(p).name for p in read_failures(out / "failures.tsv")) == ["empty.wav", "not_audio.mp3"]


def test_a_stopped_run_keeps_the_failures_of_tracks_it_never_reached(tmp_path, audio_dir, pipeline):
    music, out = tmp_path / "music", tmp_path / "out"
    write_wav(music / "a.wav")
    shutil.copy(audio_dir / "not_audio.mp3", music / "zz-bad.mp3")
    extract([music], out, pipeline, blocks=2, progress=False)
    assert [Path(p).name for p in read_failures(out / "failures.tsv")] == ["zz-bad.mp3"]
    (out / "a.npy").unlink()  # a.wav is embedded again, then the run stops before zz-bad.mp3

    from maest.extraction.engines import LocalEngine

    class StopsAfterOne(LocalEngine):
        def run(self, items, pipeline, mode, options, batch_size):
            results = super().run(items, pipeline, mode, options, batch_size)
            yield next(r for r in results if r[2] is None)  # a.wav written; zz-bad.mp3 never reported
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        extract([music], out, pipeline, blocks=2, progress=False, engine=StopsAfterOne())
    assert (out / "a.npy").is_file()
    assert [Path(p).name for p in read_failures(out / "failures.tsv")] == ["zz-bad.mp3"]


# -- 11, 12. careless calls -----------------------------------------------------------------------------
def test_a_single_path_is_one_input(tmp_path, pipeline, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_wav(tmp_path / "music" / "a.wav")
    summary = extract("music", "out", pipeline, blocks=2, progress=False)
    assert (summary.succeeded, summary.failed) == (1, 0) and (tmp_path / "out" / "a.npy").exists()
    assert [(Path(p).name, r) for p, _, r in extraction.tag_files(Path("music"), pipeline)] == [("a.wav", None)]


def test_library_calls_validate_their_numbers(tmp_path, pipeline, checkpoint):
    with pytest.raises(ValueError, match="batch_size"):
        extraction.tag_files([tmp_path], pipeline, batch_size=0)  # at the call, not at the first track
    with pytest.raises(ValueError, match="workers"):
        extraction.tag_files([tmp_path], pipeline, workers=-1)
    with pytest.raises(ValueError, match="top_k"):
        top_labels(np.ones(5), LABELS, 0)
    with pytest.raises(ValueError, match="top_k"):
        pipeline.tag(np.zeros(16000, np.float32), top_k=-1)
    with pytest.raises(ValueError, match="batch_size"):
        load_model(checkpoint, "cpu", batch_size=0)
    assert len(top_labels(np.ones(5), LABELS, None)) == 5


# -- everything at once ----------------------------------------------------------------------------------
def test_a_hostile_collection_is_reported_in_full_and_only_finite_results_are_written(tmp_path, audio_dir, checkpoint):
    music, out = tmp_path / "music", tmp_path / "out"
    (music / "sub" / "deeper").mkdir(parents=True)
    for i, name in enumerate(GOOD_CLIPS + BAD_CLIPS):
        shutil.copy(audio_dir / name, (music / "sub" / "deeper" if i % 2 else music / "sub") / name)
    write_wav(music / "sub" / "huge.wav", scale=1e20)
    (music / "sub" / "gone.ogg").symlink_to(tmp_path / "nowhere.ogg")
    (music / "sub" / "deeper" / "loop.mp3").symlink_to(music / "sub" / "deeper" / "loop.mp3")
    inputs = [music, music / "sub", music / "sub" / "deeper", tmp_path / "missing.wav"]
    result = CliRunner().invoke(app, embed_args(inputs, out, checkpoint, "--decode-workers", "2", "--batch-size", "3"))
    assert result.exit_code == 0, result.output
    bad = {"huge.wav", "gone.ogg", "loop.mp3", "missing.wav", *BAD_CLIPS}
    assert f"{len(GOOD_CLIPS)} succeeded, {len(bad)} failed, 0 skipped" in result.stdout
    assert sorted(Path(p).name for p in read_failures(out / "failures.tsv")) == sorted(bad)
    outputs = sorted(out.rglob("*.npy"))
    assert sorted(p.stem for p in outputs) == sorted(Path(n).stem for n in GOOD_CLIPS)
    assert all(p.relative_to(out).parts[0] == "sub" for p in outputs)  # keys of the first input only
    assert all(np.isfinite(np.load(p)).all() and np.load(p).shape == (96,) for p in outputs)
    assert not list(out.rglob("*.partial")) and not list(out.glob(".maest-write-probe*"))
