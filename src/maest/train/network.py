"""The network a training config asks for: MAEST or EffNet-B0, sized to the labels, initialised.

Initialisation (``model.init``) is done only for a fresh run: a resumed run takes every weight from
its Lightning checkpoint.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from maest.configs import SEGMENT_FRAMES, MaestConfig, for_segment
from maest.checkpoints.effnet import load_effnet
from maest.effnet import EffNet, EffNetConfig
from maest.model import Maest
from maest.train.config import ConfigError, TrainConfig

log = logging.getLogger(__name__)


class InitError(RuntimeError):
    """The initial weights cannot be loaded into the configured network."""


def architecture(config: TrainConfig, labels: list[str], mean: float, std: float) -> MaestConfig | EffNetConfig:
    """The architecture dataclass for the run: segment, ``model.arch`` overrides, labels, normalisation."""
    model = config.model
    values = dict(model.arch)
    if "num_classes" in values and values["num_classes"] != len(labels):
        raise ConfigError(f"model.arch.num_classes = {values['num_classes']} but {len(labels)} labels are given")
    values.update(num_classes=len(labels), labels=list(labels), norm_mean=mean, norm_std=std)
    values.setdefault("name", config.name)
    if model.type == "effnet-b0":
        if model.segment_seconds is not None:
            if model.segment_seconds not in SEGMENT_FRAMES:
                raise ConfigError(f"model.segment_seconds must be one of {sorted(SEGMENT_FRAMES)} or null")
            values.setdefault("segment_frames", SEGMENT_FRAMES[model.segment_seconds])
        return EffNetConfig(**values)
    if model.segment_seconds is not None:
        return for_segment(model.segment_seconds, **values)
    return MaestConfig(**values)


def build_network(config: TrainConfig, labels: list[str], mean: float, std: float, initialise: bool = True) -> nn.Module:
    """A fresh network; with ``initialise``, weights from ``model.init`` (random, deit, passt, maest)."""
    arch = architecture(config, labels, mean, std)
    if isinstance(arch, EffNetConfig):
        net = EffNet(arch)
        if initialise and config.model.init == "maest":
            _copy_matching(net, load_effnet(config.model.init_path).state_dict(), config.model.init_path)
        return net
    init, path = config.model.init, config.model.init_path
    if not initialise or init == "random":
        return Maest(arch)
    from maest import checkpoints

    if not Path(path).exists():
        raise InitError(f"model.init_path {path} does not exist ({init} weights to initialise from)")
    if init == "deit":
        return checkpoints.init_from_deit(arch, path)
    if init == "passt":
        return checkpoints.init_from_passt(arch, path)
    net = Maest(arch)
    _copy_matching(net, checkpoints.load_checkpoint(path).state_dict(), path)
    return net


def _copy_matching(net: nn.Module, source: dict[str, torch.Tensor], origin: str) -> None:
    """Load ``source`` into ``net``: classifier heads of another size stay random, longer time
    encodings are cropped (as at inference); any other mismatch is an error."""
    target = net.state_dict()
    missing = sorted(set(target) - set(source))
    if missing:
        raise InitError(f"{origin} lacks {missing[:5]}: it is not the same architecture")
    loaded = {}
    for name, value in target.items():
        weight = source[name]
        if name == "time_new_pos_embed" and weight.shape[-1] > value.shape[-1]:
            weight = weight[..., : value.shape[-1]]
        if weight.shape == value.shape:
            loaded[name] = weight
        elif name.startswith(("head.", "head_dist.", "classifier.")):
            log.info("%s: %s has another number of classes; it starts random", origin, name)
        else:
            raise InitError(f"{origin}: {name} has shape {tuple(weight.shape)}, the network needs {tuple(value.shape)}")
    net.load_state_dict(loaded, strict=False)
