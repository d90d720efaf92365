"""The two Ray Data stages and their row layouts: decode + mel in CPU tasks, the model in actors.

Both stages are thin wrappers of the local engine's parts: decoding is :func:`maest.decode.decode`
with the pipeline's own :class:`maest.decode.TrackMel`, and the actor feeds a
:class:`maest.batching.SegmentBatcher` through :meth:`maest.inference.MaestPipeline.embedder`, so a
track's numbers are the local engine's.

Rows between the stages carry the whole-track mel as float32 bytes (exact: the model sees what the
local engine feeds it). A track longer than ``actor_decode_seconds`` (read from its header) is not
decoded in the task: its row carries only the path, and the actor decodes it in bounded chunks, so
an hour-long mix never sits in the object store (86 MB of float32 mel per hour of audio).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from maest import audio
from maest.batching import TrackResult
from maest.decode import DecodeFailure, TrackMel, decode
from maest.extraction.tracks import NONFINITE_MEL
from maest.inference import EmbedOptions, MaestPipeline

DECODE_IN_ACTOR = -1
"""``frames`` of a row whose track the actor decodes itself (longer than ``actor_decode_seconds``)."""


def _strings(column: Any) -> list[str]:
    return [str(value) for value in (column.to_pylist() if hasattr(column, "to_pylist") else column)]


def _header_seconds(path: str) -> float:
    """The track's length from its header; 0 when the header does not say (decoded in the task)."""
    try:
        header = audio.info(path)
    except Exception:  # noqa: BLE001 - a bad file fails in decode(), with its reason
        return 0.0
    return header.frames / header.sample_rate if header.sample_rate else 0.0


def decode_batch(batch: pa.Table, decoder: TrackMel, actor_decode_seconds: float | None) -> pa.Table:
    """Rows ``path`` (and ``key``; default the path) -> ``key, path, mel, n_mels, frames, duration, error``.

    Never raises for a bad file: its row carries the reason in ``error`` and no mel.
    """
    paths = _strings(batch.column("path"))
    keys = _strings(batch.column("key")) if "key" in batch.column_names else list(paths)
    mels, n_mels, frames, durations, errors = [], [], [], [], []
    for path in paths:
        mel, bands, count, duration, error = b"", 0, 0, 0.0, None
        if actor_decode_seconds is not None and _header_seconds(path) > actor_decode_seconds:
            count = DECODE_IN_ACTOR
        else:
            decoded = decode(path, decoder)
            if isinstance(decoded, DecodeFailure):
                error = decoded.reason
            else:
                array = decoded.mel.numpy()
                mel, (bands, count), duration = array.astype(np.float32, copy=False).tobytes(), array.shape, decoded.duration
        mels.append(mel)
        n_mels.append(bands)
        frames.append(count)
        durations.append(duration)
        errors.append(error)
    return pa.table({
        "key": pa.array(keys, pa.string()), "path": pa.array(paths, pa.string()),
        "mel": pa.array(mels, pa.large_binary()), "n_mels": pa.array(n_mels, pa.int32()),
        "frames": pa.array(frames, pa.int64()), "duration": pa.array(durations, pa.float64()),
        "error": pa.array(errors, pa.string()),
    })


