"""ONNX export: an embedding graph (mel -> pooled tokens after n blocks) and a logits graph.

Uses torch's TorchScript-based exporter (``dynamo=False``): for this model it is exact, takes under
a second and needs no onnxscript; pass ``dynamo=True`` for the torch.export-based one.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from maest.model import TOKEN_NAMES, Maest, pool_tokens

Graph = Literal["embedding", "logits"]


class EmbeddingGraph(nn.Module):
    """mel -> pooled tokens after ``blocks`` blocks (no final norm), as ``maest.pool_tokens`` gives."""

    def __init__(self, model: Maest, blocks: int | None, tokens: Sequence[str], patchout_time: int,
                 patchout_freq: Sequence[int]):
        super().__init__()
        self.model, self.blocks, self.tokens = model, blocks, tuple(tokens)
        self.patchout_time, self.patchout_freq = patchout_time, tuple(patchout_freq)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        tokens = self.model.forward_features(mel, self.blocks, self.patchout_time, self.patchout_freq)
        return pool_tokens(tokens, self.tokens)


class LogitsGraph(nn.Module):
    """mel -> logits (apply a sigmoid for probabilities)."""

    def __init__(self, model: Maest, patchout_time: int, patchout_freq: Sequence[int]):
        super().__init__()
        self.model, self.patchout_time, self.patchout_freq = model, patchout_time, tuple(patchout_freq)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.model(mel, self.patchout_time, self.patchout_freq)


def export_onnx(
    model: Maest,
    path: str | os.PathLike,
    graph: Graph = "embedding",
    *,
    blocks: int | None = None,
    tokens: Sequence[str] = TOKEN_NAMES,
    frames: int | None = None,
    patchout_time: int = 1,
    patchout_freq: Sequence[int] = (),
    opset: int = 18,
    dynamo: bool = False,
) -> Path:
    """Write ``graph`` to ``path``: input ``mel`` (batch, n_mels, frames), output ``embedding`` or ``logits``.

    The batch axis is dynamic; ``frames`` (default: the model's segment) is fixed in the graph.
    """
    if graph == "embedding":
        module: nn.Module = EmbeddingGraph(model, blocks, tokens, patchout_time, patchout_freq)
    elif graph == "logits":
        module = LogitsGraph(model, patchout_time, patchout_freq)
    else:
        raise ValueError(f"graph must be 'embedding' or 'logits', got {graph!r}")
    frames = frames or model.config.segment_frames
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    example = torch.zeros(2, model.config.n_mels, frames, device=next(model.parameters()).device)
    output = graph
    was_training = model.training
    module.eval()  # no random crop of the time encodings, no patchout, no dropout
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", (DeprecationWarning, torch.jit.TracerWarning))
            if dynamo:
                batch = torch.export.Dim("batch")
                torch.onnx.export(module, (example,), str(path), input_names=["mel"], output_names=[output],
                                  dynamic_shapes={"mel": {0: batch}}, opset_version=opset, dynamo=True)
            else:
                torch.onnx.export(module, (example,), str(path), input_names=["mel"], output_names=[output],
                                  dynamic_axes={"mel": {0: "batch"}, output: {0: "batch"}},
                                  opset_version=opset, dynamo=False)
    finally:
        model.train(was_training)
    return path
