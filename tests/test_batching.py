"""The batching core with a plain callable: no padding, grouped by length, bounded, tracks as they complete."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from maest.batching import SegmentBatcher
from maest.segments import segment_starts

SEGMENT = 20


class Recorder:
    """A ``run_batch`` that sums each segment's frames per band and remembers every batch's shape."""

    def __init__(self):
        self.shapes: list[tuple[int, ...]] = []

    def __call__(self, mel: torch.Tensor) -> np.ndarray:
        self.shapes.append(tuple(mel.shape))
        return mel.sum(dim=2).numpy().astype(np.float32)


def track(frames: int, seed: int) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).normal(size=(4, frames)).astype(np.float32))


def expected(mel: torch.Tensor, overlap: float = 0.5) -> np.ndarray:
    segments = segment_starts(mel.shape[1], SEGMENT, overlap)
    return np.stack([mel[:, s : s + segments.frames].sum(dim=1).numpy() for s in segments.starts])


def test_batches_never_pad_and_every_segment_runs_once():
    run = Recorder()
    batcher = SegmentBatcher(run, SEGMENT, batch_size=3)
    tracks = {"long": track(75, 0), "short": track(7, 1), "mid": track(33, 2), "short2": track(7, 3)}
    results = dict(batcher.run((key, mel, 1.0) for key, mel in tracks.items()))
    assert set(results) == set(tracks)
    for key, mel in tracks.items():
        np.testing.assert_allclose(results[key].outputs, expected(mel), rtol=1e-6, atol=1e-5)
        assert results[key].start_seconds[0] == 0.0 and results[key].duration == 1.0
    assert all(1 <= shape[0] <= 3 for shape in run.shapes)
    assert {shape[2] for shape in run.shapes} == {SEGMENT, 7}  # one length per batch, short tracks together
    assert sum(shape[0] for shape in run.shapes) == sum(len(expected(m)) for m in tracks.values())


def test_tracks_come_out_as_they_complete_and_pending_tracks_are_bounded():
    run = Recorder()
    batcher = SegmentBatcher(run, SEGMENT, batch_size=4, max_pending_tracks=2)
    done = []
    for index in range(6):  # short tracks of distinct lengths: each queue holds one segment
        done += [key for key, _ in batcher.add(index, track(5 + index, index), 0.5)]
        assert batcher.pending_tracks <= 2
    assert done == [0, 1, 2, 3]  # the bound forced short batches before the end
    assert [key for key, _ in batcher.finish()] == [4, 5]


def test_a_track_does_not_depend_on_its_batch_mates():
    mel = track(90, 7)
    alone = dict(SegmentBatcher(Recorder(), SEGMENT, batch_size=1).run([("x", mel, 0.0)]))["x"].outputs
    mixed = dict(SegmentBatcher(Recorder(), SEGMENT, batch_size=5).run(
        [("y", track(41, 8), 0.0), ("x", mel, 0.0), ("z", track(12, 9), 0.0)]))["x"].outputs
    np.testing.assert_allclose(mixed, alone, rtol=0, atol=1e-6)


def test_overlap_crop_and_guards():
    mel = track(100, 4)
    [(_, centre)] = SegmentBatcher(Recorder(), SEGMENT, crop="center").run([("c", mel, 0.0)])
    np.testing.assert_allclose(centre.outputs[0], mel[:, 40:60].sum(dim=1).numpy(), rtol=1e-6, atol=1e-5)
    [(_, no_overlap)] = SegmentBatcher(Recorder(), SEGMENT, overlap=0.0).run([("o", mel, 0.0)])
    assert len(no_overlap.outputs) == 5
    with pytest.raises(ValueError, match="at least 16"):
        SegmentBatcher(Recorder(), SEGMENT, min_frames=16).add("s", track(10, 0), 0.0)
    with pytest.raises(ValueError, match="batch_size"):
        SegmentBatcher(Recorder(), SEGMENT, batch_size=0)
