"""The Ray engine: a second driver over the local engine's decode, batching, sinks and resume.

:func:`embed_dataset` builds the lazy pipeline (paths -> decode + mel in CPU tasks -> segments
batched across tracks in model actors) for users who live in Ray; :func:`extract_ray` runs it into
an output folder through :func:`maest.extraction.extract`, whose settings check, resume, sinks,
failures file and summary it shares: only the engine that computes the tracks differs.

Writes happen on the driver, through the same sinks, from Ray's output stream: one writer, so a
parquet table never gets a row twice, and a track that a retried task emits again is written once.
"""

from __future__ import annotations

import copy
import os
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from maest.batching import TrackResult
from maest.distributed.stages import TrackEmbedder, decode_batch, table_results
from maest.extraction.errors import ExtractError, MissingDependencyError
from maest.extraction.files import AudioItem
from maest.extraction.run import ExtractSummary, TrackEngine, extract
from maest.extraction.sinks import Format
from maest.inference import PRECISIONS, EmbedOptions, MaestPipeline, load_model, resolve_precision
from maest.model import TOKEN_NAMES

TRACKS_PER_BLOCK = 16  # input paths per Ray block: small, so decode tasks spread over the CPUs
TRACKS_PER_CALL = 8  # decoded tracks per actor call: their segments are batched together (a 4-min track
# has 15 segments, so 8 tracks fill batches of 8-32); it also bounds an actor's input to 8 mels (<= 8 x 43 MB)
ACTOR_DECODE_SECONDS = 1800.0  # longer tracks are decoded in the actor, not shipped as mel


class RayEngineError(ExtractError):
    """The Ray engine cannot run (Ray missing, no GPU where one was asked for, a track lost)."""


def _ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise MissingDependencyError("--engine ray needs Ray Data: pip install 'maest[ray]'") from None
    return ray


def connect(address: str | None = None) -> None:
    """Join the Ray cluster at ``address`` ("auto": the one ``ray start`` made here; None: the current
    one, else a new local cluster of this machine), unless this process is already connected."""
    ray = _ray()
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False if address is None else None,
                 log_to_driver=False, ignore_reinit_error=True)


def _actor_device(device: str | None) -> str:
    """``cuda`` when the cluster has GPUs (or ``device`` asks for them), else ``cpu``."""
    ray = _ray()
    gpus = ray.cluster_resources().get("GPU", 0)
    if device is not None and device.startswith("cuda"):
        if not gpus:
            raise RayEngineError("--device cuda: the Ray cluster has no GPU; use --device cpu or add GPU nodes")
        return "cuda"
    if device not in (None, "cpu"):
        raise RayEngineError(f"the Ray engine runs on cpu or cuda actors, not on {device!r}")
    return "cuda" if gpus and device is None else "cpu"


def default_precision(precision: str | None, device: str) -> str:
    """The precision the actors run at; on GPU actors the default is bf16 (the driver may have no GPU
    to ask): pass fp16 for GPUs without bf16."""
    if precision is None and device == "cuda":
        return "bf16"
    if device == "cuda":
        return precision if precision in PRECISIONS else resolve_precision(precision, "cuda")  # raises
    return resolve_precision(precision, "cpu")


def _shipped_model(pipeline: MaestPipeline):
    """The pipeline's float weights on the CPU, put once into the object store for every actor."""
    model = pipeline.model
    if pipeline.device.type != "cpu":
        model = copy.deepcopy(model).cpu()
    return _ray().put(model)


def _pipeline(model: str | os.PathLike | MaestPipeline | Any, precision: str, batch_size: int) -> MaestPipeline:
    if isinstance(model, MaestPipeline):
        return model
    return load_model(model, "cpu", batch_size, precision)


def embed_stages(dataset, pipeline: MaestPipeline, options: EmbedOptions, *, precision: str, device: str,
                 batch_size: int = 8, concurrency: int = 1, tracks_per_call: int = TRACKS_PER_CALL,
                 actor_decode_seconds: float | None = ACTOR_DECODE_SECONDS, retries: int = 3):
    """``dataset`` of ``path`` (and ``key``) rows -> result rows: the decode tasks and the model actors."""
    pipeline.check_options(options)
    # numbers only (its frontend is built in each task); the spec's resampler travels with it
    decoder = copy.copy(pipeline.decoder_for(getattr(options, "resampler", pipeline.decoder.resampler)))
    decoded = dataset.map_batches(
        decode_batch, fn_kwargs={"decoder": decoder, "actor_decode_seconds": actor_decode_seconds},
        batch_size=1, batch_format="pyarrow", num_cpus=1,  # Ray retries a task whose worker died (3 times)
    )
    ray = _ray()
    with warnings.catch_warnings():
        # Newer Ray calls actor fault-tolerance arguments deprecated extras (it defaults to retrying
        # forever); they are given here so every supported Ray retries, and a poison track stops.
        warnings.filterwarnings("ignore", message=".*ray_remote_args.*deprecated")
        return decoded.map_batches(
            TrackEmbedder, batch_size=tracks_per_call, batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(size=concurrency),
            fn_constructor_kwargs={"model": _shipped_model(pipeline), "options": options, "batch_size": batch_size,
                                   "precision": precision, "device": device, "chunk_seconds": pipeline.chunk_seconds},
            num_cpus=1, num_gpus=1 if device == "cuda" else None,
            # A killed actor is restarted and its unfinished batches retried (the driver drops repeats).
            max_restarts=retries, max_task_retries=retries,
        )


