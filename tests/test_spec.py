"""One EmbeddingSpec: every field is recorded, and a resume, a cache or a head made with another is refused by name."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from typer.testing import CliRunner

from maest.checkpoints import save_native
from maest.cli import app
from maest.configs import MaestConfig
from maest.evaluate.features import FeatureCacheError, extract_features
from maest.extraction import SettingsMismatchError, extract
from maest.extraction.embed_cache import embed_tracks
from maest.heads import tag_with_head
from maest.heads.head import head_from_parts
from maest.heads.tag import check_head_options
from maest.heads.spec import HeadMismatchError, spec_for
from maest.inference import load_model
from maest.model import Maest
from maest.spec import EmbeddingSpec, SpecError

CHANGES = {  # field -> a value other than the default spec's
    "blocks": 1, "tokens": ("cls",), "patchout_time": 2, "patchout_freq": (0,), "overlap": 0.25, "crop": "center",
    "segments": "original", "precision": "bf16", "resampler": "soxr",
}


def save_tiny(path: Path, seed: int) -> str:
    torch.manual_seed(seed)
    config = MaestConfig(depth=2, width=32, heads=2, num_classes=3, segment_frames=64, name="tiny",
                         train_patchout_time=0, train_patchout_freq=0)
    return str(save_native(Maest(config), path))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Two checkpoints (other weights, same name), and a folder of 22.05 kHz tones (the resampler matters)."""
    root = tmp_path_factory.mktemp("spec")
    music = root / "music"
    music.mkdir()
    t = np.arange(int(22050 * 1.5)) / 22050
    for i, hz in enumerate((330.0, 1200.0)):
        sf.write(music / f"t{i}.wav", (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32), 22050)
    return {"model": save_tiny(root / "tiny", 0), "other": save_tiny(root / "other", 1), "music": music, "root": root}


@pytest.fixture(scope="module")
def pipeline(tiny):
    return load_model(tiny["model"], device="cpu")


def options(**changes):
    """extract() keywords of the default spec with ``changes`` (blocks 2: the tiny model's depth)."""
    return {"blocks": 2, "progress": False, **changes}


@pytest.mark.parametrize("field", sorted(CHANGES))
def test_differences_name_the_field_and_the_values(field):
    base = EmbeddingSpec()
    other = base.replace(**{field: CHANGES[field]})
    assert base.differences(other) == [f"{field} ({_show(getattr(base, field))} vs {_show(CHANGES[field])})"]
    assert base.key() != other.key()  # cache folders of the two never meet
    recorded = EmbeddingSpec.from_dict(json.loads(json.dumps(other.to_dict())))
    assert recorded == other  # the dict every file records gives the spec back


def _show(value):
    if isinstance(value, tuple):
        return ",".join(map(str, value)) or "none"
    return str(value)


def test_bad_values_fail_once_when_the_spec_is_built():
    with pytest.raises(SpecError, match="resampler"):
        EmbeddingSpec(resampler="sinc")
    with pytest.raises(SpecError, match="precision"):
        EmbeddingSpec(precision="int8")
    with pytest.raises(ValueError, match="overlap|crop"):
        EmbeddingSpec(segments="original", crop="center")


@pytest.mark.parametrize("field", sorted(CHANGES))
def test_resume_with_another_spec_is_refused_naming_the_field(tiny, tmp_path, field):
    out = tmp_path / "out"
    first = extract(tiny["music"], out, tiny["model"], **options(device="cpu"))
    assert first.succeeded == 2
    settings = json.loads((out / "maest-embed.json").read_text())
    assert settings["resampler"] == "essentia" and settings["precision"] == "fp32" and settings["family"] == "maest"
    change = {"blocks": CHANGES["blocks"]} if field == "blocks" else {field: CHANGES[field]}
    with pytest.raises(SettingsMismatchError, match=rf"differs in: {field} \("):
        extract(tiny["music"], out, tiny["model"], **options(device="cpu", **change))
    # the same spec resumes
    assert extract(tiny["music"], out, tiny["model"], **options(device="cpu")).skipped == 2


