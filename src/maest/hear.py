"""HEAR API (Turian et al., 2022): ``load_model``, ``get_scene_embeddings``, ``get_timestamp_embeddings``.

Timestamp embeddings are MAEST's patch columns: after ``blocks`` blocks, the patch tokens of one
time column are averaged over the frequency rows (``width`` dims). A column covers 16 mel frames
and columns are 10 frames apart, so the hop is 10 x 256 samples = 160 ms at 16 kHz, and column
``k`` is centred at ``160 k + 120`` ms. Long audio runs in windows of the model's segment length
that start on column boundaries (no overlap, no gap), cut from one whole-clip mel. The scene
embedding is the mean of the timestamp embeddings over time.
"""

from __future__ import annotations

import torch
from torch import nn

from maest import frontend
from maest.model import Maest

DEFAULT_MODEL = "discogs-maest-30s-pw-129e"


class HearInputError(ValueError):
    """The audio tensor is not ``(n_sounds, n_samples)`` float at 16 kHz."""


class HearModel(nn.Module):
    """A MAEST model, its frontend and the HEAR attributes (sample rate, embedding sizes)."""

    sample_rate = frontend.SAMPLE_RATE

    def __init__(self, model: Maest, blocks: int | None = None, batch_size: int = 16):
        super().__init__()
        config = model.config
        self.model = model.eval()
        # On the model's device: column_embeddings moves the audio there before the mel.
        device = next(model.parameters()).device
        self.frontend = frontend.MelFrontend(mean=config.norm_mean, std=config.norm_std).to(device)
        self.blocks = min(7, config.depth) if blocks is None else int(blocks)
        if not 1 <= self.blocks <= config.depth:
            raise ValueError(f"blocks must be in 1..{config.depth}, got {self.blocks}")
        self.batch_size = batch_size
        self.scene_embedding_size = config.width
        self.timestamp_embedding_size = config.width
        self.hop_frames = config.time_stride
        self.hop_ms = 1000.0 * config.time_stride * frontend.HOP_SIZE / frontend.SAMPLE_RATE
        # Centre of column 0: frames 0..15 are centred on samples 0, 256, ..., so the middle is frame 7.5.
        self.first_centre_ms = 1000.0 * (config.patch_size - 1) / 2 * frontend.HOP_SIZE / frontend.SAMPLE_RATE

    def columns(self, frames: int) -> int:
        """Time columns (timestamps) for a mel of ``frames`` frames (at least one patch)."""
        config = self.model.config
        return (max(frames, config.patch_size) - config.patch_size) // config.time_stride + 1

    @torch.inference_mode()
    def column_embeddings(self, audio: torch.Tensor) -> torch.Tensor:
        """``(n, samples)`` -> ``(n, columns, width)``, frequency-averaged patch tokens per time column."""
        config = self.model.config
        device = next(self.model.parameters()).device
        audio = audio.to(device=device, dtype=torch.float32)
        min_samples = frontend.samples_for_frames(config.patch_size)
        if audio.shape[1] < min_samples:  # shorter than one patch: pad with silence
            audio = nn.functional.pad(audio, (0, min_samples - audio.shape[1]))
        mel = self.frontend.to(device)(audio)  # no-op unless only the inner model was moved
        frames = mel.shape[-1]
        per_window = self.columns(config.segment_frames)
        total = self.columns(frames)
        pieces = []
        for first in range(0, total, per_window):  # windows start on column boundaries
            start = first * config.time_stride
            window = mel[:, :, start : min(start + config.segment_frames, frames)]
            tokens = self.model.forward_features(window, self.blocks)[:, 2:]
            rows = config.conv_freq_rows()
            cols = tokens.shape[1] // rows
            # Patch tokens are flattened frequency-major: index = row * columns + column.
            grid = tokens.reshape(tokens.shape[0], rows, cols, -1)
            pieces.append(grid.mean(dim=1)[:, : min(cols, total - first)])
        return torch.cat(pieces, dim=1)

    def timestamps_ms(self, n_columns: int, device: torch.device | None = None) -> torch.Tensor:
        return self.first_centre_ms + self.hop_ms * torch.arange(n_columns, dtype=torch.float32, device=device)


def load_model(model_file_path: str = "", **kwargs) -> HearModel:
    """A HEAR model from a checkpoint path or registry name (default: the 30 s Discogs MAEST).

    Keyword options: ``blocks`` (default 7, or the depth if smaller), ``batch_size`` (sounds per
    forward pass), ``device`` (default: CUDA if available).
    """
    from maest.inference import load_model as load_pipeline

    device = kwargs.pop("device", None)
    pipeline = load_pipeline(model_file_path or DEFAULT_MODEL, device=device)
    return HearModel(pipeline.model, **kwargs)


def _check_audio(audio: torch.Tensor, model: HearModel) -> None:
    if not isinstance(audio, torch.Tensor) or audio.ndim != 2 or not audio.is_floating_point():
        raise HearInputError(f"expected a float tensor (n_sounds, n_samples) at {model.sample_rate} Hz")
    if audio.shape[1] == 0:
        raise HearInputError("audio has no samples")


def get_timestamp_embeddings(audio: torch.Tensor, model: HearModel) -> tuple[torch.Tensor, torch.Tensor]:
    """``(n_sounds, n_samples)`` -> embeddings ``(n_sounds, n_timestamps, width)`` and centres in ms ``(n_sounds, n_timestamps)``."""
    _check_audio(audio, model)
    pieces = [model.column_embeddings(audio[i : i + model.batch_size]) for i in range(0, audio.shape[0], model.batch_size)]
    embeddings = torch.cat(pieces).to(audio.device)
    timestamps = model.timestamps_ms(embeddings.shape[1], audio.device).expand(audio.shape[0], -1).contiguous()
    return embeddings, timestamps


def get_scene_embeddings(audio: torch.Tensor, model: HearModel) -> torch.Tensor:
    """``(n_sounds, n_samples)`` -> ``(n_sounds, width)``: the timestamp embeddings averaged over time."""
    embeddings, _ = get_timestamp_embeddings(audio, model)
    return embeddings.mean(dim=1)
