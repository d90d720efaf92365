"""Hugging Face ``ASTForAudioClassification`` format (the mtg-upf/discogs-maest-* repositories).

AST stores one flat position table ``(1, 2 + F*T, W)`` and separate query/key/value matrices;
maest stores separable (frequency, time) encodings and one fused qkv matrix. Both transformers
4.x key names (``encoder.layer.{i}.attention.attention.query``) and 5.x names
(``layers.{i}.attention.q_proj``) are read; 4.x names are written (both versions load them).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Literal

import torch

from maest.checkpoints.files import only_tensors, read_file
from maest.checkpoints.errors import CheckpointError
from maest.checkpoints.native import load_state_dict_strict
from maest.checkpoints.posenc import NotSeparableError, split_separable
from maest.configs import SEGMENT_FRAMES, TRAIN_PATCHOUT_TIME, MaestConfig
from maest.model import Maest

KeyNames = Literal["v4", "v5"]
MODEL_TYPE = "audio-spectrogram-transformer"
CONFIG_FILE = "config.json"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
BASE = "audio_spectrogram_transformer."
EMB = BASE + "embeddings."
LAYER_PREFIX = {"v4": BASE + "encoder.layer.{i}.", "v5": BASE + "layers.{i}."}
QKV = {
    "v4": ("attention.attention.query", "attention.attention.key", "attention.attention.value"),
    "v5": ("attention.q_proj", "attention.k_proj", "attention.v_proj"),
}
# maest block module -> AST layer module, per key style
LAYER = {
    "norm1": {"v4": "layernorm_before", "v5": "layernorm_before"},
    "norm2": {"v4": "layernorm_after", "v5": "layernorm_after"},
    "attn.proj": {"v4": "attention.output.dense", "v5": "attention.o_proj"},
    "mlp.fc1": {"v4": "intermediate.dense", "v5": "mlp.fc1"},
    "mlp.fc2": {"v4": "output.dense", "v5": "mlp.fc2"},
}
# maest parameter -> AST parameter, outside the layers
TOP = {
    "cls_token": EMB + "cls_token",
    "dist_token": EMB + "distillation_token",
    "patch_embed.proj.weight": EMB + "patch_embeddings.projection.weight",
    "patch_embed.proj.bias": EMB + "patch_embeddings.projection.bias",
    "norm.weight": BASE + "layernorm.weight",
    "norm.bias": BASE + "layernorm.bias",
    "head.0.weight": "classifier.layernorm.weight",
    "head.0.bias": "classifier.layernorm.bias",
    "head.1.weight": "classifier.dense.weight",
    "head.1.bias": "classifier.dense.bias",
}
POSITIONS = EMB + "position_embeddings"


def key_style(state: dict[str, torch.Tensor]) -> KeyNames:
    """``v4`` or ``v5``: which transformers version's key names ``state`` uses."""
    return "v4" if any(".encoder.layer." in k for k in state) else "v5"


def max_length(config: MaestConfig) -> int:
    """AST's ``max_length``: the frames whose conv yields exactly ``time_grid`` columns (1876 for 30 s)."""
    return (config.time_grid - 1) * config.time_stride + config.patch_size


