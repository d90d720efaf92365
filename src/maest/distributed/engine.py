"""The Ray engine: decode tasks and model actors on a Ray cluster, under the local engine's driver.

:class:`RayEngine` is an :class:`~maest.extraction.engines.Engine` (``--engine ray``): the driver
(:func:`maest.extraction.extract`, :func:`~maest.extraction.run_files`) keeps settings, resume,
sinks, failures and summary; only the computing of tracks moves to the cluster. :func:`embed_dataset`
builds the same lazy pipeline (paths -> decode + mel in CPU tasks -> segments batched across tracks
in model actors) for users who live in Ray.

Writes happen on the driver, through the same sinks, from Ray's output stream: one writer, so a
parquet table never gets a row twice, and a track that a retried task emits again is written once.

Cores: a CPU actor reserves ``cpus_per_actor`` of Ray's CPUs and runs that many torch threads
(default: a node's CPUs shared by the actors). Decode tasks reserve no CPU: one per actor at a
time, they share the cores as the local engine's decode worker shares them with its model.
"""

from __future__ import annotations

import copy
import os
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from maest.distributed.cluster import Cluster, RayEngineError, import_ray
from maest.distributed.stages import TrackEmbedder, decode_batch, table_results
from maest.extraction.engines import EngineBase, TrackOutcome, engine_options
from maest.extraction.files import AudioItem
from maest.extraction.run import ExtractSummary, extract
from maest.extraction.tracks import nonfinite_reason
from maest.inference import PRECISIONS, EmbedOptions, MaestPipeline, resolve_precision

TRACKS_PER_BLOCK = 16  # input paths per Ray block: small, so decode tasks spread over the CPUs
TRACKS_PER_CALL = 8  # decoded tracks per actor call: their segments are batched together (a 4-min track
# has 15 segments, so 8 tracks fill batches of 8-32); it also bounds an actor's input to 8 mels (<= 8 x 43 MB)
ACTOR_DECODE_SECONDS = 1800.0  # longer tracks are decoded in the actor, not shipped as mel


def default_precision(precision: str | None, device: str) -> str:
    """The precision the actors run at; on GPU actors the default is bf16 (the driver may have no GPU
    to ask): pass fp16 for GPUs without bf16."""
    if precision in (None, "auto") and device == "cuda":
        return "bf16"
    if device == "cuda":
        return precision if precision in PRECISIONS else resolve_precision(precision, "cuda")  # raises
    return resolve_precision(precision, "cpu")


def _actor_device(device: str | None) -> str:
    """``cuda`` when the cluster has GPUs (or ``device`` asks for them), else ``cpu``."""
    gpus = import_ray().cluster_resources().get("GPU", 0)
    if device is not None and device.startswith("cuda"):
        if not gpus:
            raise RayEngineError("--device cuda: the Ray cluster has no GPU; use --device cpu or add GPU nodes")
        return "cuda"
    if device not in (None, "cpu"):
        raise RayEngineError(f"the Ray engine runs on cpu or cuda actors, not on {device!r}")
    return "cuda" if gpus and device is None else "cpu"


def node_cpus() -> list[int]:
    """Whole CPUs of each alive node of the connected cluster."""
    return [int(node["Resources"].get("CPU", 0)) for node in import_ray().nodes() if node.get("Alive")]


def _shipped_model(pipeline: MaestPipeline):
    """The pipeline's float weights on the CPU, put once into the object store for every actor."""
    model = pipeline.model
    if pipeline.device.type != "cpu":
        model = copy.deepcopy(model).cpu()
    return import_ray().put(model)