def _paths_dataset(rows: Sequence[tuple[str, str]]):
    ray = _ray()
    blocks = max(1, min(len(rows), -(-len(rows) // TRACKS_PER_BLOCK)))
    return ray.data.from_items([{"key": key, "path": path} for key, path in rows], override_num_blocks=blocks)


def embed_dataset(
    paths_or_dataset: Sequence[str | os.PathLike] | Any,
    model: str | os.PathLike | MaestPipeline,
    *,
    blocks: int | None = 7,
    tokens: Sequence[str] = TOKEN_NAMES,
    patchout_time: int = 1,
    patchout_freq: Sequence[int] = (),
    overlap: float = 0.5,
    crop: str | None = None,
    segments: str = "maest",
    batch_size: int = 8,
    concurrency: int = 1,
    device: str | None = None,
    precision: str | None = None,
    tracks_per_call: int = TRACKS_PER_CALL,
    actor_decode_seconds: float | None = ACTOR_DECODE_SECONDS,
    address: str | None = None,
):
    """A lazy ``ray.data.Dataset`` of embeddings: one row per input, whatever happened to it.

    Input: audio paths, or a Dataset with a ``path`` column (and optionally ``key``; default the
    path). Rows: ``key, path, duration, embedding`` (the mean over segments), ``segment_starts``,
    ``segment_embeddings`` and ``error`` (the reason a file failed; its lists are then empty).
    """
    connect(address)
    actor_device = _actor_device(device)
    if isinstance(model, MaestPipeline) and precision is None:
        precision = model.precision
    precision = default_precision(precision, actor_device)
    pipeline = _pipeline(model, precision, batch_size)
    options = EmbedOptions(blocks, tokens, patchout_time, tuple(patchout_freq), overlap, crop, segments)
    if isinstance(paths_or_dataset, (list, tuple)):
        dataset = _paths_dataset([(str(p), str(p)) for p in paths_or_dataset])
    else:
        dataset = paths_or_dataset
    return embed_stages(dataset, pipeline, options, precision=pipeline.precision, device=actor_device,
                        batch_size=batch_size, concurrency=concurrency, tracks_per_call=tracks_per_call,
                        actor_decode_seconds=actor_decode_seconds)


def ray_engine(*, device: str = "cpu", concurrency: int = 1, tracks_per_call: int = TRACKS_PER_CALL,
               actor_decode_seconds: float | None = ACTOR_DECODE_SECONDS, retries: int = 3) -> TrackEngine:
    """A :data:`maest.extraction.run.TrackEngine` computing tracks on the connected Ray cluster."""

    def run(items: Sequence[AudioItem], pipeline: MaestPipeline, options: EmbedOptions, batch_size: int
            ) -> Iterator[tuple[AudioItem, TrackResult | None, str | None]]:
        if not items:
            return
        by_key = {item.key: item for item in items}
        dataset = embed_stages(_paths_dataset([(item.key, str(item.path)) for item in items]), pipeline, options,
                               precision=pipeline.precision, device=device, batch_size=batch_size,
                               concurrency=concurrency, tracks_per_call=tracks_per_call,
                               actor_decode_seconds=actor_decode_seconds, retries=retries)
        seen: set[str] = set()
        for table in dataset.iter_batches(batch_size=None, batch_format="pyarrow"):
            for key, result, reason in table_results(table):
                if key in seen:  # a retried task emitted it again: the sink takes each track once
                    continue
                seen.add(key)
                yield by_key[key], result, reason
        lost = [key for key in by_key if key not in seen]
        if lost:
            raise RayEngineError(f"the Ray run ended without {len(lost)} tracks (e.g. {lost[0]}); rerun to add them")

    return run


def extract_ray(
    inputs: Sequence[str | os.PathLike],
    output_dir: str | os.PathLike,
    model: str | os.PathLike | MaestPipeline,
    *,
    blocks: int | None = 7,
    tokens: Sequence[str] = TOKEN_NAMES,
    patchout_time: int = 1,
    patchout_freq: Sequence[int] = (),
    overlap: float = 0.5,
    crop: str | None = None,
    segments: str = "maest",
    per_segment: bool = False,
    output_format: Format = "npy",
    extensions: Sequence[str] | None = None,
    batch_size: int = 8,
    device: str | None = None,
    shard: tuple[int, int] | None = None,
    progress: bool = True,
    precision: str | None = None,
    address: str | None = None,
    concurrency: int = 1,
    tracks_per_call: int = TRACKS_PER_CALL,
    actor_decode_seconds: float | None = ACTOR_DECODE_SECONDS,
    resampler: str | None = None,
) -> ExtractSummary:
    """:func:`maest.extraction.extract` on a Ray cluster: the same outputs, failures.tsv, settings and summary.

    ``address``: the cluster (see :func:`connect`); ``concurrency``: model actors (one GPU each when
    the cluster has GPUs, else one CPU each); ``device``: ``cpu`` forces CPU actors.
    """
    connect(address)
    actor_device = _actor_device(device)
    if isinstance(model, MaestPipeline) and precision is None:
        precision = model.precision  # a loaded pipeline brings its own precision
    precision = default_precision(precision, actor_device)
    engine = ray_engine(device=actor_device, concurrency=concurrency, tracks_per_call=tracks_per_call,
                        actor_decode_seconds=actor_decode_seconds)
    # The driver's copy of the model stays on the CPU: it checks options and ships its weights.
    return extract(inputs, Path(output_dir), model, blocks=blocks, tokens=tokens, patchout_time=patchout_time,
                   patchout_freq=patchout_freq, overlap=overlap, crop=crop, segments=segments, per_segment=per_segment,
                   output_format=output_format, extensions=extensions, batch_size=batch_size, device="cpu",
                   workers=0, shard=shard, progress=progress, precision=precision, engine=engine,
                   resampler=resampler)
