"""Names with dots ("01. Intro.flac", "feat. X"): outputs map back to their audio for maps and the web app."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch
from typer.testing import CliRunner

from maest.checkpoints import save_native
from maest.cli import app
from maest.configs import MaestConfig
from maest.extraction import audio_for_key, extract
from maest.model import Maest

NAMES = ["01. Intro.flac", "02. Song feat. X.wav", "Vol. 2/03. Outro.mp3"]
LABELS = ["Rock---Punk", "Jazz---Bop", "Pop---Ballad"]


@pytest.fixture(scope="module")
def music(tmp_path_factory):
    root = tmp_path_factory.mktemp("dots") / "music"
    rng = np.random.default_rng(0)
    for i, name in enumerate(NAMES):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        t = np.arange(16000) / 16000
        y = (0.3 * np.sin(2 * np.pi * (220 * (i + 1)) * t) + 0.01 * rng.normal(size=t.size)).astype(np.float32)
        sf.write(path, y, 16000, format=path.suffix[1:].upper())
    return root


def test_output_keys_keep_their_dots_when_mapped_back_to_audio(music):
    for name in NAMES:
        stem = name.rsplit(".", 1)[0]
        for key in (f"{stem}.npy", f"{stem}.npz", name):
            assert audio_for_key(key, music) == music / name, key
        assert audio_for_key(str(music / f"{stem}.npy")) == music / name  # an absolute key
    assert audio_for_key("01. Intro.npy", music / "Vol. 2") is None  # nothing there: no wrong match


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "tiny"
    save_native(Maest(MaestConfig(depth=2, width=32, heads=2, num_classes=3, segment_frames=64, labels=LABELS,
                                  name="tiny")), path)
    return str(path)


def test_map_colours_dotted_names_by_genre(music, checkpoint, tmp_path):
    out = tmp_path / "emb"
    summary = extract(music, out, checkpoint, blocks=2, device="cpu", progress=False)
    assert summary.succeeded == 3 and sorted(p.name for p in out.rglob("*.npy")) == sorted(
        n.rsplit("/", 1)[-1].rsplit(".", 1)[0] + ".npy" for n in NAMES)
    result = CliRunner().invoke(app, ["map", str(out), "-o", str(tmp_path / "map.png"), "--color-by", "genre",
                                      "--audio-root", str(music), "--model", checkpoint, "--method", "pca",
                                      "--decode-workers", "0"])
    assert result.exit_code == 0, result.output
    assert "no readable audio" not in result.output and "unknown" not in result.output


def test_the_apps_collection_finds_audio_of_dotted_keys(music, checkpoint):
    from app_data import ExactIndex

    from maest.app.service import Collection
    from maest.inference import load_model

    pipeline = load_model(checkpoint, "cpu")
    keys = [name.rsplit(".", 1)[0] + ".npy" for name in NAMES]
    collection = Collection(ExactIndex(keys, np.eye(3, 8)), pipeline, audio_root=music)
    assert [collection.resolve(key) for key in keys] == [music / name for name in NAMES]
