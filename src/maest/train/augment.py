"""Batch augmentations of the recipe: mixup and SpecAugment, batched torch ops on any device.

Both draw from the global torch RNG of the batch's device (reseeded per epoch by the training
module), so a run is reproducible from its seed and needs no host-device copies.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


class AugmentError(ValueError):
    """An augmentation parameter is out of range or the batch has the wrong shape."""


@dataclass(frozen=True)
class Mixed:
    """A mixup result: mixed inputs and targets, the per-example lambdas and the partner indices."""

    inputs: torch.Tensor
    targets: torch.Tensor
    lambdas: torch.Tensor
    partners: torch.Tensor


def mixup(inputs: torch.Tensor, targets: torch.Tensor, alpha: float = 0.3) -> Mixed:
    """Mix every example with a partner from a random permutation of the batch.

    lambda ~ Beta(alpha, alpha) per example, folded to max(lambda, 1 - lambda) so each example keeps
    the larger share; inputs and targets use the same lambda (original MAEST/PaSST code).
    """
    if alpha <= 0:
        raise AugmentError(f"mixup alpha must be > 0, got {alpha}")
    if inputs.shape[0] != targets.shape[0]:
        raise AugmentError(f"inputs and targets differ in batch size: {inputs.shape[0]} vs {targets.shape[0]}")
    batch = inputs.shape[0]
    device = inputs.device
    concentration = torch.tensor(float(alpha), device=device)
    lambdas = torch.distributions.Beta(concentration, concentration).sample((batch,))
    lambdas = torch.maximum(lambdas, 1.0 - lambdas)
    partners = torch.randperm(batch, device=device)
    shape_x = (batch,) + (1,) * (inputs.ndim - 1)
    shape_y = (batch,) + (1,) * (targets.ndim - 1)
    lam_x = lambdas.to(inputs.dtype).reshape(shape_x)
    lam_y = lambdas.to(targets.dtype if targets.is_floating_point() else torch.float32).reshape(shape_y)
    targets = targets if targets.is_floating_point() else targets.float()
    mixed_x = inputs * lam_x + inputs[partners] * (1.0 - lam_x)
    mixed_y = targets * lam_y + targets[partners] * (1.0 - lam_y)
    return Mixed(mixed_x, mixed_y, lambdas, partners)


@dataclass(frozen=True)
class SpecAugment:
    """Up to ``time_masks`` masks of up to ``time_mask_frames`` frames and up to ``freq_masks`` masks
    of up to ``freq_mask_bands`` bands per example (paper: 20 x 8 frames, 5 x 8 bands).

    Counts and widths are uniform integers in ``[0, max]``; masks may overlap. Masked cells are set to
    ``fill`` (0: the mean of a normalised mel).
    """

    time_masks: int = 20
    time_mask_frames: int = 8
    freq_masks: int = 5
    freq_mask_bands: int = 8
    fill: float = 0.0

    def __post_init__(self) -> None:
        if min(self.time_masks, self.time_mask_frames, self.freq_masks, self.freq_mask_bands) < 0:
            raise AugmentError("SpecAugment mask counts and widths must be >= 0")

    def masks(self, batch: int, bands: int, frames: int,
              device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        """Boolean masks ``(batch, frames)`` of masked time frames and ``(batch, bands)`` of masked bands."""
        time = _random_spans(batch, frames, self.time_masks, self.time_mask_frames, device)
        freq = _random_spans(batch, bands, self.freq_masks, self.freq_mask_bands, device)
        return time, freq

    def __call__(self, mel: torch.Tensor) -> torch.Tensor:
        """Mask a ``(batch, bands, frames)`` mel batch; returns a new tensor."""
        if mel.ndim != 3:
            raise AugmentError(f"SpecAugment expects a (batch, bands, frames) mel, got {tuple(mel.shape)}")
        batch, bands, frames = mel.shape
        time, freq = self.masks(batch, bands, frames, mel.device)
        masked = time[:, None, :] | freq[:, :, None]
        return mel.masked_fill(masked, self.fill)


def _random_spans(batch: int, length: int, max_count: int, max_width: int,
                  device: torch.device | str) -> torch.Tensor:
    """``(batch, length)`` boolean: the union of up to ``max_count`` random spans of up to ``max_width``."""
    if max_count == 0 or max_width == 0 or length == 0:
        return torch.zeros(batch, length, dtype=torch.bool, device=device)
    counts = torch.randint(0, max_count + 1, (batch, 1), device=device)
    widths = torch.randint(0, max_width + 1, (batch, max_count), device=device).clamp_max(length)
    # Start uniformly where the whole span fits.
    starts = (torch.rand(batch, max_count, device=device) * (length - widths + 1)).floor().long()
    active = torch.arange(max_count, device=device)[None, :] < counts
    position = torch.arange(length, device=device)[None, None, :]
    inside = (position >= starts[..., None]) & (position < (starts + widths)[..., None]) & active[..., None]
    return inside.any(dim=1)