def test_resume_with_other_weights_is_refused(tiny, tmp_path):
    """New weights saved at the same checkpoint path: the fingerprint tells them apart."""
    out = tmp_path / "out"
    checkpoint = save_tiny(tmp_path / "ckpt", 0)
    extract(tiny["music"], out, checkpoint, **options(device="cpu"))
    assert save_tiny(tmp_path / "ckpt", 1) == checkpoint
    with pytest.raises(SettingsMismatchError, match=r"differs in: weights \("):
        extract(tiny["music"], out, checkpoint, **options(device="cpu"))


def test_folder_from_before_the_resampler_is_accepted_and_then_guarded(tiny, tmp_path, pipeline):
    out = tmp_path / "out"
    extract(tiny["music"], out, pipeline, **options())
    settings = json.loads((out / "maest-embed.json").read_text())
    del settings["resampler"], settings["family"]
    (out / "maest-embed.json").write_text(json.dumps(settings))
    assert extract(tiny["music"], out, pipeline, **options()).skipped == 2  # then it was essentia
    assert json.loads((out / "maest-embed.json").read_text())["resampler"] == "essentia"
    with pytest.raises(SettingsMismatchError, match=r"resampler \(essentia vs soxr\)"):
        extract(tiny["music"], out, pipeline, **options(resampler="soxr"))


def test_eval_and_head_cache_refuses_another_spec(tiny, tmp_path, pipeline):
    """The cache eval and head fit embed into (embed_tracks) keeps its spec."""
    rels = ["t0.wav", "t1.wav"]
    spec = pipeline.spec(blocks=2)
    assert embed_tracks(rels, tiny["music"], pipeline, tmp_path / "cache", spec, progress=False) == {}
    for field in ("resampler", "segments", "overlap"):
        with pytest.raises(SettingsMismatchError, match=rf"differs in: {field}"):
            embed_tracks(rels, tiny["music"], pipeline, tmp_path / "cache", spec.replace(**{field: CHANGES[field]}),
                         progress=False)
    bf16 = load_model(tiny["model"], "cpu", precision="bf16")
    with pytest.raises(SettingsMismatchError, match=r"precision \(fp32 vs bf16\)"):
        embed_tracks(rels, tiny["music"], bf16, tmp_path / "cache", bf16.spec(blocks=2), progress=False)


def test_experiment_feature_cache_refuses_another_spec(tiny, tmp_path, pipeline):
    rels = ["t0.wav", "t1.wav"]
    extract_features(pipeline, rels, tiny["music"], tmp_path / "f", [1, 2], progress=False)
    stored = json.loads((tmp_path / "f" / "features.json").read_text())
    assert stored["embedding"]["weights"] == pipeline.fingerprint and stored["embedding"]["precision"] == "fp32"
    with pytest.raises(FeatureCacheError, match=r"resampler \(essentia vs soxr\)"):
        extract_features(pipeline, rels, tiny["music"], tmp_path / "f", [1, 2], progress=False, resampler="soxr")
    with pytest.raises(FeatureCacheError, match=r"precision \(fp32 vs bf16\)"):
        extract_features(load_model(tiny["model"], "cpu", precision="bf16"), rels, tiny["music"], tmp_path / "f",
                         [1, 2], progress=False)
    with pytest.raises(FeatureCacheError, match="differs in: weights"):
        extract_features(load_model(tiny["other"], "cpu"), rels, tiny["music"], tmp_path / "f", [1, 2], progress=False)
    with pytest.raises(FeatureCacheError, match=r"segments \(maest vs original\)"):
        extract_features(pipeline, rels, tiny["music"], tmp_path / "f", [1, 2], progress=False, segments="original")


