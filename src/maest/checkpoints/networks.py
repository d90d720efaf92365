"""The network kinds a checkpoint can hold (MAEST and the EffNet-B0 baseline), by the name the
native format and training checkpoints record as ``"type"``: the :data:`maest.family.FAMILIES` table
instead of isinstance branches."""

from __future__ import annotations

from typing import Any

from torch import nn

from maest.checkpoints.errors import CheckpointError
from maest.configs import ConfigValueError
from maest.family import FAMILIES, Network  # noqa: F401  (Network: what load_checkpoint returns)


def network_type(model: nn.Module) -> str:
    """``"maest"`` or ``"effnet"``: the type name a checkpoint records for ``model``."""
    for name, family in FAMILIES.items():
        if isinstance(model, family.network):
            return name
    raise CheckpointError(f"cannot save a {type(model).__name__}: maest checkpoints hold {' or '.join(FAMILIES)}")


def network_from_config(kind: Any, config: Any, source: str, **options: Any) -> Network:
    """A fresh network of ``kind`` from a config dict read from ``source`` (named in every error)."""
    if kind not in FAMILIES:
        raise CheckpointError(f"{source}: unknown network type {kind!r}; this maest reads {', '.join(FAMILIES)}")
    cls, config_cls = FAMILIES[kind].network, FAMILIES[kind].config
    try:
        parsed = config_cls.from_dict(config)
    except (ConfigValueError, TypeError, ValueError) as error:
        raise CheckpointError(f"{source}: invalid {kind} config: {error}") from error
    return cls(parsed, **options)
