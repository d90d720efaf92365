"""``segments="original"`` through the whole pipeline: real audio, the model, extraction settings, the CLI."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from maest import audio as audio_io
from maest import frontend
from maest.checkpoints import save_native
from maest.cli import app
from maest.configs import MaestConfig
from maest.extraction import SettingsMismatchError, extract
from maest.inference import EmbedOptions, load_model
from maest.model import Maest, pool_tokens
from test_segments_original import reference_exhaustive

pytestmark = pytest.mark.usefixtures("one_thread")


def pipeline_for(tmp_path, segment_frames: int, seed: int = 0):
    torch.manual_seed(seed)
    config = MaestConfig(depth=2, width=16, heads=2, num_classes=3, segment_frames=segment_frames,
                         train_patchout_time=0, train_patchout_freq=0, name=f"tiny-{segment_frames}")
    return load_model(save_native(Maest(config), tmp_path / f"model-{segment_frames}"), device="cpu")


def reference_embeddings(pipeline, waveform: np.ndarray, blocks: int) -> np.ndarray:
    """The original's segments of the raw mel of ``waveform``, through the model: ``(segments, 3 * width)``."""
    raw = frontend.MelFrontend(normalize=False)(torch.from_numpy(waveform)[None])[0].numpy().T  # (frames, 96)
    segments = torch.from_numpy(np.stack(reference_exhaustive(raw, pipeline.config.segment_frames)))
    with torch.inference_mode():
        return pool_tokens(pipeline.model.forward_features(segments, blocks)).numpy()


def test_mtt_length_clip_under_a_30s_model(tmp_path, audio_dir):
    """29.1 s of real music under a 30 s model: one zero-padded 1875-frame segment, as the original ran it."""
    pipeline = pipeline_for(tmp_path, 1875)
    waveform = audio_io.load(audio_dir / "techbattle_30s_44k_stereo.ogg")[: int(29.1 * frontend.SAMPLE_RATE)]
    ours, starts = pipeline.embed(waveform, blocks=2, segments="original", per_segment=True)
    reference = reference_embeddings(pipeline, waveform, 2)
    assert ours.shape == reference.shape == (1, 48) and list(starts) == [0.0]
    np.testing.assert_allclose(ours, reference, rtol=1e-4, atol=1e-5)
    # maest's rule runs the 1820 frames at their own length: another embedding.
    maest = pipeline.embed(waveform, blocks=2, per_segment=True)[0]
    assert maest.shape == (1, 48) and np.abs(maest - ours).max() > 1e-3


def test_real_track_with_a_partial_last_segment(tmp_path, audio_dir):
    """12 s (751 frames) under a 64-frame model: 24 segments, the last reading 15 frames, padded."""
    pipeline = pipeline_for(tmp_path, 64)
    waveform = audio_io.load(audio_dir / "ambience_12s_16k_mono.wav")
    ours, starts = pipeline.embed(waveform, blocks=1, segments="original", per_segment=True, batch_size=5)
    reference = reference_embeddings(pipeline, waveform, 1)
    assert ours.shape == reference.shape == (24, 48)
    np.testing.assert_allclose(starts, np.arange(24) * 32 * 0.016)
    np.testing.assert_allclose(ours, reference, rtol=1e-4, atol=1e-5)
    track = pipeline.embed(waveform, blocks=1, segments="original")
    np.testing.assert_allclose(track, reference.mean(axis=0), rtol=1e-4, atol=1e-5)
    # Tagging takes the same segments.
    probabilities = pipeline.predict(waveform, segments="original")
    assert probabilities.shape == (3,) and np.isfinite(probabilities).all()


def test_options_default_to_maest_and_refuse_what_the_original_rule_lacks():
    assert EmbedOptions().segments == "maest"
    assert EmbedOptions(7, ("cls",), 1, (), 0.5, None, "original").segments == "original"
    with pytest.raises(ValueError, match="crop"):
        EmbedOptions(segments="original", crop="center")
    with pytest.raises(ValueError, match="two modes"):
        EmbedOptions(segments="original", overlap=0.75)
    with pytest.raises(ValueError, match="segments must be one of"):
        EmbedOptions(segments="paper")


def test_extract_records_the_rule_and_never_mixes_rules(tmp_path, audio_dir):
    pipeline = pipeline_for(tmp_path, 64)
    music = tmp_path / "music"
    music.mkdir()
    shutil.copy(audio_dir / "temple_8s_48k_stereo.flac", music)
    out = tmp_path / "out"
    extract([music], out, pipeline, blocks=1, progress=False)
    settings_file = out / "maest-embed.json"
    assert json.loads(settings_file.read_text())["segments"] == "maest"
    with pytest.raises(SettingsMismatchError, match=r"segments \(maest vs original\)"):
        extract([music], out, pipeline, blocks=1, segments="original", progress=False)
    # A folder written before the rule was an option holds maest-rule outputs: reruns with the default resume.
    settings = json.loads(settings_file.read_text())
    del settings["segments"]
    settings_file.write_text(json.dumps(settings))
    assert extract([music], out, pipeline, blocks=1, progress=False).skipped == 1
    with pytest.raises(SettingsMismatchError):
        extract([music], out, pipeline, blocks=1, segments="original", progress=False)
    original = extract([music], tmp_path / "original", pipeline, blocks=1, segments="original", progress=False)
    assert original.succeeded == 1
    embedding = np.load(tmp_path / "original" / "temple_8s_48k_stereo.npy")
    waveform = audio_io.load(audio_dir / "temple_8s_48k_stereo.flac")
    np.testing.assert_allclose(embedding, pipeline.embed(waveform, blocks=1, segments="original"), rtol=1e-4, atol=1e-5)


def test_cli_segments_option(tmp_path, audio_dir):
    pipeline = pipeline_for(tmp_path, 64)
    model = str(tmp_path / "model-64")
    clip = audio_dir / "ambience_12s_16k_mono.wav"
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["embed", str(clip), "-o", str(out), "--model", model, "--blocks", "1",
                                      "--segments", "original", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "maest-embed.json").read_text())["segments"] == "original"
    waveform = audio_io.load(clip)
    np.testing.assert_allclose(np.load(out / "ambience_12s_16k_mono.npy"),
                               pipeline.embed(waveform, blocks=1, segments="original"), rtol=1e-4, atol=1e-5)
    tagged = CliRunner().invoke(app, ["tag", str(clip), "--model", model, "--segments", "original", "--format", "json"])
    assert tagged.exit_code == 0, tagged.output
    top = json.loads(tagged.output.splitlines()[0])["tags"][0]["probability"]
    assert abs(top - float(pipeline.predict(waveform, segments="original").max())) < 1e-5
    bad = CliRunner().invoke(app, ["tag", str(clip), "--model", model, "--segments", "paper"])
    assert bad.exit_code == 2 and "must be one of maest, original" in bad.output
    mixed = CliRunner().invoke(app, ["tag", str(clip), "--model", model, "--segments", "original", "--crop", "center"])
    assert mixed.exit_code == 1 and "crop applies to the maest segment rule only" in mixed.output