def config_from_hf(hf: dict) -> MaestConfig:
    """The MaestConfig of an ASTConfig dict (config.json)."""
    if hf.get("hidden_act", "gelu") != "gelu":
        raise CheckpointError(f"activation {hf['hidden_act']!r} is not supported (maest uses exact GELU)")
    patch, time_stride = hf.get("patch_size", 16), hf.get("time_stride", 10)
    time_grid = (hf["max_length"] - patch) // time_stride + 1
    frames = next((f for f in SEGMENT_FRAMES.values() if f // time_stride == time_grid), time_grid * time_stride)
    seconds = next((s for s, f in SEGMENT_FRAMES.items() if f == frames), None)
    id2label = hf.get("id2label") or {}
    labels = [id2label[k] for k in sorted(id2label, key=int)]
    if all(re.fullmatch(r"LABEL_\d+", label) for label in labels):
        labels = []
    return MaestConfig(
        depth=hf["num_hidden_layers"],
        width=hf["hidden_size"],
        heads=hf["num_attention_heads"],
        mlp_ratio=hf["intermediate_size"] / hf["hidden_size"],
        qkv_bias=hf.get("qkv_bias", True),
        layer_norm_eps=hf.get("layer_norm_eps", 1e-12),
        head_norm_eps=hf.get("layer_norm_eps", 1e-12),  # AST's classifier norm shares the blocks' eps
        n_mels=hf["num_mel_bins"],
        segment_frames=frames,
        patch_size=patch,
        freq_stride=hf.get("frequency_stride", 10),
        time_stride=time_stride,
        num_classes=len(id2label) or hf.get("num_labels", 2),
        train_patchout_time=TRAIN_PATCHOUT_TIME.get(seconds, 0),
        labels=labels or None,
    )


def hf_config(config: MaestConfig) -> dict:
    """The ASTConfig dict (config.json) equivalent to ``config``."""
    labels = config.labels or [f"LABEL_{i}" for i in range(config.num_classes)]
    return {
        "architectures": ["ASTForAudioClassification"],
        "model_type": MODEL_TYPE,
        "num_mel_bins": config.n_mels,
        "max_length": max_length(config),
        "patch_size": config.patch_size,
        "frequency_stride": config.freq_stride,
        "time_stride": config.time_stride,
        "hidden_size": config.width,
        "num_hidden_layers": config.depth,
        "num_attention_heads": config.heads,
        "intermediate_size": int(config.width * config.mlp_ratio),
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0,
        "layer_norm_eps": config.layer_norm_eps,
        "qkv_bias": config.qkv_bias,
        "id2label": {str(i): name for i, name in enumerate(labels)},
        "label2id": {name: i for i, name in enumerate(labels)},
    }


def hf_to_maest(state: dict[str, torch.Tensor], config: MaestConfig, rtol: float = 1e-5) -> dict[str, torch.Tensor]:
    """AST weights -> maest state dict; a non-separable position table becomes ``grid_pos_embed``.

    Heads of the result: ``head_dist`` (absent from AST, unused by MAEST's outputs) is zero.
    """
    state = dict(state)
    style = key_style(state)

    def take(key: str) -> torch.Tensor:
        if key not in state:
            raise CheckpointError(f"AST state dict lacks {key!r} (key names {style})")
        return state.pop(key)

    out = {ours: take(theirs) for ours, theirs in TOP.items()}
    for i in range(config.depth):
        prefix = LAYER_PREFIX[style].format(i=i)
        for ours, theirs in LAYER.items():
            for kind in ("weight", "bias"):
                out[f"blocks.{i}.{ours}.{kind}"] = take(f"{prefix}{theirs[style]}.{kind}")
        for kind in ("weight", "bias"):
            out[f"blocks.{i}.attn.qkv.{kind}"] = torch.cat([take(f"{prefix}{name}.{kind}") for name in QKV[style]])
    positions = take(POSITIONS)
    if state:
        raise CheckpointError(f"unexpected AST keys {sorted(state)[:8]} (config has depth {config.depth})")
    rows, columns, width = config.freq_grid, config.time_grid, config.width
    if tuple(positions.shape) != (1, 2 + rows * columns, width):
        raise CheckpointError(
            f"position table {tuple(positions.shape)} does not fit a {rows}x{columns} grid of width {width}"
        )
    out["new_pos_embed"] = positions[:, :2].clone()
    # AST flattens its patch grid frequency-major: index 2 + f * T + t.
    grid = positions[:, 2:].transpose(1, 2).reshape(1, width, rows, columns)
    try:
        out["freq_new_pos_embed"], out["time_new_pos_embed"] = split_separable(grid, rtol)
    except NotSeparableError:
        out["grid_pos_embed"] = grid.contiguous()
    out["head_dist.weight"] = torch.zeros_like(out["head.1.weight"])
    out["head_dist.bias"] = torch.zeros_like(out["head.1.bias"])
    return out


def maest_to_hf(
    state: dict[str, torch.Tensor], config: MaestConfig, key_names: KeyNames = "v4"
) -> dict[str, torch.Tensor]:
    """maest state dict -> AST weights (``head_dist`` is dropped: AST has none)."""
    out = {theirs: state[ours] for ours, theirs in TOP.items()}
    for i in range(config.depth):
        prefix = LAYER_PREFIX[key_names].format(i=i)
        for ours, theirs in LAYER.items():
            for kind in ("weight", "bias"):
                out[f"{prefix}{theirs[key_names]}.{kind}"] = state[f"blocks.{i}.{ours}.{kind}"]
        for kind in ("weight", "bias"):
            for name, part in zip(QKV[key_names], state[f"blocks.{i}.attn.qkv.{kind}"].chunk(3)):
                out[f"{prefix}{name}.{kind}"] = part
    if "grid_pos_embed" in state:
        grid = state["grid_pos_embed"]
    else:
        grid = state["freq_new_pos_embed"] + state["time_new_pos_embed"]
    flat = grid.flatten(2).transpose(1, 2)  # (1, F*T, W), frequency-major
    out[POSITIONS] = torch.cat([state["new_pos_embed"], flat], dim=1)
    return {k: v.detach().cpu().contiguous().clone() for k, v in out.items()}


def export_hf(model: Maest, folder: str | os.PathLike, key_names: KeyNames = "v4") -> Path:
    """Write a folder that ``ASTForAudioClassification.from_pretrained(folder)`` loads.

    Outputs are equal on full-length input (``max_length`` frames, shaped ``(batch, time, mel)``);
    AST's head LayerNorm uses ``layer_norm_eps``, so logits differ (~1e-5 relative) where
    ``config.head_norm_eps`` differs from it (1e-5 in the original MAEST checkpoints).
    """
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    weights = maest_to_hf(model.state_dict(), model.config, key_names)
    save_file(weights, str(folder / WEIGHT_FILES[0]), metadata={"format": "pt"})
    (folder / CONFIG_FILE).write_text(json.dumps(hf_config(model.config), indent=2))
    return folder


def is_hf(path: str | os.PathLike) -> bool:
    """Whether ``path`` is an AST folder, or a weights file with an AST config.json beside it."""
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    config = folder / CONFIG_FILE
    if not config.is_file():
        return False
    try:
        return json.loads(config.read_text()).get("model_type") == MODEL_TYPE
    except (json.JSONDecodeError, AttributeError):
        return False


def _read_config(path: Path) -> dict:
    try:
        hf = json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{path} is not valid JSON ({error})") from error
    if not isinstance(hf, dict):
        raise CheckpointError(f"{path} holds a JSON {type(hf).__name__}, not an AST config object")
    return hf


def load_hf(path: str | os.PathLike, map_location: str | torch.device = "cpu", rtol: float = 1e-5) -> Maest:
    """A Maest from a local AST folder (config.json + model.safetensors or pytorch_model.bin)."""
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    if not (folder / CONFIG_FILE).is_file():
        raise CheckpointError(f"{folder} has no {CONFIG_FILE}; an AST checkpoint needs its config")
    hf = _read_config(folder / CONFIG_FILE)
    if hf.get("model_type") != MODEL_TYPE:
        raise CheckpointError(f"{folder / CONFIG_FILE}: model_type {hf.get('model_type')!r}, expected {MODEL_TYPE!r}")
    if path.is_dir():
        weights = next((folder / name for name in WEIGHT_FILES if (folder / name).is_file()), None)
        if weights is None:
            raise CheckpointError(f"{folder} has none of {WEIGHT_FILES}")
    else:
        weights = path
    try:
        config = config_from_hf(hf)
    except (KeyError, TypeError, ValueError, ZeroDivisionError) as error:  # ConfigValueError is a ValueError
        what = f"missing field {error}" if isinstance(error, KeyError) else str(error)
        raise CheckpointError(f"{folder / CONFIG_FILE}: not a valid AST config: {what}") from error
    state = hf_to_maest(only_tensors(read_file(weights, map_location), str(weights)), config, rtol)
    model = Maest(config, grid_pos_embed="grid_pos_embed" in state)
    load_state_dict_strict(model, state, str(weights))
    return model
