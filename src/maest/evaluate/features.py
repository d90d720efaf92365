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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from maest.atomic import atomic_write, atomic_write_text
from maest.extraction.files import AudioItem
from maest.extraction.tracks import process
from maest.failures import FAILURES_FILE, write_failures
from maest.inference import MaestPipeline
from maest.model import TOKEN_NAMES, parse_tokens  # noqa: F401  parse_tokens: importable here as before
from maest.spec import EmbeddingSpec, SpecMismatchError
from maest.spec import token_letters  # noqa: F401  (importable here as before)


class FeatureCacheError(RuntimeError):
    """A feature cache folder was written with different settings, or a track's features are absent."""


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


def _stored_spec(stored: dict) -> EmbeddingSpec:
    """The spec a ``features.json`` records (caches made before it recorded one: their options, the
    historic precision fp32 and resampler essentia, weights unknown)."""
    if "embedding" in stored:
        return EmbeddingSpec.from_dict(stored["embedding"])
    return EmbeddingSpec.from_dict({"blocks": max(stored["blocks"]), "patchout_time": stored["patchout_time"],
                                    "patchout_freq": stored["patchout_freq"], "overlap": stored["overlap"],
                                    "segments": stored.get("segments", "maest")})


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
    resampler: str | None = None,
) -> tuple[FeatureSet, dict[str, str]]:
    """Write ``cache_dir/<rel>.npy`` per track, skipping those already there (a rerun resumes).

    Returns the feature set and ``{rel_path: reason}`` for tracks that could not be decoded or whose
    features hold NaN/inf (also merged into ``failures.tsv`` of the cache; such features are never
    written); nothing else is dropped. The cache records its spec (weights, precision, resampler,
    segment rule...) in ``features.json`` and is refused to a run with another, naming the field.
    """
    from tqdm.auto import tqdm

    cache = Path(cache_dir)
    blocks = sorted(set(int(b) for b in blocks))
    spec = pipeline.spec(blocks=blocks[-1], patchout_time=patchout_time, patchout_freq=tuple(patchout_freq),
                         overlap=overlap, segments=segments, resampler=resampler)
    run_batch = pipeline.block_features(blocks, spec)  # checks the blocks before the cache is touched
    cache.mkdir(parents=True, exist_ok=True)
    settings = {"blocks": blocks, "width": pipeline.config.width, "model": pipeline.config.name,
                "embedding": spec.to_dict()}
    meta_path = cache / "features.json"
    if meta_path.is_file():
        stored = json.loads(meta_path.read_text())
        layout = [f"{k} ({stored.get(k)!r} vs {settings[k]!r})" for k in ("blocks", "width", "model")
                  if stored.get(k) != settings[k]]
        if layout:
            raise FeatureCacheError(f"{cache} holds features made with other settings (differs in: "
                                    f"{'; '.join(layout)}): use another folder")
        try:
            _stored_spec(stored).check_matches(spec, f"{cache} holds features made with another spec",
                                               "use another folder")
        except SpecMismatchError as error:
            raise FeatureCacheError(str(error)) from None
        if "embedding" not in stored:  # a cache from before the spec: from now on it is guarded
            atomic_write_text(meta_path, json.dumps(settings, indent=2))
    else:
        atomic_write_text(meta_path, json.dumps(settings, indent=2))
    features = FeatureSet(cache, blocks, pipeline.config.width)
    root = Path(audio_root)
    todo = [rel for rel in dict.fromkeys(rel_paths) if not features.file_for(rel).is_file()]
    failures: dict[str, str] = {}
    batcher = pipeline.batcher(run_batch, spec, batch_size)
    items = [AudioItem(root / rel, rel) for rel in todo]
    with tqdm(total=len(todo), desc="features", unit="track", disable=not progress) as bar:
        # the extraction loop: decode failures and NaN/inf mels or outputs come back as reasons
        for item, result, reason in process(items, batcher, pipeline.decoder_for(spec.resampler)):
            if reason is not None:
                failures[item.key] = reason
            else:
                array = result.track.reshape(len(blocks), len(TOKEN_NAMES), -1)
                atomic_write(features.file_for(item.key), lambda f: np.save(f, array))
            bar.update()
    write_failures(cache / FAILURES_FILE, failures, merge=True, resolved=todo)
    return features, failures
