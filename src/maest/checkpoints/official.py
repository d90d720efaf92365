"""The original MAEST code's checkpoints: plain state dicts and PyTorch Lightning files.

Key names equal maest's parameter names; Lightning files nest them under ``state_dict`` with a
module prefix (``net.``), plus an SWA-averaged copy (``net_swa.``) when SWA was used.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch

from maest.checkpoints.files import only_tensors, read_file
from maest.checkpoints.errors import CheckpointError
from maest.checkpoints.native import load_state_dict_strict
from maest.checkpoints.networks import Network, network_from_config
from maest.configs import SEGMENT_FRAMES, TRAIN_PATCHOUT_TIME, ConfigValueError, MaestConfig
from maest.model import Maest
from maest.registry import discogs_labels

TRAINING_NETWORK_KEY = "maest_network"  # written by maest.train.module.MaestTraining
SWA_SNAPSHOTS_KEY = "swa_snapshots"  # maest train's count of snapshots averaged into net_swa
ANCHOR = "cls_token"  # every network copy has exactly one; its prefix names the copy
HEAD_DIM = 64  # ViT convention; heads cannot be read from shapes
KNOWN_MELS = {9: 96, 12: 128}  # frequency rows -> mel bands (MAEST, PaSST)


def select_network(state: dict[str, torch.Tensor], swa: bool = True) -> dict[str, torch.Tensor]:
    """One network's weights, prefix stripped: the SWA copy if ``swa`` and present, else the plain one.

    Keys outside the chosen copy (e.g. a frontend's buffers in a Lightning module) are dropped.
    """
    swa = swa and not _no_average_yet(state)
    prefixes = sorted(k[: -len(ANCHOR)] for k in state if k == ANCHOR or k.endswith("." + ANCHOR))
    if not prefixes:
        raise CheckpointError(f"no '{ANCHOR}' key: not a MAEST/PaSST/DeiT state dict (keys: {sorted(state)[:5]} ...)")
    averaged = [p for p in prefixes if "swa" in p.lower()]
    plain = [p for p in prefixes if p not in averaged]
    pool = averaged if swa and averaged else plain
    if len(pool) != 1:
        kind = "SWA" if pool is averaged else "plain"
        raise CheckpointError(f"expected one {kind} network copy, found prefixes {pool or prefixes}")
    prefix = pool[0]
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def _no_average_yet(state: dict[str, torch.Tensor]) -> bool:
    """``maest train`` keeps an SWA copy from the start; until its first snapshot it holds the initial weights."""
    snapshots = state.get(SWA_SNAPSHOTS_KEY)
    return snapshots is not None and int(snapshots) == 0


def infer_config(state: dict[str, torch.Tensor], heads: int | None = None) -> MaestConfig:
    """The MaestConfig whose parameters have the shapes in ``state`` (heads: width // 64 unless given)."""
    try:
        width = state["cls_token"].shape[-1]
        depth = len({m.group(1) for k in state if (m := re.match(r"blocks\.(\d+)\.", k))})
        hidden = state["blocks.0.mlp.fc1.weight"].shape[0]
        freq_grid = state["freq_new_pos_embed"].shape[2]
        time_grid = state["time_new_pos_embed"].shape[3]
        num_classes = state["head.1.weight"].shape[0]
        patch = state["patch_embed.proj.weight"].shape[-1]
    except KeyError as error:
        raise CheckpointError(f"cannot infer the architecture: missing {error}") from error
    stride = MaestConfig.time_stride  # dataclass defaults (10): the published models' strides
    frames = next((f for f in SEGMENT_FRAMES.values() if f // stride == time_grid), time_grid * stride)
    seconds = next((s for s, f in SEGMENT_FRAMES.items() if f == frames), None)
    try:
        return _inferred(depth, width, heads, hidden, freq_grid, frames, patch, num_classes, seconds)
    except ConfigValueError as error:
        raise CheckpointError(f"the tensor shapes give no valid architecture: {error}") from error


def _inferred(depth, width, heads, hidden, freq_grid, frames, patch, num_classes, seconds) -> MaestConfig:
    return MaestConfig(
        depth=depth,
        width=width,
        heads=heads or max(1, width // HEAD_DIM),
        mlp_ratio=hidden / width,
        n_mels=KNOWN_MELS.get(freq_grid, freq_grid * MaestConfig.freq_stride + patch - MaestConfig.freq_stride),
        segment_frames=frames,
        patch_size=patch,
        num_classes=num_classes,
        train_patchout_time=TRAIN_PATCHOUT_TIME.get(seconds, 0),
        labels=list(discogs_labels(num_classes)) if num_classes in (400, 519) else None,
    )


def load_official(
    path: str | os.PathLike, swa: bool = True, map_location: str | torch.device = "cpu", heads: int | None = None
) -> Network:
    """A network from an original-code checkpoint (plain state dict or Lightning file).

    A Lightning file written by ``maest train`` carries its network's type and config
    (``maest_network``): they are used as is (an EffNet baseline comes back as an ``EffNet``);
    otherwise the file is a MAEST whose architecture is inferred from the tensor shapes.
    """
    data = read_file(path, map_location)
    network = data.get(TRAINING_NETWORK_KEY)
    state = data["state_dict"] if isinstance(data.get("state_dict"), dict) else data
    swa = swa and not _no_average_yet(state)
    if isinstance(network, dict):
        kind = network.get("type", "maest")
        if kind == "maest":
            state = select_network(state, swa)
        else:  # no cls_token to anchor on: MaestTraining's own prefixes
            state = _strip_prefix(state, "net_swa." if swa and any(k.startswith("net_swa.") for k in state) else "net.")
        model = network_from_config(kind, network.get("config"), f"{path} ({TRAINING_NETWORK_KEY})")
    else:
        state = select_network(state, swa)
        model = Maest(infer_config(only_tensors(state, str(path)), heads))
    load_state_dict_strict(model, only_tensors(state, str(path)), str(path))
    return model


def _strip_prefix(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def to_official(model: Maest) -> dict[str, torch.Tensor]:
    """The original layout (159 tensors for ViT-B); needs separable encodings."""
    if model.has_grid_pos_embed:
        raise CheckpointError("the original format stores separable encodings; this model has a flat grid")
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def save_official(model: Maest, path: str | os.PathLike) -> Path:
    """Write ``to_official(model)`` with ``torch.save`` (loadable by the original MAEST code)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(to_official(model), path)
    return path
