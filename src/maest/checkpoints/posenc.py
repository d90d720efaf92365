"""Positional-encoding grids: resizing them and splitting them into separable (freq, time) parts.

Shared by every converter that changes the grid size (DeiT, PaSST) or the layout (HF's flat table).
Grids are ``(1, W, rows, columns)``: rows are frequency, columns are time.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class NotSeparableError(ValueError):
    """A positional table is not a sum of one frequency and one time encoding."""


def resize_grid(grid: torch.Tensor, rows: int, columns: int) -> torch.Tensor:
    """Bicubic resize (align_corners False) of a ``(1, W, r, c)`` grid to ``(1, W, rows, columns)``.

    A size-1 axis kept at size 1 is left untouched, so this also resizes a separable encoding
    along its one axis (``(1, W, 12, 1)`` -> ``(1, W, 9, 1)``).
    """
    if grid.ndim != 4:
        raise ValueError(f"expected a (1, width, rows, columns) grid, got {tuple(grid.shape)}")
    if tuple(grid.shape[2:]) == (rows, columns):
        return grid.clone()
    dtype = grid.dtype
    resized = F.interpolate(grid.float(), size=(rows, columns), mode="bicubic", align_corners=False)
    return resized.to(dtype)


def mean_separable(grid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(freq, time)`` as the grid's means over time and over frequency (MAEST's DeiT recipe)."""
    return grid.mean(dim=3, keepdim=True), grid.mean(dim=2, keepdim=True)


def split_separable(grid: torch.Tensor, rtol: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    """Least-squares ``(freq, time)`` with ``freq + time == grid``; raises if the residual is large.

    The split is unique only up to a constant vector; the constant goes into the time encodings
    (frequency encodings have zero mean over rows). ``rtol`` is relative to the grid's largest value.
    """
    work = grid.double()
    time = work.mean(dim=2, keepdim=True)
    freq = work.mean(dim=3, keepdim=True) - work.mean(dim=(2, 3), keepdim=True)
    residual = (work - freq - time).abs().max().item()
    scale = max(work.abs().max().item(), 1e-12)
    if residual > rtol * scale:
        raise NotSeparableError(
            f"positional table is not separable: residual {residual:.3g} exceeds {rtol:g} x {scale:.3g}"
        )
    return freq.to(grid.dtype), time.to(grid.dtype)
