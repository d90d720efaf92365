"""DeiT-B distilled 384 (timm ``deit_base_distilled_patch16_384``, ImageNet) -> MAEST initialisation."""

from __future__ import annotations

import math

import torch

from maest.checkpoints.errors import CheckpointError
from maest.checkpoints.posenc import mean_separable, resize_grid
from maest.configs import MaestConfig

DROPPED = ("head.", "head_dist.", "pos_embed", "patch_embed.proj.weight")


def deit_to_maest(state: dict[str, torch.Tensor], config: MaestConfig) -> dict[str, torch.Tensor]:
    """Backbone weights for ``config`` from a DeiT state dict; the ImageNet heads are dropped.

    RGB patch filters are summed into one mel channel; the square position grid is resized to
    (F_grid, T_grid) and reduced to separable encodings by averaging over the other axis.
    """
    for key in ("pos_embed", "patch_embed.proj.weight", "cls_token", "dist_token"):
        if key not in state:
            raise CheckpointError(f"DeiT state dict lacks {key!r}: is it a distilled DeiT?")
    positions = state["pos_embed"]
    width = positions.shape[-1]
    side = math.isqrt(positions.shape[1] - 2)
    if side * side != positions.shape[1] - 2:
        raise CheckpointError(f"DeiT pos_embed {tuple(positions.shape)} is not 2 tokens + a square grid")
    grid = positions[:, 2:].transpose(1, 2).reshape(1, width, side, side)
    grid = resize_grid(grid, config.freq_grid, config.time_grid)
    freq, time = mean_separable(grid)
    out = {k: v for k, v in state.items() if not k.startswith(DROPPED)}
    out["patch_embed.proj.weight"] = state["patch_embed.proj.weight"].sum(dim=1, keepdim=True)
    out["new_pos_embed"] = positions[:, :2].clone()
    out["freq_new_pos_embed"] = freq.contiguous()
    out["time_new_pos_embed"] = time.contiguous()
    return out
