"""The original code's segment rule (``segments="original"``) against a direct numpy re-implementation.

The reference below follows the original MAEST code step by step (``DiscogsDatasetExhaustive`` in
half-overlap mode, its ``load_melspectrogram`` for ``.mmap`` inputs, then the datamodule's
normalisation): segments at ``i * hop`` for ``i < int(1.1 * (F - hop) / hop)``, ``hop = L // 2``,
a partial segment zero-padded to ``L`` in the RAW mel and rolled by half the padding, and only then
``(x - mean) / (2 * std)``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from maest import frontend
from maest.batching import SegmentBatcher
from maest.segments import original_segment_starts, padding_value, segment_starts, track_segments

pytestmark = pytest.mark.usefixtures("one_thread")

MEAN, STD = frontend.DISCOGS_MEAN, frontend.DISCOGS_STD
BANDS = 96


class OriginalReadError(ValueError):
    """Where the original's memmap read would fail (a window starting past the end of the file)."""


def reference_exhaustive(raw: np.ndarray, clip_frames: int, half_overlap: bool = True) -> list[np.ndarray]:
    """The original's segments of a raw ``(frames, bands)`` mel, normalised, each ``(bands, clip_frames)``."""
    frames_num = raw.shape[0]
    hop_size = clip_frames // 2 if half_overlap else clip_frames
    if half_overlap:
        frames_num -= hop_size
    n_patches = int((frames_num * 1.1) // hop_size)  # "allow 10% margin with zero-pad"
    segments = []
    for i in range(n_patches):
        offset = i * hop_size
        total = raw.shape[0]
        skip_frames = max(offset + clip_frames - total, 0)
        frames_to_read = clip_frames - skip_frames
        if frames_to_read <= 0:
            raise OriginalReadError(f"offset {offset} of {total} frames")
        melspectrogram = np.array(raw[offset : offset + frames_to_read], dtype=np.float32)
        if frames_to_read < clip_frames:
            padding_size = clip_frames - frames_to_read
            melspectrogram = np.vstack([melspectrogram, np.zeros([padding_size, BANDS], dtype=np.float32)])
            melspectrogram = np.roll(melspectrogram, padding_size // 2, axis=0)  # center the padding
        segments.append(((melspectrogram - MEAN) / (STD * 2)).T)
    return segments


def reference_short_file(raw: np.ndarray, clip_frames: int) -> np.ndarray:
    """The original's whole-file (``.npy``) read of a track shorter than a segment: padded, centred, normalised."""
    padding_size = clip_frames - raw.shape[0]
    melspectrogram = np.vstack([raw, np.zeros([padding_size, BANDS], dtype=np.float32)])
    melspectrogram = np.roll(melspectrogram, padding_size // 2, axis=0)
    return ((melspectrogram - MEAN) / (STD * 2)).T


def raw_mel(frames: int, seed: int) -> np.ndarray:
    """A raw log-mel ``(frames, 96)``: log10(1 + 10000 x) of random powers, > 0 like real music."""
    rng = np.random.default_rng(seed)
    return np.log10(1 + 10000 * rng.exponential(1e-3, size=(frames, BANDS))).astype(np.float32)


def maest_segments(raw: np.ndarray, clip_frames: int, overlap: float = 0.5, batch_size: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """maest's original-rule segments of the same mel, through the batching core: ``(segments, 96, L)``, starts."""
    mel = frontend.normalize_mel(torch.from_numpy(raw.T.copy()), MEAN, STD)

    def flatten(batch: torch.Tensor) -> np.ndarray:
        return batch.flatten(1).numpy()

    batcher = SegmentBatcher(flatten, clip_frames, overlap=overlap, batch_size=batch_size, segments="original",
                             pad_value=padding_value(MEAN, STD))
    [(_, result)] = list(batcher.run([("track", mel, 1.0)]))
    starts = np.round(result.start_seconds / 0.016).astype(int)
    return result.outputs.reshape(len(result.outputs), BANDS, clip_frames), starts


def assert_same_segments(ours: np.ndarray, reference: list[np.ndarray]) -> None:
    assert len(ours) == len(reference)
    difference = np.abs(ours - np.stack(reference)).max()
    assert difference <= 2e-6, difference


def test_mtt_clip_under_a_30s_model_is_one_padded_full_segment():
    """A 29.1 s MTT clip (1820 frames) under a 30 s model: one 1875-frame segment, 55 frames of centred padding."""
    frames = frontend.num_frames(int(29.1 * frontend.SAMPLE_RATE))
    assert frames == 1820
    raw = raw_mel(frames, 0)
    ours, starts = maest_segments(raw, 1875)
    reference = reference_exhaustive(raw, 1875)
    assert len(reference) == 1 and ours.shape == (1, BANDS, 1875) and list(starts) == [0]
    assert_same_segments(ours, reference)
    pad = padding_value(MEAN, STD)
    assert (ours[0, :, :27] == pad).all() and (ours[0, :, 27 + 1820 :] == pad).all()  # 27 before, 28 after
    np.testing.assert_allclose(pad, (0 - MEAN) / (2 * STD), rtol=1e-6)
    # maest's own rule runs the clip at its own length instead.
    assert segment_starts(frames, 1875).frames == 1820


@pytest.mark.parametrize("fraction", [1.0, 1.5, 2.3, 3.0, 4.4, 10.02])
def test_tracks_of_several_segment_lengths_match_the_reference(fraction):
    clip = 1875
    raw = raw_mel(int(round(fraction * clip)), 1)
    ours, starts = maest_segments(raw, clip)
    reference = reference_exhaustive(raw, clip)
    assert_same_segments(ours, reference)
    np.testing.assert_array_equal(starts, np.arange(len(reference)) * (clip // 2))


def test_counts_at_the_lengths_the_issue_names():
    clip, hop = 1875, 937
    counts = {f: len(original_segment_starts(int(round(f * clip)), clip)) for f in (1.0, 1.5, 2.3)}
    assert counts == {1.0: 1, 1.5: 2, 2.3: 3}
    # 2.3 segment lengths: the tail after the third segment (563 frames, 60 % of a hop) is not read;
    # maest's rule adds a last segment ending on the last frame.
    assert list(segment_starts(4312, clip).starts) == [0, 938, 1876, 2437]
    # The margin is 10 % of the track, so whether a tail is read depends on the length: 4 hops and
    # half a hop drop the tail; 4 hops and 0.7 of a hop read it as a partial, padded segment.
    dropped = original_segment_starts(4 * hop + hop // 2, clip)
    assert len(dropped) == 3 and (dropped.valid == clip).all()
    partial = original_segment_starts(4 * hop + int(0.7 * hop), clip)
    assert len(partial) == 4 and list(partial.valid) == [clip] * 3 + [4 * hop + int(0.7 * hop) - 3 * hop]


def test_short_track_is_the_originals_short_file_read():
    """Half a segment: the original's margin gives no segment; maest pads it as the original pads a short file."""
    clip = 1875
    raw = raw_mel(clip // 2, 2)
    assert reference_exhaustive(raw, clip) == []
    ours, starts = maest_segments(raw, clip)
    assert ours.shape == (1, BANDS, clip) and list(starts) == [0]
    np.testing.assert_allclose(ours[0], reference_short_file(raw, clip), rtol=0, atol=2e-6)


@pytest.mark.parametrize("half_overlap", [True, False])
def test_every_length_of_a_small_segment_matches_the_reference(half_overlap):
    """All lengths 1..260 frames under a 20-frame segment, in both of the original's modes."""
    clip = 20
    past_end = short = 0
    for frames in range(1, 261):
        raw = raw_mel(frames, frames)
        ours, starts = maest_segments(raw, clip, overlap=0.5 if half_overlap else 0.0)
        try:
            reference = reference_exhaustive(raw, clip, half_overlap)
        except OriginalReadError:  # the original cannot read this track: maest keeps the segments that start inside it
            hop = clip // 2 if half_overlap else clip
            margin = frames - hop if half_overlap else frames
            kept = [i * hop for i in range(int((margin * 1.1) // hop)) if i * hop < frames]
            assert list(starts) == kept, frames
            past_end += 1
            continue
        if not reference:
            assert frames < clip and len(ours) == 1
            np.testing.assert_allclose(ours[0], reference_short_file(raw, clip), rtol=0, atol=2e-6)
            short += 1
        else:
            assert_same_segments(ours, reference)
    assert past_end > 0 and short > 0  # both documented departures were exercised


def test_rule_options_are_checked():
    with pytest.raises(ValueError, match="crop"):
        track_segments(100, 20, 0.5, "center", "original")
    with pytest.raises(ValueError, match="two modes"):
        track_segments(100, 20, 0.25, None, "original")
    with pytest.raises(ValueError, match="segments must be one of"):
        track_segments(100, 20, 0.5, None, "paper")
    with pytest.raises(ValueError, match="crop"):
        SegmentBatcher(lambda x: x.numpy(), 20, crop="center", segments="original")
    # The default rule is unchanged.
    maest = track_segments(100, 20)
    assert maest.valid is None and list(maest.starts) == list(segment_starts(100, 20).starts)
