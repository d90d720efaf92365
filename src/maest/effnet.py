"""EfficientNet-B0 for mel input: the CNN baseline of the MAEST paper (EffNet-B0 on Discogs styles).

Written from the EfficientNet paper (Tan & Le, 2019) rather than copied: stem conv, seven stages of
MBConv blocks with squeeze-excitation, a 1x1 head conv to 1280 channels, global average pooling,
dropout and a linear multi-label head. The input is one channel: a ``(B, n_mels, frames)`` mel.

``forward_features(mel)`` gives the penultimate-layer embedding ``(B, 1280)`` (pooled head conv,
before dropout and the classifier) — the vector to expose as EffNet embeddings.

Saving and loading live in :mod:`maest.checkpoints.effnet` (the native format, ``"type": "effnet"``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import nn

from maest.configs import ModelIdentity

# (expand ratio, kernel, stride, output channels, repeats) of EfficientNet-B0's seven stages.
B0_STAGES = ((1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3),
             (6, 5, 1, 112, 3), (6, 5, 2, 192, 4), (6, 3, 1, 320, 1))
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
# TensorFlow's BatchNorm settings, used by the reference EfficientNet.
BN_EPS = 1e-3
BN_MOMENTUM = 0.01


@dataclass
class EffNetConfig(ModelIdentity):
    """EfficientNet-B0 adapted to mel input; ``width_mult``/``depth_mult`` scale it (1.0 = B0)."""

    _TYPES: ClassVar[dict[str, type]] = {
        "n_mels": int, "segment_frames": int, "num_classes": int, "width_mult": float, "depth_mult": float,
        "dropout": float, "drop_path_rate": float,
    }
    _POSITIVE: ClassVar[tuple[str, ...]] = ("n_mels", "segment_frames", "num_classes", "width_mult", "depth_mult")
    _FRACTIONS: ClassVar[tuple[str, ...]] = ("dropout", "drop_path_rate")

    n_mels: int = 96
    # Training crop; Essentia's discogs-effnet takes 128-frame (about 2 s) patches.
    segment_frames: int = 128
    num_classes: int = 400
    width_mult: float = 1.0
    depth_mult: float = 1.0
    dropout: float = 0.2
    drop_path_rate: float = 0.2
    # labels, norm_mean, norm_std: from ModelIdentity (keyword-only); only the name's default differs
    name: str = field(default="effnet-b0", kw_only=True)

    @property
    def embedding_dim(self) -> int:
        return round_channels(HEAD_CHANNELS, self.width_mult)


def round_channels(channels: int, width_mult: float, divisor: int = 8) -> int:
    """EfficientNet's channel rounding: scale, round to a multiple of 8, never below 90 %."""
    scaled = channels * width_mult
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * scaled else rounded


def _conv_bn_act(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, act: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, kernel, stride, padding=kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout, eps=BN_EPS, momentum=BN_MOMENTUM),
    ]
    if act:
        layers.append(nn.SiLU())
    return nn.Sequential(*layers)


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, squeezed: int):
        super().__init__()
        self.reduce = nn.Conv2d(channels, squeezed, 1)
        self.expand = nn.Conv2d(squeezed, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = x.mean(dim=(2, 3), keepdim=True)
        return x * torch.sigmoid(self.expand(nn.functional.silu(self.reduce(scale))))


class MBConv(nn.Module):
    """Inverted residual: expand 1x1, depthwise kxk, squeeze-excite (1/4 of the input), project 1x1."""

    def __init__(self, cin: int, cout: int, expand: int, kernel: int, stride: int, drop_path: float):
        super().__init__()
        hidden = cin * expand
        self.expand = _conv_bn_act(cin, hidden, 1) if expand != 1 else nn.Identity()
        self.depthwise = _conv_bn_act(hidden, hidden, kernel, stride, groups=hidden)
        self.se = SqueezeExcite(hidden, max(1, cin // 4))
        self.project = _conv_bn_act(hidden, cout, 1, act=False)
        self.residual = stride == 1 and cin == cout
        self.drop_path = drop_path

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.project(self.se(self.depthwise(self.expand(x))))
        if not self.residual:
            return out
        if self.training and self.drop_path > 0:
            keep = 1.0 - self.drop_path
            out = out * out.new_empty(out.shape[0], 1, 1, 1).bernoulli_(keep) / keep
        return x + out


class EffNet(nn.Module):
    """EfficientNet-B0 over a ``(B, n_mels, frames)`` mel; ``forward`` gives multi-label logits."""

    def __init__(self, config: EffNetConfig):
        super().__init__()
        self.config = config
        width = config.width_mult
        stem = round_channels(STEM_CHANNELS, width)
        self.stem = _conv_bn_act(1, stem, 3, stride=2)
        specs = []
        cin = stem
        for expand, kernel, stride, channels, repeats in B0_STAGES:
            cout = round_channels(channels, width)
            for i in range(math.ceil(repeats * config.depth_mult)):
                specs.append((cin, cout, expand, kernel, stride if i == 0 else 1))
                cin = cout
        rates = [config.drop_path_rate * i / len(specs) for i in range(len(specs))]
        self.blocks = nn.Sequential(*(MBConv(*spec, drop_path=rate) for spec, rate in zip(specs, rates)))
        self.head_conv = _conv_bn_act(cin, config.embedding_dim, 1)
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(config.embedding_dim, config.num_classes)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """EfficientNet initialisation: He (fan-out) for convs, uniform 1/sqrt(out) for the head."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        bound = 1.0 / math.sqrt(self.classifier.out_features)
        nn.init.uniform_(self.classifier.weight, -bound, bound)
        nn.init.zeros_(self.classifier.bias)

    def no_weight_decay(self) -> set[str]:
        """Nothing is exempt from weight decay (EfficientNet has no positional encodings or tokens)."""
        return set()

    def forward_features(self, mel: torch.Tensor) -> torch.Tensor:
        """Penultimate embedding ``(B, embedding_dim)``: global average of the 1280-channel head conv."""
        if mel.ndim != 3 or mel.shape[1] != self.config.n_mels:
            raise ValueError(f"expected a (batch, {self.config.n_mels}, frames) mel, got {tuple(mel.shape)}")
        x = self.head_conv(self.blocks(self.stem(mel.unsqueeze(1))))
        return x.mean(dim=(2, 3))

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, num_classes)``; probabilities are their sigmoid."""
        return self.classifier(self.dropout(self.forward_features(mel)))

