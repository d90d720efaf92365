"""Model families: what the pipeline asks of a kind of network (the MAEST transformer, the EffNet-B0 baseline).

The pipeline, the heads, the plots, the app, training's export and the CLI ask a network's family
instead of testing its class, in the spirit of timm's uniform model contract: a batch of mels to
embeddings or to logits, the shortest input, the embedding width, the labels, and which options
(blocks, tokens, patchout) apply. The native checkpoint format reads its ``"type"`` names from
:data:`FAMILIES` too, so a third kind of network is its module plus one :class:`ModelFamily` here
(and, for a foreign file format, a reader in :mod:`maest.checkpoints`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import nn

from maest.blocks import auto_blocks
from maest.configs import MaestConfig
from maest.effnet import EffNet, EffNetConfig
from maest.model import Maest, pool_tokens
from maest.registry import discogs_labels

__all__ = ["FAMILIES", "EffNetFamily", "FamilyError", "MaestFamily", "ModelFamily", "Network", "family_of",
           "get_family", "model_labels"]

Network = Maest | EffNet  # a network of one of the families below (what checkpoints load)


class FamilyError(ValueError):
    """An option that does not apply to a model family, or a network of no known family."""


def model_labels(config: Any) -> list[str]:
    """Label names: the checkpoint's own, else the shipped Discogs list of that size, else ``class_i``."""
    if config.labels:
        if len(config.labels) != config.num_classes:
            raise ValueError(f"config has {len(config.labels)} labels for {config.num_classes} classes")
        return list(config.labels)
    if config.num_classes in (400, 519):
        return list(discogs_labels(config.num_classes))
    return [f"class_{i}" for i in range(config.num_classes)]


class ModelFamily(ABC):
    """One kind of network. Stateless: methods take the network or its config.

    ``embed``/``logits`` take a batch of normalised mels ``(batch, n_mels, frames)`` on the model's
    device and return ``(batch, dim)`` / ``(batch, classes)``; the pipeline adds autocast, sigmoid
    and the copy back to the CPU.
    """

    name: ClassVar[str]  # the "type" a maest checkpoint records
    network: ClassVar[type[nn.Module]]
    config: ClassVar[type]  # the network's config dataclass (from_dict/to_dict)
    has_blocks: ClassVar[bool]  # ``blocks`` (early exit, per-block features) apply
    has_tokens: ClassVar[bool]  # ``tokens`` (which pooled tokens to stack) apply
    has_patchout: ClassVar[bool]  # inference patchout applies
    converts: ClassVar[bool]  # the weights convert to the other formats (hf, official, onnx)
    export_suffix: ClassVar[str]  # training's exported weights: "" a native folder, else a single file
    # bf16/fp16: run a copy with Linear/Conv2d weights cast once (maest.precision), not autocast per batch.
    casts_weights: ClassVar[bool] = True

    @abstractmethod
    def min_frames(self, config: Any) -> int:
        """The shortest mel the network takes; shorter tracks are padded with silence to it."""

    @abstractmethod
    def depth(self, config: Any) -> int | None:
        """Blocks that can be run (``blocks`` lies in 1..depth); None where blocks do not apply."""

    @abstractmethod
    def default_blocks(self, config: Any) -> int | None:
        """Blocks of the default embedding (None where blocks do not apply)."""

    @abstractmethod
    def embedding_dim(self, config: Any, tokens: Sequence[str]) -> int:
        """Width of one embedding made with ``tokens``."""

    @abstractmethod
    def describe_embedding(self, blocks: int | None, tokens: Sequence[str]) -> str:
        """The embedding in words, for labels in the app: ``"block 7, cls+dist+avg"``."""

    @abstractmethod
    def check_options(self, config: Any, blocks: int | None, patchout_time: int, patchout_freq: Sequence[int]) -> None:
        """Raise :class:`FamilyError` when the options do not fit this network (before any decoding)."""

    @abstractmethod
    def embed(self, model: nn.Module, mel: torch.Tensor, blocks: int | None, tokens: Sequence[str],
              patchout_time: int = 1, patchout_freq: Sequence[int] = ()) -> torch.Tensor:
        """A batch of mels -> embeddings ``(batch, dim)``."""

    @abstractmethod
    def logits(self, model: nn.Module, mel: torch.Tensor, patchout_time: int = 1,
               patchout_freq: Sequence[int] = ()) -> torch.Tensor:
        """A batch of mels -> class logits ``(batch, classes)`` (all blocks, the classifier)."""

    def check_block_features(self, config: Any, blocks: Sequence[int]) -> None:
        """Raise unless :meth:`block_features` can give the pooled tokens after each of ``blocks``."""
        raise FamilyError(f"per-block features apply to MAEST models only, not to {self.title}")

    def block_features(self, model: nn.Module, mel: torch.Tensor, blocks: Sequence[int], patchout_time: int = 1,
                       patchout_freq: Sequence[int] = ()) -> torch.Tensor:
        """cls, dist, avg after each of ``blocks`` from one pass: ``(batch, len(blocks), 3 * width)``."""
        raise FamilyError(f"per-block features apply to MAEST models only, not to {self.title}")

    def labels(self, config: Any) -> list[str]:
        """The network's output label names."""
        return model_labels(config)

    @property
    def title(self) -> str:
        """The family's name in messages."""
        return self.network.__name__


