"""Training batches: random crops seeded by (seed, epoch, track), centre crops, normalisation, targets."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from maest.data import store as store_module
from maest.train.data import MelCrops


@pytest.fixture(scope="module")
def mel_store(tmp_path_factory) -> tuple[Path, dict[str, np.ndarray]]:
    """A store written shard by shard as build_store writes it, with known random contents."""
    root = tmp_path_factory.mktemp("store")
    (root / "shards").mkdir()
    store_module._open_or_create_meta(root, "center30")
    rng = np.random.default_rng(0)
    writer = store_module._ShardWriter(root / "shards", 0, shard_bytes=96 * 2 * 150)
    contents = {}
    for i, frames in enumerate([200, 80, 300, 50, 120]):
        mel = (rng.random((frames, 96)) * 4).astype(np.float16)
        contents[f"t{i}.wav"] = mel.T
        writer.add(f"t{i}.wav", mel, "")
    writer.flush()
    assert writer.written > 1
    return root, contents


def _dataset(root: Path, keys: list[str], targets: np.ndarray, frames: int = 100) -> MelCrops:
    return MelCrops(root, keys, targets, frames, mean=1.5, std=0.5, seed=7)


def test_items_are_normalised_seeded_crops_and_centre_crops(mel_store):
    root, contents = mel_store
    keys = ["t2.wav", "t0.wav", "t3.wav"]
    targets = np.array([[1, 0, 1], [0, 1, 0], [0, 0, 1]], dtype=bool)
    data = _dataset(root, keys, targets)
    for index, key in enumerate(keys):
        whole = contents[key].astype(np.float32)
        frames = whole.shape[1]
        mel, target, got = data[(4, index)]
        rng = np.random.default_rng((7, 4, index))
        start = int(rng.integers(0, frames - 100 + 1)) if frames > 100 else 0
        crop = np.zeros((96, 100), np.float32)
        crop[:, : min(100, frames - start)] = whole[:, start : start + 100]
        torch.testing.assert_close(mel, torch.from_numpy((crop - 1.5) / (2 * 0.5)))
        assert got == index and target.dtype == torch.float32 and target.tolist() == targets[index].tolist()
        centre, _, _ = data[index]
        first = max(0, (frames - 100) // 2)
        crop = np.zeros((96, 100), np.float32)
        crop[:, : min(100, frames - first)] = whole[:, first : first + 100]
        torch.testing.assert_close(centre, torch.from_numpy((crop - 1.5) / (2 * 0.5)))


def test_targets_are_kept_as_bits_not_dense_floats(mel_store):
    # 3.3 M tracks x 400 classes as float32 is 5.3 GB per rank (and per DataLoader worker that
    # touches it); as bool it is a quarter of that.
    root, _ = mel_store
    targets = np.random.default_rng(1).random((5, 400)) < 0.01
    data = _dataset(root, [f"t{i}.wav" for i in range(5)], targets)
    stored = data.targets
    assert stored.dtype in (torch.bool, torch.uint8) and stored.numel() * stored.element_size() == targets.size
    for index in range(5):
        assert data[index][1].dtype == torch.float32
        assert data[index][1].tolist() == targets[index].astype(np.float32).tolist()


def test_dataset_pickles_without_mapped_shards(mel_store):
    # DataLoader workers get the dataset by pickling (spawn) or forking: no memory maps travel along.
    root, contents = mel_store
    data = _dataset(root, ["t0.wav", "t1.wav"], np.ones((2, 3), bool))
    before = data[0][0]  # maps the first shard in this process
    pickled = pickle.dumps(data)
    assert len(pickled) < contents["t0.wav"].nbytes  # a memmap pickles as a full copy of its shard
    clone = pickle.loads(pickled)
    torch.testing.assert_close(clone[0][0], before)
