"""The published-weights registry: ``maest.list_models()``, the cache check, model-string resolution."""

from __future__ import annotations

import pytest
import torch

import maest
from maest import configs, registry
from maest.checkpoints import CheckpointError, load_checkpoint, save_native
from maest.configs import MaestConfig
from maest.model import Maest
from maest.registry import PUBLISHED, list_models, parse_model_name


def test_list_models_rows(tmp_path, monkeypatch):
    monkeypatch.setenv("MAEST_HOME", str(tmp_path))
    rows = maest.list_models()
    assert [r.name for r in rows] == list(PUBLISHED)
    first = rows[0]
    assert (first.name, first.segment_seconds, first.num_classes, first.init, first.hub_id, first.cached) == (
        "discogs-maest-5s-pw-129e", 5, 400, "passt", "mtg-upf/discogs-maest-5s-pw-129e", False)
    assert {r.num_classes for r in rows} == {400, 519} and not any(r.cached for r in rows)


def test_cached_means_load_checkpoint_finds_it(tmp_path, monkeypatch):
    monkeypatch.setenv("MAEST_HOME", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    name = "discogs-maest-10s-pw-129e"
    (tmp_path / name).mkdir()
    (tmp_path / name / "config.json").write_text("{}")  # a download cut short: no weights
    assert not {r.name: r.cached for r in list_models()}[name]
    with pytest.raises(CheckpointError, match="not in"):  # asks for the files, not "does not match"
        load_checkpoint(name)
    model = Maest(MaestConfig(depth=1, width=64, heads=1, segment_frames=625, num_classes=400))
    (tmp_path / name / "config.json").unlink()
    save_native(model, tmp_path / name)
    assert {r.name: r.cached for r in list_models()}[name]
    assert load_checkpoint(name).config.name == name
    torch.save({}, tmp_path / "discogs-maest-5s-pw-129e.ckpt")  # a single file beside the cache folder counts
    assert {r.name: r.cached for r in list_models()}["discogs-maest-5s-pw-129e"]


def test_parse_model_name(tmp_path):
    assert parse_model_name("discogs-maest-30s-pw-129e") == ("registry", "discogs-maest-30s-pw-129e")
    assert parse_model_name("someone/some-maest") == ("hub", "someone/some-maest")
    assert parse_model_name("hf-hub:mtg-upf/discogs-maest-30s-pw-129e") == ("hub", "mtg-upf/discogs-maest-30s-pw-129e")
    assert parse_model_name(f"local:{tmp_path}") == ("local", str(tmp_path))
    assert parse_model_name(tmp_path) == ("local", str(tmp_path))
    assert parse_model_name("nothing-like-it") == ("unknown", "nothing-like-it")


def test_prefixes_in_load_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setenv("MAEST_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = Maest(MaestConfig(depth=1, width=32, heads=2, segment_frames=64, num_classes=3))
    path = save_native(model, tmp_path / "m")
    assert isinstance(load_checkpoint(f"local:{path}"), Maest)
    with pytest.raises(CheckpointError, match="a local: path must exist"):
        load_checkpoint(f"local:{tmp_path / 'missing'}")
    with pytest.raises(CheckpointError, match="hub is not reachable"):
        load_checkpoint("hf-hub:mtg-upf/discogs-maest-30s-pw-129e")
    with pytest.raises(CheckpointError, match="OWNER/NAME"):
        load_checkpoint("hf-hub:no-slash")


def test_old_import_paths():
    # The 0.1-era lazy aliases are gone: the published weights are read from maest.registry only.
    assert not hasattr(configs, "PUBLISHED") and not hasattr(configs, "discogs_labels")
    assert "discogs-maest-30s-pw-129e" in registry.PUBLISHED
    from maest.evaluate.metrics import macro_scores
    from maest.metrics import macro_scores as moved

    assert macro_scores is moved
