"""maest: MAEST, the Music Audio Efficient Spectrogram Transformer, in PyTorch.

Public API (imports are lazy so ``import maest`` stays fast)."""

from __future__ import annotations

__version__ = "0.1.0"
