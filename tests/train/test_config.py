"""Training configs: YAML validation, typed overrides, and the paper's experiment files."""

from __future__ import annotations

from pathlib import Path

import pytest

from maest.train.config import ConfigError, from_dict, load_config

CONFIGS = Path(__file__).resolve().parents[2] / "src" / "maest" / "resources" / "train"  # shipped with maest
PAPER = ["maest-5s-passt", "maest-10s-passt", "maest-20s-passt", "maest-30s-passt", "maest-10s-deit", "maest-10s-random"]


@pytest.mark.parametrize("name", PAPER)
def test_paper_configs_hold_the_paper_recipe(name):
    config = load_config(CONFIGS / f"{name}.yaml")
    seconds = int(name.split("-")[1].rstrip("s"))
    assert config.model.segment_seconds == seconds
    assert config.model.init == name.split("-")[2]
    assert (config.trainer.max_epochs, config.trainer.batch_size, config.data.samples_per_epoch) == (130, 12, 200_000)
    assert (config.optim.lr, config.optim.final_lr, config.optim.weight_decay) == (1e-4, 1e-7, 1e-4)
    assert (config.optim.warmup_epochs, config.optim.decay_start_epoch, config.optim.decay_epochs) == (5, 50, 50)
    assert config.augment.mixup_alpha == 0.3
    assert (config.augment.time_masks, config.augment.time_mask_frames) == (20, 8)
    assert (config.augment.freq_masks, config.augment.freq_mask_bands) == (5, 8)
    assert (config.swa.start_epoch, config.swa.every_epochs) == (50, 5)
    assert not Path(config.data.root).is_absolute()


def test_tiny_and_effnet_configs_load():
    assert load_config(CONFIGS / "tiny.yaml").model.arch["depth"] == 2
    assert load_config(CONFIGS / "effnet-b0.yaml").model.type == "effnet-b0"


def test_overrides_are_typed_and_checked():
    config = load_config(CONFIGS / "tiny.yaml", ["optim.lr=5e-3", "trainer.max_epochs=3", "model.arch.depth=4",
                                                  "data.root=/somewhere/else"])
    assert config.optim.lr == 5e-3 and config.trainer.max_epochs == 3
    assert config.model.arch["depth"] == 4 and config.data.root == "/somewhere/else"
    with pytest.raises(ConfigError, match="trainer.max_epochs must be an integer"):
        load_config(CONFIGS / "tiny.yaml", ["trainer.max_epochs=ten"])
    with pytest.raises(ConfigError, match="optim.lrr"):
        load_config(CONFIGS / "tiny.yaml", ["optim.lrr=1e-3"])
    with pytest.raises(ConfigError, match="model.arch.depthh"):
        load_config(CONFIGS / "tiny.yaml", ["model.arch.depthh=3"])
    with pytest.raises(ConfigError, match="model.arch.depth must be an integer"):
        load_config(CONFIGS / "tiny.yaml", ["model.arch.depth=2.5"])
    with pytest.raises(ConfigError, match="key=value"):
        load_config(CONFIGS / "tiny.yaml", ["optim.lr"])


def test_invalid_combinations_are_rejected():
    with pytest.raises(ConfigError, match="init_path"):
        from_dict({"model": {"init": "passt"}})
    with pytest.raises(ConfigError, match="final_lr"):
        from_dict({"optim": {"lr": 1e-5, "final_lr": 1e-4}})
    with pytest.raises(ConfigError, match="unknown key"):
        from_dict({"trainer": {"gpus": 4}})
    with pytest.raises(ConfigError, match="must be a bool"):
        from_dict({"swa": {"enabled": "yes please"}})


@pytest.mark.parametrize("override", ["optim.decay_epochs=-1", "optim.warmup_epochs=-2", "augment.time_masks=-1",
                                      "augment.freq_mask_bands=-8", "swa.start_epoch=-1", "data.val_batch_size=0"])
def test_out_of_range_recipe_values_fail_when_the_config_is_read(override):
    # Not later, in configure_optimizers or the module, after data and GPUs were set up.
    with pytest.raises(ConfigError, match=override.split("=")[0]):
        load_config(None, [override])
