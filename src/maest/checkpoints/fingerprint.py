"""A fingerprint of a network's weights: the model's identity, whatever file or format it came from.

Two guards read it. An output folder records it (``"weights"`` in ``maest-embed.json``) and refuses
other weights at the same model path, so a rerun never mixes two models in one output; an
own-label head records it and refuses a model other than the one it was fitted on.

What is hashed: every tensor's name, shape and dtype, 1024 evenly spaced values of each (exact
bytes: the same on every device and thread count), and the frontend normalisation. That takes a
few milliseconds for the 87 M-parameter model, and a copy of the weights (another folder, another
format) gives the same fingerprint. Training or fine-tuning changes every tensor, so it changes
the fingerprint; a single edited value inside a large tensor can go unseen.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import torch

# Values read from each tensor: enough to tell checkpoints apart, cheap for an 87 M-parameter model.
SAMPLES_PER_TENSOR = 1024


def weights_fingerprint(model: torch.nn.Module) -> str:
    """A sha256 hex digest of ``model``'s weights (names, shapes, dtypes, sampled values) and normalisation."""
    digest = hashlib.sha256()
    config = getattr(model, "config", None)
    if config is not None:
        digest.update(json.dumps([type(model).__name__, getattr(config, "norm_mean", None),
                                  getattr(config, "norm_std", None)]).encode())
    for name, tensor in sorted(model.state_dict().items()):
        flat = tensor.detach().reshape(-1)
        step = max(1, flat.numel() // SAMPLES_PER_TENSOR)
        sample = flat[::step][:SAMPLES_PER_TENSOR].to("cpu", torch.float32).contiguous().numpy()
        digest.update(f"{name}{tuple(tensor.shape)}{tensor.dtype}".encode())
        digest.update(np.ascontiguousarray(sample).tobytes())
    return digest.hexdigest()
