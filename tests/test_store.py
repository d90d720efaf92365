"""fp16 mel store: contents equal the frontend's, crops, failures, resume after interruption, stats."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from maest import audio, decode
from maest.data import store
from maest.data.store import MelStore, StoreError, build_store, compute_stats
from maest.frontend import MelFrontend, num_frames

from conftest import BAD_CLIPS, GOOD_CLIPS


def _tone(seconds: float, rate: int, seed: int, channels: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.3 * np.sin(2 * np.pi * (220 + 50 * seed) * t) + 0.05 * rng.standard_normal(t.size)
    return np.stack([wave] * channels, axis=1) if channels > 1 else wave


@pytest.fixture(scope="module")
def audio_files(tmp_path_factory) -> tuple[Path, list[str]]:
    root = tmp_path_factory.mktemp("audio")
    specs = [("a/short.wav", 5.0, 16000, 1), ("a/long.wav", 40.0, 16000, 1), ("b/stereo44.wav", 12.0, 44100, 2),
             ("b/mid.flac", 31.0, 22050, 1), ("c/tiny.wav", 0.3, 16000, 1)]
    keys = []
    for seed, (key, seconds, rate, channels) in enumerate(specs):
        (root / key).parent.mkdir(parents=True, exist_ok=True)
        sf.write(root / key, _tone(seconds, rate, seed, channels), rate)
        keys.append(key)
    (root / "c/broken.wav").write_bytes(b"RIFF not really a wav file")
    keys.insert(2, "c/broken.wav")
    keys.append("c/missing.wav")
    return root, keys


def _expected(path: Path, keep_seconds: float) -> np.ndarray:
    offset, duration = store.centre_window(audio.info(path).duration, keep_seconds)
    samples = audio.load(path, 16000, offset=offset, duration=duration)
    with torch.no_grad():
        return MelFrontend(normalize=False)(torch.from_numpy(samples)[None])[0].numpy()


def test_store_matches_frontend_and_reports_failures(audio_files, tmp_path):
    root, keys = audio_files
    report = build_store(keys, tmp_path / "store", audio_root=root, workers=2, shard_size_mb=0.5, progress=False)
    assert report.added == 5 and report.failed == 2 and report.skipped == 0
    assert set(report.failures) == {"c/broken.wav", "c/missing.wav"} and "no such file" in report.failures["c/missing.wav"]
    mels = MelStore(tmp_path / "store")
    assert mels.keys == [k for k in keys if k not in report.failures]  # input order kept
    assert mels.failures == report.failures
    assert mels.frames(mels.index_of("a/long.wav")) == num_frames(30 * 16000)  # centre 30 s only
    for key in mels.keys:
        stored = mels.read(mels.index_of(key))
        assert stored.dtype == np.float16 and stored.shape[0] == 96
        expected = _expected(root / key, 30.0)
        assert stored.shape == expected.shape
        np.testing.assert_allclose(stored.astype(np.float32), expected, rtol=1e-3, atol=2e-3)
    meta = json.loads((tmp_path / "store" / "store.json").read_text())
    assert meta["crop"] == "center30" and meta["stats"] is None


def test_full_crop_keeps_whole_track(audio_files, tmp_path):
    root, _ = audio_files
    build_store(["a/long.wav"], tmp_path / "full", audio_root=root, crop="full", progress=False)
    mels = MelStore(tmp_path / "full")
    assert mels.frames(0) == num_frames(40 * 16000)
    np.testing.assert_allclose(mels.read(0).astype(np.float32), _expected(root / "a/long.wav", 300.0), rtol=1e-3, atol=2e-3)
    with pytest.raises(StoreError, match="crop"):
        build_store(["a/long.wav"], tmp_path / "full", audio_root=root, crop="center30", progress=False)


def test_reads_and_crops(audio_files, tmp_path):
    root, keys = audio_files
    build_store(["a/short.wav", "a/long.wav"], tmp_path / "s", audio_root=root, progress=False)
    mels = MelStore(tmp_path / "s")
    long = mels.index_of("a/long.wav")
    whole = mels.read(long)
    np.testing.assert_array_equal(mels.read(long, 100, 50), whole[:, 100:150])
    assert mels.read(long, mels.frames(long) - 10, 50).shape == (96, 10)  # clipped at the end
    rng = np.random.default_rng(0)
    crops = [mels.crop(long, 625, rng) for _ in range(5)]
    assert all(c.shape == (96, 625) for c in crops)
    starts = set()
    for c in crops:
        matches = [s for s in range(whole.shape[1] - 624) if np.array_equal(whole[:, s : s + 625], c)]
        assert matches
        starts.add(matches[0])
    assert len(starts) > 1
    short = mels.crop(mels.index_of("a/short.wav"), 1875, rng)
    assert short.shape == (96, 1875) and np.all(short[:, mels.frames(0):] == 0)  # silence padding
    with pytest.raises(StoreError, match="outside"):
        mels.read(long, mels.frames(long))
    with pytest.raises(KeyError, match="failures.tsv"):
        mels.index_of("nope.wav")


def test_resume_after_interruption_is_complete_and_idempotent(audio_files, tmp_path, monkeypatch):
    root, keys = audio_files
    target = tmp_path / "resume"
    original = decode.DecodeJobs.__getitem__
    calls = {"n": 0}

    def interrupted(self, i):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt  # the run is killed while decoding the fourth file
        return original(self, i)

    monkeypatch.setattr(decode.DecodeJobs, "__getitem__", interrupted)
    with pytest.raises(KeyboardInterrupt):
        build_store(keys, target, audio_root=root, workers=0, shard_size_mb=1e-6, progress=False)
    monkeypatch.setattr(decode.DecodeJobs, "__getitem__", original)
    finished = MelStore(target)
    assert 0 < len(finished) < 5
    done = len(finished) + len(finished.failures)  # a failure still in the unfinished shard is retried
    # Leftovers of a kill in the middle of writing a shard: a temp file and a data file without index.
    (target / "shards" / "00009.npy.partial").write_bytes(b"partial")
    next_id = max(int(p.stem) for p in (target / "shards").glob("*.tsv") if p.stem.isdigit()) + 1
    (target / "shards" / f"{next_id:05d}.npy").write_bytes(b"orphan data, index never written")

    report = build_store(keys, target, audio_root=root, workers=0, shard_size_mb=1e-6, progress=False)
    assert report.skipped == done and report.added + report.failed == len(keys) - done
    assert not list((target / "shards").glob("*.partial"))
    resumed = MelStore(target)
    assert sorted(resumed.keys) == sorted(k for k in keys if k not in ("c/broken.wav", "c/missing.wav"))
    assert len(set(resumed.keys)) == len(resumed.keys)
    assert set(resumed.failures) == {"c/broken.wav", "c/missing.wav"}
    for key in resumed.keys:
        np.testing.assert_allclose(resumed.read(resumed.index_of(key)).astype(np.float32), _expected(root / key, 30.0), rtol=1e-3, atol=2e-3)

    again = build_store(keys, target, audio_root=root, workers=0, progress=False)
    assert (again.added, again.failed, again.shards_written, again.skipped) == (0, 0, 0, len(keys))
    assert MelStore(target).keys == resumed.keys


def test_stats_equal_numpy(audio_files, tmp_path):
    root, keys = audio_files
    good = [k for k in keys if k not in ("c/broken.wav", "c/missing.wav")]
    build_store(good, tmp_path / "st", audio_root=root, shard_size_mb=0.3, progress=False)
    mels = MelStore(tmp_path / "st")
    train = good[1:4]
    stats = compute_stats(mels, train, progress=False)
    values = np.concatenate([mels.read(mels.index_of(k)).astype(np.float64).ravel() for k in train])
    assert stats["mean"] == pytest.approx(values.mean(), rel=1e-12)
    assert stats["std"] == pytest.approx(values.std(), rel=1e-10)
    assert stats["tracks"] == 3 and stats["values"] == values.size
    assert MelStore(tmp_path / "st").stats == stats


def test_shared_clips_with_bad_files(audio_dir, tmp_path):
    report = build_store(GOOD_CLIPS + BAD_CLIPS, tmp_path / "shared", audio_root=audio_dir, progress=False)
    assert report.added == len(GOOD_CLIPS) and set(report.failures) == set(BAD_CLIPS)
    assert "truncated" in report.failures["truncated_techbattle.ogg"]
    assert report.audio_seconds == pytest.approx(12 + 20 + 0.5 + 30 + 8, abs=0.5)


def test_not_a_store(tmp_path):
    with pytest.raises(StoreError, match="maest prepare"):
        MelStore(tmp_path)


def test_cli_prepare(audio_files, tmp_path):
    from typer.testing import CliRunner

    from maest.cli import app

    root, _ = audio_files
    (tmp_path / "train.tsv").write_text("a/short.wav\tRock---Punk\nb/mid.flac\tRock---Punk\nc/gone.wav\tRock---Punk\n")
    (tmp_path / "validation.tsv").write_text("a/long.wav\tRock---Punk\n")
    result = CliRunner().invoke(app, ["prepare", str(tmp_path / "cli-store"), "--list", str(tmp_path / "train.tsv"),
                                      "--list", str(tmp_path / "validation.tsv"), "--audio-root", str(root),
                                      "--workers", "0", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "added 3 tracks" in result.output and "1 failed" in result.output
    mels = MelStore(tmp_path / "cli-store")
    assert mels.stats["tracks"] == 2  # the train split only


def test_retry_failed_after_fixing_a_file(audio_files, tmp_path):
    root, _ = audio_files
    fixable = tmp_path / "audio"
    fixable.mkdir()
    (fixable / "later.wav").write_bytes(b"")
    target = tmp_path / "retry"
    assert build_store(["later.wav"], target, audio_root=fixable, progress=False).failed == 1
    sf.write(fixable / "later.wav", _tone(3.0, 16000, 0), 16000)
    assert build_store(["later.wav"], target, audio_root=fixable, progress=False).skipped == 1  # failures are final
    report = build_store(["later.wav"], target, audio_root=fixable, progress=False, retry_failed=True)
    assert report.added == 1
    mels = MelStore(target)
    assert mels.keys == ["later.wav"] and mels.failures == {}
    assert (target / "failures.tsv").read_text() == ""
