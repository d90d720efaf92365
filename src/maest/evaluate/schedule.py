"""The probe's learning-rate schedule as a pure function of the epoch index (tested at its edges)."""

from __future__ import annotations


def probe_lr(
    epoch: int,
    epochs: int,
    max_lr: float,
    warmup_epochs: int = 10,
    decay_start: int | None = None,
    final_lr: float = 1e-7,
    warmup_start_factor: float = 0.01,
) -> float:
    """Learning rate of 0-based ``epoch``: exponential warm-up, hold, linear decay to ``final_lr``.

    * epochs ``0 .. warmup_epochs``: ``max_lr * warmup_start_factor ** (1 - epoch / warmup_epochs)``,
      a geometric ramp from ``max_lr / 100`` reaching ``max_lr`` at epoch ``warmup_epochs``;
    * ``warmup_epochs .. decay_start``: ``max_lr`` (held);
    * ``decay_start .. epochs - 1``: linear from ``max_lr`` to ``final_lr``, reached at the last epoch.
    ``decay_start=None`` means half-way through the post-warm-up epochs (the paper's "kept constant,
    then decreased"); ``decay_start=warmup_epochs`` is the original repository's warm-up + decay.
    Runs shorter than the warm-up ramp only part-way and never decay.
    """
    if epochs < 1 or not 0 <= epoch < epochs:
        raise ValueError(f"epoch {epoch} outside 0..{epochs - 1}")
    if max_lr <= 0 or final_lr < 0 or warmup_epochs < 0 or not 0 < warmup_start_factor <= 1:
        raise ValueError("learning rates must be positive, warmup_epochs >= 0, 0 < warmup_start_factor <= 1")
    last = epochs - 1
    if decay_start is None:
        decay_start = warmup_epochs + max(0, last - warmup_epochs) // 2
    if decay_start < warmup_epochs:
        raise ValueError(f"decay_start {decay_start} is inside the warm-up ({warmup_epochs} epochs)")
    if epoch < warmup_epochs:
        return max_lr * warmup_start_factor ** (1.0 - epoch / warmup_epochs)
    if epoch <= decay_start or decay_start >= last:
        return max_lr
    return max_lr + (final_lr - max_lr) * (epoch - decay_start) / (last - decay_start)
