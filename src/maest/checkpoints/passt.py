"""PaSST (``passt_s_swa_p16_128_ap476``, AudioSet, 128 mel bins) -> MAEST initialisation."""

from __future__ import annotations

import torch

from maest.checkpoints.errors import CheckpointError
from maest.checkpoints.posenc import resize_grid
from maest.configs import MaestConfig

DROPPED = ("head.", "head_dist.")


def passt_to_maest(state: dict[str, torch.Tensor], config: MaestConfig) -> dict[str, torch.Tensor]:
    """Backbone weights for ``config`` from a PaSST state dict; the AudioSet heads are dropped.

    Same layout as MAEST; the frequency encodings (12 rows for 128 mels) and time encodings
    (99 columns for 10 s) are resized along their one axis to the target grid.
    """
    for key in ("freq_new_pos_embed", "time_new_pos_embed"):
        if key not in state:
            raise CheckpointError(f"PaSST state dict lacks {key!r}")
    out = {k: v for k, v in state.items() if not k.startswith(DROPPED)}
    out["freq_new_pos_embed"] = resize_grid(state["freq_new_pos_embed"], config.freq_grid, 1)
    out["time_new_pos_embed"] = resize_grid(state["time_new_pos_embed"], 1, config.time_grid)
    return out