class MaestFamily(ModelFamily):
    """The MAEST transformer: blocks (early exit), cls/dist/avg tokens and inference patchout apply."""

    name, network, config = "maest", Maest, MaestConfig
    has_blocks = has_tokens = has_patchout = converts = True
    export_suffix = ""

    def min_frames(self, config: MaestConfig) -> int:
        return config.patch_size  # one patch

    def depth(self, config: MaestConfig) -> int:
        return config.depth

    def default_blocks(self, config: MaestConfig) -> int:
        return auto_blocks(config.depth)  # the paper's block 7, or the last block of a shallower model

    def embedding_dim(self, config: MaestConfig, tokens: Sequence[str]) -> int:
        return config.width * len(tuple(tokens))

    def describe_embedding(self, blocks: int | None, tokens: Sequence[str]) -> str:
        return f"block {blocks}, {'+'.join(tokens)}"

    def check_options(self, config: MaestConfig, blocks: int | None, patchout_time: int,
                      patchout_freq: Sequence[int]) -> None:
        depth = config.depth
        if blocks is not None and not 1 <= blocks <= depth:
            raise FamilyError(f"blocks must be in 1..{depth} for this {depth}-block model, got {blocks}")
        rows = config.conv_freq_rows()
        bad = [r for r in patchout_freq if not -rows <= r < rows]
        if bad:
            raise FamilyError(f"patchout_freq rows {bad} out of range: the model has {rows} frequency rows (0..{rows - 1})")
        if len({r % rows for r in patchout_freq}) >= rows:
            raise FamilyError("patchout_freq drops every frequency row")

    def embed(self, model: Maest, mel: torch.Tensor, blocks: int | None, tokens: Sequence[str],
              patchout_time: int = 1, patchout_freq: Sequence[int] = ()) -> torch.Tensor:
        return pool_tokens(model.forward_features(mel, blocks, patchout_time, patchout_freq), tokens)

    def logits(self, model: Maest, mel: torch.Tensor, patchout_time: int = 1,
               patchout_freq: Sequence[int] = ()) -> torch.Tensor:
        tokens = model.forward_features(mel, None, patchout_time, patchout_freq)
        return model.head(model.head_features(tokens))

    def check_block_features(self, config: MaestConfig, blocks: Sequence[int]) -> None:
        depth = config.depth
        if not blocks or any(not 0 <= b <= depth for b in blocks):
            raise FamilyError(f"blocks must be in 0..{depth}, got {list(blocks)}")

    def block_features(self, model: Maest, mel: torch.Tensor, blocks: Sequence[int], patchout_time: int = 1,
                       patchout_freq: Sequence[int] = ()) -> torch.Tensor:
        tokens = model.forward_intermediates(mel, blocks, patchout_time, patchout_freq)
        return torch.stack([pool_tokens(x).float() for x in tokens], dim=1)


class EffNetFamily(ModelFamily):
    """The EffNet-B0 baseline: the embedding is its penultimate layer; blocks, tokens and patchout do not apply."""

    name, network, config = "effnet", EffNet, EffNetConfig
    has_blocks = has_tokens = has_patchout = converts = False
    export_suffix = ".safetensors"
    casts_weights = False  # measured only for the transformer; EffNet keeps autocast per batch

    def min_frames(self, config: EffNetConfig) -> int:
        return 16  # EffNet pools any size; one MAEST patch for symmetry

    def depth(self, config: EffNetConfig) -> None:
        return None

    def default_blocks(self, config: EffNetConfig) -> None:
        return None

    def embedding_dim(self, config: EffNetConfig, tokens: Sequence[str]) -> int:
        return config.embedding_dim

    def describe_embedding(self, blocks: int | None, tokens: Sequence[str]) -> str:
        return "EffNet penultimate layer"

    def check_options(self, config: EffNetConfig, blocks: int | None, patchout_time: int,
                      patchout_freq: Sequence[int]) -> None:
        if patchout_time != 1 or patchout_freq:
            raise FamilyError("inference patchout applies to MAEST models only, not to EffNet")

    def embed(self, model: EffNet, mel: torch.Tensor, blocks: int | None, tokens: Sequence[str],
              patchout_time: int = 1, patchout_freq: Sequence[int] = ()) -> torch.Tensor:
        return model.forward_features(mel)

    def logits(self, model: EffNet, mel: torch.Tensor, patchout_time: int = 1,
               patchout_freq: Sequence[int] = ()) -> torch.Tensor:
        return model(mel)


FAMILIES: dict[str, ModelFamily] = {family.name: family for family in (MaestFamily(), EffNetFamily())}


def family_of(model: nn.Module) -> ModelFamily:
    """The family of a network instance."""
    for family in FAMILIES.values():
        if isinstance(model, family.network):
            return family
    raise FamilyError(f"no model family for a {type(model).__name__}: maest runs {' or '.join(FAMILIES)} networks")


def get_family(name: str) -> ModelFamily:
    """The family a checkpoint's ``"type"`` names."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise FamilyError(f"unknown model family {name!r}; this maest runs {', '.join(FAMILIES)}") from None