class TrackEmbedder:
    """A Ray Data actor: loads the model once, then embeds (or tags: ``mode``) the decoded tracks of each batch.

    The segments of all tracks in a batch run together through one :class:`SegmentBatcher`
    (batched by length, never padded), exactly as the local engine batches across files.
    """

    def __init__(self, model: Any, options: EmbedOptions, batch_size: int, precision: str, device: str,
                 chunk_seconds: int = 60, mode: str = "embed", threads: int | None = None):
        import ray

        if threads is not None:  # the CPUs Ray gave this actor (Ray sets one thread per worker otherwise)
            torch.set_num_threads(threads)
        if isinstance(model, ray.ObjectRef):
            model = ray.get(model)
        self.pipeline = MaestPipeline(model, device, batch_size, chunk_seconds, precision=precision)
        self.options = options
        self.run_batch = self.pipeline.runner(mode, options)

    def __call__(self, batch: pa.Table) -> pa.Table:
        batcher = self.pipeline.batcher(self.run_batch, self.options)
        rows = batch.to_pylist()
        results: dict[int, TrackResult] = {}
        errors: dict[int, str] = {}
        for index, row in enumerate(rows):
            if row["error"] is not None:
                errors[index] = row["error"]
                continue
            if row["frames"] == DECODE_IN_ACTOR:
                decoded = decode(row["path"], self.pipeline.decoder_for(getattr(self.options, "resampler",
                                                                                self.pipeline.decoder.resampler)))
                if isinstance(decoded, DecodeFailure):
                    errors[index] = decoded.reason
                    continue
                mel, duration = decoded.mel, decoded.duration
            else:
                array = np.frombuffer(row["mel"], np.float32).reshape(row["n_mels"], row["frames"])
                mel, duration = torch.from_numpy(array.copy()), row["duration"]
            if not torch.isfinite(mel).all():  # as the local engine: never through the model
                errors[index] = NONFINITE_MEL
                continue
            results.update(batcher.add(index, mel, duration))
        results.update(batcher.finish())
        return result_table([(row["key"], row["path"]) for row in rows], results, errors)


def result_table(rows: list[tuple[str, str]], results: dict[int, TrackResult], errors: dict[int, str]) -> pa.Table:
    """The output rows of :func:`maest.distributed.embed_dataset`; a failed row has empty lists and its ``error``."""
    dim = next((r.outputs.shape[1] for r in results.values()), 0)
    empty = TrackResult(np.zeros((0, dim), np.float32), np.zeros(0, np.float64))
    ordered = [results.get(i, empty) for i in range(len(rows))]
    segments = np.array([0] + [len(r.outputs) for r in ordered])
    offsets = pa.array(np.cumsum(segments).astype(np.int32))
    track_offsets = pa.array(np.array([0] + [dim if i in results else 0 for i in range(len(rows))]).cumsum().astype(np.int32))
    tracks = [ordered[i].track for i in range(len(rows)) if i in results]
    flat_tracks = np.concatenate(tracks) if tracks else np.zeros(0, np.float32)
    flat_segments = np.concatenate([np.zeros(0, np.float32)] + [r.outputs.reshape(-1) for r in ordered]).astype(np.float32)
    starts = np.concatenate([np.zeros(0)] + [r.start_seconds for r in ordered]).astype(np.float64)
    return pa.table({
        "key": pa.array([k for k, _ in rows], pa.string()),
        "path": pa.array([p for _, p in rows], pa.string()),
        "duration": pa.array([r.duration for r in ordered], pa.float64()),
        "embedding": pa.ListArray.from_arrays(track_offsets, pa.array(flat_tracks, pa.float32())),
        "segment_starts": pa.ListArray.from_arrays(offsets, pa.array(starts, pa.float64())),
        "segment_embeddings": pa.ListArray.from_arrays(offsets, pa.ListArray.from_arrays(
            pa.array((np.arange(int(segments.sum()) + 1) * dim).astype(np.int32)), pa.array(flat_segments, pa.float32()))),
        "error": pa.array([errors.get(i) for i in range(len(rows))], pa.string()),
    })


def table_results(table: pa.Table) -> Iterator[tuple[str, TrackResult | None, str | None]]:
    """``(key, result, None)`` or ``(key, None, reason)`` per row of a :func:`result_table`."""
    keys = table.column("key").to_pylist()
    errors = table.column("error").to_pylist()
    durations = table.column("duration").to_pylist()
    starts = table.column("segment_starts").to_pylist()
    segments = table.column("segment_embeddings").combine_chunks()
    for i, key in enumerate(keys):
        if errors[i] is not None:
            yield key, None, errors[i]
            continue
        cell = segments[i].values  # this track's segments, one list each
        outputs = cell.flatten().to_numpy(zero_copy_only=False).astype(np.float32).reshape(len(cell), -1)
        yield key, TrackResult(outputs, np.asarray(starts[i], np.float64), durations[i]), None
