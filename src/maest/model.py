"""The MAEST transformer: a ViT over mel patches with separable time/frequency encodings.

Parameter names follow the original MAEST code (``cls_token``, ``time_new_pos_embed``,
``blocks.{i}.attn.qkv`` ...), so the original checkpoints load without renaming.

Data flow for a mel batch ``(B, 96, T)``:
  conv 16x16 / stride 10x10 -> grid ``(B, W, 9, t)`` -> + frequency and time encodings
  -> patchout (drop rows/columns of the grid) -> flatten frequency-major -> [cls, dist, patches]
  -> blocks -> (head: final norm, mean of cls and dist, LayerNorm + Linear).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from maest.configs import MaestConfig

TOKEN_NAMES = ("cls", "dist", "avg")


class InputTooLongError(ValueError):
    """The input has more time columns than the model has time encodings: segment the audio."""


class Attention(nn.Module):
    def __init__(self, width: int, heads: int, qkv_bias: bool, attn_drop: float, proj_drop: float):
        super().__init__()
        if width % heads:
            raise ValueError(f"width {width} is not divisible by heads {heads}")
        self.heads = heads
        self.attn_drop = attn_drop
        # Rows of qkv are [query; key; value] stacked along dim 0 (as in the checkpoints).
        self.qkv = nn.Linear(width, 3 * width, bias=qkv_bias)
        self.proj = nn.Linear(width, width)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, width = x.shape
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.heads, width // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        x = F.scaled_dot_product_attention(q, k, v, dropout_p=self.attn_drop if self.training else 0.0)
        x = x.transpose(1, 2).reshape(batch, tokens, width)
        return self.proj_drop(self.proj(x))


class Mlp(nn.Module):
    def __init__(self, width: int, hidden: int, drop: float):
        super().__init__()
        self.fc1 = nn.Linear(width, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, width)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class Block(nn.Module):
    """Pre-norm transformer block with optional stochastic depth (per-sample residual drop)."""

    def __init__(self, config: MaestConfig, drop_path: float):
        super().__init__()
        eps = config.layer_norm_eps
        self.norm1 = nn.LayerNorm(config.width, eps=eps)
        self.attn = Attention(config.width, config.heads, config.qkv_bias, config.attn_drop_rate, config.drop_rate)
        self.norm2 = nn.LayerNorm(config.width, eps=eps)
        self.mlp = Mlp(config.width, int(config.width * config.mlp_ratio), config.drop_rate)
        self.drop_path = drop_path

    def _residual(self, branch: torch.Tensor) -> torch.Tensor:
        if not self.training or self.drop_path == 0.0:
            return branch
        keep = 1.0 - self.drop_path
        mask = branch.new_empty(branch.shape[0], 1, 1).bernoulli_(keep)
        return branch * mask / keep

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self._residual(self.attn(self.norm1(x)))
        return x + self._residual(self.mlp(self.norm2(x)))


class PatchEmbed(nn.Module):
    def __init__(self, config: MaestConfig):
        super().__init__()
        self.proj = nn.Conv2d(
            1, config.width, kernel_size=config.patch_size, stride=(config.freq_stride, config.time_stride)
        )

    def forward(self, mel: torch.Tensor, every_time: int = 1) -> torch.Tensor:
        """``(B, W, freq rows, time columns)``; ``every_time=T`` computes only every T-th column.

        Column ``j * T`` starts at frame ``j * T * stride``, so a conv with time stride ``T * stride``
        yields exactly the kept columns without computing the dropped ones.
        """
        if every_time == 1:
            return self.proj(mel.unsqueeze(1))
        stride = (self.proj.stride[0], self.proj.stride[1] * every_time)
        return F.conv2d(mel.unsqueeze(1), self.proj.weight, self.proj.bias, stride=stride)


class Maest(nn.Module):
    """MAEST. ``forward`` gives logits; ``forward_features`` gives tokens after the first n blocks.

    Positional encodings are separable by default (``freq_new_pos_embed`` + ``time_new_pos_embed``).
    ``grid_pos_embed=True`` stores one encoding per grid cell instead (``grid_pos_embed``), for
    converted checkpoints whose flat table is not separable.
    """

    def __init__(self, config: MaestConfig, grid_pos_embed: bool = False):
        super().__init__()
        self.config = config
        width, freq_grid, time_grid = config.width, config.freq_grid, config.time_grid
        if config.conv_freq_rows() != freq_grid:
            raise ValueError(
                f"conv yields {config.conv_freq_rows()} frequency rows but {freq_grid} encodings are stored"
            )
        self.patch_embed = PatchEmbed(config)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, width))
        self.dist_token = nn.Parameter(torch.zeros(1, 1, width))
        self.new_pos_embed = nn.Parameter(torch.zeros(1, 2, width))
        if grid_pos_embed:
            self.grid_pos_embed = nn.Parameter(torch.zeros(1, width, freq_grid, time_grid))
        else:
            self.freq_new_pos_embed = nn.Parameter(torch.zeros(1, width, freq_grid, 1))
            self.time_new_pos_embed = nn.Parameter(torch.zeros(1, width, 1, time_grid))
        self.pos_drop = nn.Dropout(config.drop_rate)
        # Stochastic depth grows linearly over blocks; plain Python so the model builds on the meta device.
        rates = [config.drop_path_rate * i / max(config.depth - 1, 1) for i in range(config.depth)]
        self.blocks = nn.ModuleList(Block(config, rate) for rate in rates)
        self.norm = nn.LayerNorm(width, eps=config.layer_norm_eps)
        self.head = nn.Sequential(nn.LayerNorm(width, eps=config.head_norm_eps), nn.Linear(width, config.num_classes))
        # Present in the published checkpoints, unused by their outputs; kept so they round-trip.
        self.head_dist = nn.Linear(width, config.num_classes)
        self.reset_parameters()

    @property
    def has_grid_pos_embed(self) -> bool:
        return hasattr(self, "grid_pos_embed")

    def reset_parameters(self) -> None:
        """Random initialisation (ViT conventions: truncated normal 0.02, zero biases)."""
        for name, param in self.named_parameters():
            if name.endswith("pos_embed") or name.endswith("_token"):
                nn.init.trunc_normal_(param, std=0.02)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def no_weight_decay(self) -> set[str]:
        """Parameters excluded from weight decay: positional encodings and the cls/dist tokens."""
        return {n for n, _ in self.named_parameters() if n.endswith("pos_embed") or n.endswith("_token")}

    # -- input -> token sequence -------------------------------------------------------------
    def _positional_grid(self, columns: int) -> torch.Tensor:
        """Encodings for ``columns`` time columns, ``(1, W, F, columns)``.

        Shorter inputs get a crop of the time encodings rather than an interpolation, as in
        training: the first columns at inference, a random contiguous window while training.
        """
        time_grid = self.config.time_grid
        if columns > time_grid:
            max_frames = (time_grid - 1) * self.config.time_stride + self.config.patch_size
            raise InputTooLongError(
                f"input has {columns} time columns but the model has {time_grid} time encodings "
                f"(at most {max_frames} mel frames); split the audio into segments"
            )
        start = 0
        if self.training and columns < time_grid:
            start = int(torch.randint(0, time_grid - columns + 1, (1,)).item())
        if self.has_grid_pos_embed:
            return self.grid_pos_embed[:, :, :, start : start + columns]
        return self.freq_new_pos_embed + self.time_new_pos_embed[:, :, :, start : start + columns]

    def embed(
        self,
        mel: torch.Tensor,
        patchout_time: int = 1,
        patchout_freq: Sequence[int] = (),
        train_patchout: bool | None = None,
    ) -> torch.Tensor:
        """``(B, n_mels, frames)`` -> token sequence ``(B, 2 + patches, W)`` before the blocks.

        ``patchout_time=T`` keeps every T-th time column and ``patchout_freq`` lists frequency rows
        to drop (inference patchout). ``train_patchout`` (default: ``self.training``) drops the
        config's number of random rows and columns, the same ones for the whole batch.
        """
        if mel.ndim != 3 or mel.shape[1] != self.config.n_mels:
            raise ValueError(f"expected a (batch, {self.config.n_mels}, frames) mel, got {tuple(mel.shape)}")
        if mel.shape[2] < self.config.patch_size:
            raise ValueError(f"input has {mel.shape[2]} frames, fewer than one patch ({self.config.patch_size})")
        if patchout_time < 1:
            raise ValueError(f"patchout_time must be >= 1, got {patchout_time}")
        columns = self.config.conv_time_columns(mel.shape[2])
        x = self.patch_embed(mel, patchout_time)
        x = x + self._positional_grid(columns)[:, :, :, ::patchout_time]
        x = self._drop_freq_rows(x, patchout_freq)
        if self.training if train_patchout is None else train_patchout:
            x = self._structured_patchout(x)
        x = x.flatten(2).transpose(1, 2)  # frequency-major order, as AST flattens its grid
        batch = x.shape[0]
        cls = (self.cls_token + self.new_pos_embed[:, :1]).expand(batch, -1, -1)
        dist = (self.dist_token + self.new_pos_embed[:, 1:]).expand(batch, -1, -1)
        return self.pos_drop(torch.cat([cls, dist, x], dim=1))

    def _drop_freq_rows(self, x: torch.Tensor, drop_freq: Sequence[int]) -> torch.Tensor:
        """Inference frequency patchout: remove the listed rows of the patch grid."""
        if drop_freq:
            rows = x.shape[2]
            bad = [r for r in drop_freq if not -rows <= r < rows]
            if bad:
                raise ValueError(f"frequency rows {bad} out of range for {rows} rows")
            drop = {r % rows for r in drop_freq}
            keep = [r for r in range(rows) if r not in drop]
            if not keep:
                raise ValueError("patchout_freq drops every frequency row")
            x = x[:, :, keep, :]
        return x

    def _structured_patchout(self, x: torch.Tensor) -> torch.Tensor:
        rows, columns = x.shape[2], x.shape[3]
        drop_time, drop_freq = self.config.train_patchout_time, self.config.train_patchout_freq
        if 0 < drop_time < columns:
            keep = torch.randperm(columns, device=x.device)[: columns - drop_time].sort().values
            x = x[:, :, :, keep]
        if 0 < drop_freq < rows:
            keep = torch.randperm(rows, device=x.device)[: rows - drop_freq].sort().values
            x = x[:, :, keep, :]
        return x

    # -- token sequence -> outputs ------------------------------------------------------------
    def forward_intermediates(
        self,
        mel: torch.Tensor,
        blocks: Sequence[int],
        patchout_time: int = 1,
        patchout_freq: Sequence[int] = (),
    ) -> list[torch.Tensor]:
        """Tokens after each of ``blocks`` (0: after the embedding), in the order asked, no final norm.

        One pass that stops at the deepest requested block (timm's ``forward_intermediates``), so a
        block sweep costs one forward, not one per block. The only walker over the blocks.
        """
        depth = self.config.depth
        wanted = [int(b) for b in blocks]
        if not wanted or any(not 0 <= b <= depth for b in wanted):
            raise ValueError(f"blocks must be in 0..{depth}, got {list(blocks)}")
        x = self.embed(mel, patchout_time, patchout_freq)
        taken = {0: x} if 0 in wanted else {}  # only requested ones are kept: no extra activations held
        for index, block in enumerate(self.blocks[: max(wanted)], start=1):
            x = block(x)
            if index in wanted:
                taken[index] = x
        return [taken[b] for b in wanted]

    def forward_features(
        self,
        mel: torch.Tensor,
        blocks: int | None = None,
        patchout_time: int = 1,
        patchout_freq: Sequence[int] = (),
    ) -> torch.Tensor:
        """Tokens after the first ``blocks`` blocks (1-based; default all), no final norm.

        Only those blocks run (early exit). ``blocks=7`` is the paper's "block 7", the original
        code's ``transformer_block=6`` and transformers' ``hidden_states[7]``.
        """
        depth = self.config.depth
        blocks = depth if blocks is None else blocks
        if not 0 <= blocks <= depth:
            raise ValueError(f"blocks must be in 0..{depth}, got {blocks}")
        return self.forward_intermediates(mel, [blocks], patchout_time, patchout_freq)[0]

    def head_features(self, tokens: torch.Tensor) -> torch.Tensor:
        """Final norm, then the mean of the cls and dist tokens: the input of the classifier."""
        x = self.norm(tokens)
        return (x[:, 0] + x[:, 1]) / 2

    def token_logits(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits of the cls token (``head``) and of the dist token (``head_dist``), after the final norm.

        Teacher-student training fits these separately (the original code's "separated" heads);
        ``forward`` keeps the published output, ``head`` on the mean of both tokens.
        """
        x = self.norm(tokens)
        return self.head(x[:, 0]), self.head_dist(x[:, 1])

    def forward(self, mel: torch.Tensor, patchout_time: int = 1, patchout_freq: Sequence[int] = ()) -> torch.Tensor:
        """Logits ``(B, num_classes)``; probabilities are their sigmoid."""
        return self.head(self.head_features(self.forward_features(mel, None, patchout_time, patchout_freq)))


def parse_tokens(spec: str | Sequence[str]) -> tuple[str, ...]:
    """Token names, in order, from the one token syntax every command and function accepts.

    Comma-separated parts, each a name (``cls``, ``dist``, ``avg``) or a run of their first letters
    (``c``, ``d``, ``a``): ``"cls,dist,avg"``, ``"c,d,a"``, ``"cda"`` and ``("cls", "dist", "avg")``
    are the same stack. Names never consist of those letters only, so no spelling is ambiguous.
    """
    letters = {name[0]: name for name in TOKEN_NAMES}
    error = ValueError(f"unknown token spec {spec!r}; use letters c/d/a (e.g. 'cda') or names {TOKEN_NAMES}")
    parts = [p.strip() for p in spec.split(",") if p.strip()] if isinstance(spec, str) else list(spec)
    names: list[str] = []
    for part in parts:
        if isinstance(part, str) and part in TOKEN_NAMES:
            names.append(part)
        elif isinstance(part, str) and part and set(part) <= letters.keys():
            names.extend(letters[letter] for letter in part)
        else:
            raise error
    if not names:
        raise error
    return tuple(names)


def pool_tokens(tokens: torch.Tensor, names: Sequence[str] = TOKEN_NAMES) -> torch.Tensor:
    """Pool a ``(B, 2 + patches, W)`` sequence into ``(B, len(names) * W)``.

    ``cls`` and ``dist`` are the first two tokens, ``avg`` the mean of all patch tokens; they are
    concatenated in the order given (the default stack is MAEST's 2304-dim embedding).
    """
    if isinstance(names, str):
        names = (names,)
    if not names:
        raise ValueError("at least one token name is needed")
    pieces = []
    for name in names:
        if name == "cls":
            pieces.append(tokens[:, 0])
        elif name == "dist":
            pieces.append(tokens[:, 1])
        elif name == "avg":
            pieces.append(tokens[:, 2:].mean(dim=1))
        else:
            raise ValueError(f"unknown token {name!r}; choose from {TOKEN_NAMES}")
    return torch.cat(pieces, dim=-1)