def test_a_non_finite_feature_never_enters_the_cache(tiny, tmp_path, pipeline):
    music = tmp_path / "music"
    music.mkdir()
    t = np.arange(16000) / 16000
    sf.write(music / "ok.wav", (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 16000)
    sf.write(music / "huge.wav", (1e20 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 16000, subtype="FLOAT")
    features, failures = extract_features(pipeline, ["ok.wav", "huge.wav"], music, tmp_path / "f", [2], progress=False)
    assert list(failures) == ["huge.wav"] and "NaN or infinity" in failures["huge.wav"]
    assert features.file_for("ok.wav").is_file() and not features.file_for("huge.wav").exists()


def test_the_resampler_reaches_decode_workers(tiny, tmp_path, pipeline):
    soxr = extract(tiny["music"], tmp_path / "soxr", pipeline, **options(resampler="soxr", workers=1))
    assert soxr.succeeded == 2
    saved = np.load(tmp_path / "soxr" / "t0.npy")
    np.testing.assert_allclose(saved, pipeline.embed(tiny["music"] / "t0.wav", blocks=2, resampler="soxr"), atol=1e-6)
    assert not np.allclose(saved, pipeline.embed(tiny["music"] / "t0.wav", blocks=2), atol=1e-6)


@pytest.fixture(scope="module")
def head_dir(tiny, pipeline):
    """A logistic head on the tiny model's block-2 embeddings (weights made up: the spec is what is tested)."""
    spec = spec_for(pipeline, pipeline.spec(blocks=2), source=tiny["model"])
    rng = np.random.default_rng(0)
    head = head_from_parts(["a", "b"], "multi", spec, "logistic", np.zeros(spec.dim), np.ones(spec.dim),
                           {"weight": rng.normal(size=(2, spec.dim)), "bias": np.zeros(2)}, np.full(2, 0.5), {}, {})
    return head.save(tiny["root"] / "head")


def test_head_json_records_the_spec_and_refuses_another_by_field(head_dir, pipeline):
    from maest.heads import load_head

    recorded = json.loads((head_dir / "head.json").read_text())["embedding"]
    assert {k: recorded[k] for k in ("weights", "family", "precision", "resampler", "segments")} == {
        "weights": pipeline.fingerprint, "family": "maest", "precision": "fp32", "resampler": "essentia",
        "segments": "maest"}
    head = load_head(head_dir)
    for field in ("resampler", "precision", "overlap", "tokens"):
        with pytest.raises(HeadMismatchError, match=rf"differs in: {field} \("):
            head.check_compatible(head.spec.embedding_spec().replace(**{field: CHANGES[field]}))


@pytest.mark.parametrize("option,value", [("overlap", 0.25), ("crop", "center"), ("segments", "original")])
def test_tag_with_a_head_refuses_segment_options_in_the_api_and_the_cli(head_dir, tiny, pipeline, option, value):
    clip = tiny["music"] / "t0.wav"
    with pytest.raises(HeadMismatchError, match="do not apply"):
        check_head_options(**{option: value})  # what tag_with_head's callers (CLI, library, app) run first
    result = CliRunner().invoke(app, ["tag", str(clip), "--head", str(head_dir), "--device", "cpu",
                                      f"--{option}", str(value)])
    assert result.exit_code == 1 and "do not apply" in result.output


def test_tag_with_a_head_honours_its_spec_and_refuses_another_resampler_or_precision(head_dir, tiny, pipeline):
    clip = tiny["music"] / "t0.wav"
    api = tag_with_head(pipeline, clip, head_dir)
    cli = CliRunner().invoke(app, ["tag", str(clip), "--head", str(head_dir), "--device", "cpu", "--format", "json"])
    assert cli.exit_code == 0, cli.output
    line = json.loads(next(text for text in cli.output.splitlines() if text.startswith("{")))  # stderr: summary
    assert [(t["label"], round(t["probability"], 6), t["on"]) for t in line["tags"]] == [
        (label, round(p, 6), on) for label, p, on in api]
    assert tag_with_head(pipeline, clip, head_dir, resampler="essentia") == api
    with pytest.raises(HeadMismatchError, match=r"resampler \(essentia vs soxr\)"):
        tag_with_head(pipeline, clip, head_dir, resampler="soxr")
    for flags, field in ((["--resampler", "soxr"], "resampler"), (["--precision", "bf16"], "precision")):
        result = CliRunner().invoke(app, ["tag", str(clip), "--head", str(head_dir), "--device", "cpu", *flags])
        assert result.exit_code == 1 and f"{field} (" in result.output, result.output
