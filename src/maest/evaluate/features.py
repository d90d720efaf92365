"""Track embeddings for many (block, token) choices from ONE forward pass per segment, cached on disk.

The block sweep (paper's Figure 2) needs cls/dist/avg after every block 5..12: running the model
once per block would cost ~8x. Here each segment runs once up to the deepest requested block
(:meth:`maest.model.Maest.forward_intermediates`, through :meth:`MaestPipeline.block_features` and
the batching core); a track's file holds ``(blocks, 3, width)`` float32, the mean over its
half-overlapping segments (the same segmenting as :mod:`maest.inference`, under either segment rule).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from maest.atomic import atomic_write, atomic_write_text
from maest.decode import DecodeFailure, decode_all
from maest.failures import FAILURES_FILE, write_failures
from maest.inference import EmbedOptions, MaestPipeline
from maest.model import TOKEN_NAMES, parse_tokens  # noqa: F401  parse_tokens: importable here as before


class FeatureCacheError(RuntimeError):
    """A feature cache folder was written with different settings, or a track's features are absent."""


def token_letters(names: Sequence[str]) -> str:
    return "".join(n[0] for n in names)


def precision_key(precision: str) -> str:
    """Suffix of cache folder names for an inference precision: "" for fp32 (names made before the
    option stay valid), else ``-bf16`` / ``-fp16``, so caches made on a GPU and on a CPU never meet."""
    return "" if precision == "fp32" else f"-{precision}"


def segments_key(rule: str) -> str:
    """Suffix of cache folder names and keys for a segment rule: "" for "maest" (names made before the
    rule was an option stay valid), ``-original`` for the original code's rule."""
    return "" if rule == "maest" else f"-{rule}"


@dataclass
class FeatureSet:
    """Where a cache lives and what it holds: ``blocks`` x (cls, dist, avg) x ``width`` per track."""

    directory: Path
    blocks: list[int]
    width: int

    def file_for(self, rel_path: str) -> Path:
        return self.directory / (rel_path + ".npy")

    def load(self, rel_paths: Sequence[str], block: int, tokens: Sequence[str]) -> np.ndarray:
        """``(N, len(tokens) * width)`` matrix of the given block and token stack."""
        if block not in self.blocks:
            raise FeatureCacheError(f"block {block} not cached (have {self.blocks})")
        b = self.blocks.index(block)
        t = [TOKEN_NAMES.index(name) for name in tokens]
        out = np.empty((len(rel_paths), len(t) * self.width), np.float32)
        for i, rel in enumerate(rel_paths):
            path = self.file_for(rel)
            if not path.is_file():
                raise FeatureCacheError(f"no features for {rel} in {self.directory}")
            out[i] = np.load(path, mmap_mode="r")[b, t].reshape(-1)
        return out


def extract_features(
    pipeline: MaestPipeline,
    rel_paths: Sequence[str],
    audio_root: str | os.PathLike,
    cache_dir: str | os.PathLike,
    blocks: Sequence[int],
    patchout_time: int = 1,
    patchout_freq: Sequence[int] = (),
    overlap: float = 0.5,
    batch_size: int | None = None,
    progress: bool = True,
    segments: str = "maest",
) -> tuple[FeatureSet, dict[str, str]]:
    """Write ``cache_dir/<rel>.npy`` per track, skipping those already there (a rerun resumes).

    Returns the feature set and ``{rel_path: reason}`` for tracks that could not be decoded (also
    merged into ``failures.tsv`` of the cache); nothing else is dropped. ``segments`` is the segment
    rule; a cache records it (when not "maest") and is refused to a run with the other rule.
    """
    from tqdm.auto import tqdm

    cache = Path(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    blocks = sorted(set(int(b) for b in blocks))
    settings = {"blocks": blocks, "patchout_time": patchout_time, "patchout_freq": sorted(int(r) for r in patchout_freq),
                "overlap": overlap, "width": pipeline.config.width, "model": pipeline.config.name}
    if segments != "maest":  # caches of the maest rule keep the settings they were written with
        settings["segments"] = segments
    meta_path = cache / "features.json"
    if meta_path.is_file():
        stored = json.loads(meta_path.read_text())
        if stored != settings:
            raise FeatureCacheError(f"{cache} holds features made with {stored}, not {settings}: use another folder")
    else:
        atomic_write_text(meta_path, json.dumps(settings, indent=2))
    features = FeatureSet(cache, blocks, pipeline.config.width)
    root = Path(audio_root)
    todo = [rel for rel in dict.fromkeys(rel_paths) if not features.file_for(rel).is_file()]
    failures: dict[str, str] = {}
    options = EmbedOptions(blocks=blocks[-1], patchout_time=patchout_time, patchout_freq=tuple(patchout_freq), overlap=overlap,
                           segments=segments)
    batcher = pipeline.batcher(pipeline.block_features(blocks, options), options, batch_size)
    bar = tqdm(total=len(todo), desc="features", unit="track", disable=not progress)

    def tracks() -> Iterator[tuple[str, torch.Tensor, float]]:
        for index, decoded in decode_all([root / rel for rel in todo], pipeline.decoder):
            if isinstance(decoded, DecodeFailure):
                failures[todo[index]] = decoded.reason
                bar.update()
            else:
                yield todo[index], decoded.mel, decoded.duration

    for rel, result in batcher.run(tracks()):
        array = result.track.reshape(len(blocks), len(TOKEN_NAMES), -1)
        atomic_write(features.file_for(rel), lambda f: np.save(f, array))
        bar.update()
    bar.close()
    write_failures(cache / FAILURES_FILE, failures, merge=True, resolved=todo)
    return features, failures