def _paths_dataset(rows: Sequence[tuple[str, str]]):
    blocks = max(1, min(len(rows), -(-len(rows) // TRACKS_PER_BLOCK)))
    return import_ray().data.from_items([{"key": key, "path": path} for key, path in rows],
                                        override_num_blocks=blocks)


class RayEngine(EngineBase):
    """Tracks computed on a Ray cluster: ``address`` (None: a new local cluster on 127.0.0.1, shut down
    by :meth:`close`; "auto": the one ``ray start`` made here; HOST:PORT), ``concurrency`` model actors
    (one GPU each when the cluster has GPUs, else ``cpus_per_actor`` CPUs and as many torch threads)."""

    name = "ray"

    def __init__(self, address: str | None = None, concurrency: int = 1, cpus_per_actor: int | None = None,
                 tracks_per_call: int = TRACKS_PER_CALL, actor_decode_seconds: float | None = ACTOR_DECODE_SECONDS,
                 retries: int = 3):
        for label, value in (("concurrency", concurrency), ("cpus_per_actor", cpus_per_actor or 1),
                             ("tracks_per_call", tracks_per_call)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{label} must be a whole number >= 1, got {value!r}")
        self.cluster = Cluster(address)
        self.concurrency, self.cpus_per_actor = concurrency, cpus_per_actor
        self.tracks_per_call, self.actor_decode_seconds, self.retries = tracks_per_call, actor_decode_seconds, retries
        self.actor_device: str | None = None
        self._runs: list[Iterator[TrackOutcome]] = []  # closed before the cluster: Ray Data's threads stop first

    def placement(self, device: str | None, precision: str | None) -> tuple[str | None, str | None]:
        """Joins the cluster; the driver's copy of the model stays on the CPU (it checks options and
        ships its weights), at the actors' precision."""
        self.cluster.open()
        self.actor_device = _actor_device(device)
        return "cpu", default_precision(precision, self.actor_device)

    def actor_cpus(self) -> int:
        """CPUs (and torch threads) of one model actor: 1 on GPU actors, else ``cpus_per_actor`` or a
        node's CPUs shared by the actors (all of a one-node cluster's CPUs for one actor)."""
        if self.actor_device == "cuda":
            return 1
        if self.cpus_per_actor is not None:
            return self.cpus_per_actor
        cpus = node_cpus() or [1]
        per_node = -(-self.concurrency // len(cpus))  # actors per node when spread evenly
        return max(1, min(max(cpus) // per_node, sum(cpus) // self.concurrency))

    def stages(self, dataset, pipeline: MaestPipeline, mode: str, options: EmbedOptions, batch_size: int):
        """``dataset`` of ``path`` (and ``key``) rows -> result rows: the decode tasks and the model actors."""
        if self.actor_device is None:
            self.placement(None, pipeline.precision)
        pipeline.runner(mode, options)  # checks the options before anything is shipped
        ray = import_ray()
        # numbers only (its frontend is built in each task); the spec's resampler travels with it
        decoder = copy.copy(pipeline.decoder_for(getattr(options, "resampler", None)))
        decoded = dataset.map_batches(
            decode_batch, fn_kwargs={"decoder": decoder, "actor_decode_seconds": self.actor_decode_seconds},
            batch_size=1, batch_format="pyarrow", num_cpus=0,  # Ray retries a task whose worker died (3 times)
            compute=ray.data.TaskPoolStrategy(size=self.concurrency),
        )
        cpus = self.actor_cpus()
        with warnings.catch_warnings():
            # Newer Ray calls actor fault-tolerance arguments deprecated extras (it defaults to retrying
            # forever); they are given here so every supported Ray retries, and a poison track stops.
            warnings.filterwarnings("ignore", message=".*ray_remote_args.*deprecated")
            return decoded.map_batches(
                TrackEmbedder, batch_size=self.tracks_per_call, batch_format="pyarrow",
                compute=ray.data.ActorPoolStrategy(size=self.concurrency),
                fn_constructor_kwargs={"model": _shipped_model(pipeline), "options": options, "batch_size": batch_size,
                                       "precision": pipeline.precision, "device": self.actor_device,
                                       "chunk_seconds": pipeline.chunk_seconds, "mode": mode, "threads": cpus},
                num_cpus=cpus, num_gpus=1 if self.actor_device == "cuda" else None,
                # A killed actor is restarted and its unfinished batches retried (the driver drops repeats).
                max_restarts=self.retries, max_task_retries=self.retries,
            )

    def run(self, items: Sequence[AudioItem], pipeline: MaestPipeline, mode: str, options: EmbedOptions,
            batch_size: int) -> Iterator[TrackOutcome]:
        outcomes = self._outcomes(items, pipeline, mode, options, batch_size)
        self._runs.append(outcomes)
        return outcomes

    def _outcomes(self, items: Sequence[AudioItem], pipeline: MaestPipeline, mode: str, options: EmbedOptions,
                  batch_size: int) -> Iterator[TrackOutcome]:
        if not items:
            return
        by_key = {item.key: item for item in items}
        dataset = self.stages(_paths_dataset([(item.key, str(item.path)) for item in items]), pipeline, mode,
                              options, batch_size)
        seen: set[str] = set()
        tables = iter(dataset.iter_batches(batch_size=None, batch_format="pyarrow"))
        try:
            for table in tables:
                for key, result, reason in table_results(table):
                    if key in seen:  # a retried task emitted it again: the sink takes each track once
                        continue
                    seen.add(key)
                    if result is not None and reason is None:
                        reason = nonfinite_reason(result)
                    yield (by_key[key], result, None) if reason is None else (by_key[key], None, reason)
        finally:
            getattr(tables, "close", lambda: None)()  # stops Ray Data's executor while Ray is still up
        lost = [key for key in by_key if key not in seen]
        if lost:
            raise RayEngineError(f"the Ray run ended without {len(lost)} tracks (e.g. {lost[0]}); rerun to add them")

    def close(self) -> None:
        while self._runs:  # a run stopped part way (Ctrl-C, SIGTERM, an error) ends before the cluster does
            self._runs.pop().close()
        self.cluster.close()


def connect(address: str | None = None) -> Cluster:
    """Join (or start) the Ray cluster at ``address`` as :class:`RayEngine` does; close the result when done."""
    cluster = Cluster(address)
    cluster.open()
    return cluster


def _split_engine_options(options: dict[str, Any]) -> dict[str, Any]:
    """Take :class:`RayEngine`'s keywords out of ``options``."""
    names = engine_options("ray")
    return {key: options.pop(key) for key in list(options) if key in names}


def embed_dataset(paths_or_dataset: Sequence[str | os.PathLike] | Any, model: str | os.PathLike | MaestPipeline, *,
                  batch_size: int = 8, device: str | None = None, precision: str | None = None, **options: Any):
    """A lazy ``ray.data.Dataset`` of embeddings: one row per input, whatever happened to it.

    Input: audio paths, or a Dataset with a ``path`` column (and optionally ``key``; default the
    path). ``options``: :class:`~maest.spec.EmbeddingSpec` fields (blocks, tokens, overlap, resampler...) and
    :class:`RayEngine` keywords (address, concurrency...). Rows: ``key, path, duration, embedding``
    (the mean over segments), ``segment_starts``, ``segment_embeddings`` and ``error`` (the reason a
    file failed; its lists are then empty). The engine stays connected for the lazy dataset.
    """
    from maest.extraction.engines import load_pipeline

    engine = RayEngine(**_split_engine_options(options))
    if "patchout_freq" in options:
        options["patchout_freq"] = tuple(options["patchout_freq"])
    pipeline = load_pipeline(engine, model, device, batch_size, precision)
    embed_options = pipeline.spec(**options)  # checked; blocks "auto" made concrete (maest.blocks)
    if isinstance(paths_or_dataset, (list, tuple)):
        dataset = _paths_dataset([(str(p), str(p)) for p in paths_or_dataset])
    else:
        dataset = paths_or_dataset
    return engine.stages(dataset, pipeline, "embed", embed_options, batch_size)


def extract_ray(inputs: Sequence[str | os.PathLike], output_dir: str | os.PathLike,
                model: str | os.PathLike | MaestPipeline, **options: Any) -> ExtractSummary:
    """:func:`maest.extraction.extract` with ``engine=RayEngine(...)``: ``options`` are extract's and
    :class:`RayEngine`'s keywords (address, concurrency...); a cluster started here stops at the end."""
    with RayEngine(**_split_engine_options(options)) as engine:
        return extract(inputs, Path(output_dir), model, engine=engine, **options)
