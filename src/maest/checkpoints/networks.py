"""The network kinds a checkpoint can hold (MAEST and the EffNet-B0 baseline), by the name the
native format and training checkpoints record as ``"type"``: one table instead of isinstance branches."""

from __future__ import annotations

from typing import Any

from torch import nn

from maest.checkpoints.errors import CheckpointError
from maest.configs import ConfigValueError, MaestConfig
from maest.effnet import EffNet, EffNetConfig
from maest.model import Maest

Network = Maest | EffNet  # what load_checkpoint returns
NETWORK_TYPES: dict[str, tuple[type[nn.Module], type]] = {"maest": (Maest, MaestConfig), "effnet": (EffNet, EffNetConfig)}


def network_type(model: nn.Module) -> str:
    """``"maest"`` or ``"effnet"``: the type name a checkpoint records for ``model``."""
    for name, (cls, _) in NETWORK_TYPES.items():
        if isinstance(model, cls):
            return name
    raise CheckpointError(f"cannot save a {type(model).__name__}: maest checkpoints hold {' or '.join(NETWORK_TYPES)}")


def network_from_config(kind: Any, config: Any, source: str, **options: Any) -> Network:
    """A fresh network of ``kind`` from a config dict read from ``source`` (named in every error)."""
    if kind not in NETWORK_TYPES:
        raise CheckpointError(f"{source}: unknown network type {kind!r}; this maest reads {', '.join(NETWORK_TYPES)}")
    cls, config_cls = NETWORK_TYPES[kind]
    try:
        parsed = config_cls.from_dict(config)
    except (ConfigValueError, TypeError, ValueError) as error:
        raise CheckpointError(f"{source}: invalid {kind} config: {error}") from error
    return cls(parsed, **options)
