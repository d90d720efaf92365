"""Batches for training: random crops of the stored mels, normalised, drawn by the balanced sampler.

Crops are drawn from a generator seeded by (seed, epoch, track) rather than worker state, so a run
gives the same batches whatever the number of workers and after a resume.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler, SequentialSampler

from maest import frontend
from maest.data.groundtruth import read_groundtruth
from maest.data.sampler import BalancedEpochSampler
from maest.data.store import MelStore
from maest.train.config import TrainConfig
from maest.train.crops import MelCrops, centre_crop  # noqa: F401  (centre_crop: re-exported)

log = logging.getLogger(__name__)


class TrainDataError(RuntimeError):
    """The store or ground truth cannot feed training (missing files, no tracks, no statistics)."""


class EpochTagged(Sampler):
    """Wraps an epoch sampler to yield ``(epoch, index)``, so crops can be seeded by the epoch."""

    def __init__(self, sampler: BalancedEpochSampler):
        self.sampler = sampler

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch = self.sampler.epoch
        return ((epoch, index) for index in self.sampler)

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def state_dict(self) -> dict:
        return self.sampler.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.sampler.load_state_dict(state)


class MelDataModule(L.LightningDataModule):
    """Discogs-style training data: a mel store plus ``train``/``validation`` ground truth."""

    def __init__(self, config: TrainConfig, segment_frames: int):
        super().__init__()
        self.config = config
        self.segment_frames = segment_frames
        self.labels = read_labels(config)
        self.mean, self.std = normalization(config)
        self.train_set: MelCrops | None = None
        self.val_set: MelCrops | None = None
        self.sampler: EpochTagged | None = None
        self._pending_sampler_state: dict | None = None
        self._store: MelStore | None = None  # one index read for both splits (millions of rows)

    def _split(self, name: str, dataset: type[MelCrops] = MelCrops) -> MelCrops:
        store_root = self.config.data_path("store")
        paths, targets, _ = read_groundtruth(self.config.data_path(name), self.labels)
        if self._store is None:
            self._store = MelStore(store_root)
        store = self._store
        present = np.asarray([p in store for p in paths], dtype=bool)
        if not present.all():
            log.warning("%d of %d %s tracks are not in the store %s (failed or not prepared); skipped",
                        int((~present).sum()), len(paths), name, store_root)
        keys = [p for p, ok in zip(paths, present) if ok]
        if not keys:
            raise TrainDataError(f"no {name} track of {self.config.data_path(name)} is in the store {store_root}: "
                                 f"run `maest prepare` for it")
        return dataset(store, keys, targets[present], self.segment_frames, self.mean, self.std, self.config.seed)

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is None and stage in (None, "fit"):
            self.train_set = self._split("train")
            world, rank = (self.trainer.world_size, self.trainer.global_rank) if self.trainer else (1, 0)
            balanced = BalancedEpochSampler(self.train_set.targets.numpy(),
                                            self.config.data.samples_per_epoch, world, rank, self.config.seed)
            self.sampler = EpochTagged(balanced)
            if self._pending_sampler_state is not None:
                self.sampler.load_state_dict(self._pending_sampler_state)
        if self.val_set is None and stage in (None, "fit", "validate"):
            if self.config.data.validation_protocol == "segments":
                from maest.train.validation import TrackSegments

                self.val_set = self._split("validation", TrackSegments)
                crop = self._store.meta.get("crop")
                if crop != "full":
                    log.warning("validation_protocol segments on a store built with crop %s: the segments cover "
                                "the stored part of each track only (build the store with --crop full)", crop)
            else:
                self.val_set = self._split("validation")

    def _loader(self, dataset: Dataset, sampler: Sampler, batch_size: int, drop_last: bool,
                collate_fn=None) -> DataLoader:
        workers = self.config.data.num_workers
        return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
                          drop_last=drop_last, pin_memory=torch.cuda.is_available(), collate_fn=collate_fn,
                          persistent_workers=workers > 0, prefetch_factor=4 if workers > 0 else None)

    def train_dataloader(self) -> DataLoader:
        if self.trainer is not None:
            # Lightning creates the first iterator (and worker prefetch starts) before its own
            # set_epoch call: select the epoch now, or a resumed run would replay the sampler's
            # saved epoch.
            self.sampler.set_epoch(self.trainer.current_epoch)
        return self._loader(self.train_set, self.sampler, self.config.trainer.batch_size, drop_last=True)

    def val_dataloader(self) -> DataLoader:
        world, rank = (self.trainer.world_size, self.trainer.global_rank) if self.trainer else (1, 0)
        # Each rank evaluates a share; the module gathers and de-duplicates by index (padding repeats).
        sampler = (DistributedSampler(self.val_set, world, rank, shuffle=False) if world > 1
                   else SequentialSampler(self.val_set))
        batch = self.config.data.val_batch_size or self.config.trainer.batch_size
        collate = None
        if self.config.data.validation_protocol == "segments":
            from maest.train.validation import collate_tracks as collate
        return self._loader(self.val_set, sampler, batch, drop_last=False, collate_fn=collate)

    def state_dict(self) -> dict:
        return {"sampler": self.sampler.state_dict()} if self.sampler is not None else {}

    def load_state_dict(self, state: dict) -> None:
        if "sampler" in state:
            if self.sampler is not None:
                self.sampler.load_state_dict(state["sampler"])
            else:
                self._pending_sampler_state = state["sampler"]


def read_labels(config: TrainConfig) -> list[str]:
    import json

    path = config.data_path("labels")
    if not path.is_file():
        raise TrainDataError(f"label list {path} not found (data.root / data.labels); "
                             f"create the ground truth first (maest labels, or maest demo-data)")
    return list(json.loads(path.read_text(encoding="utf-8")))


def normalization(config: TrainConfig) -> tuple[float, float]:
    """``(mean, std)`` of the input normalisation: the Discogs constants, or the store's statistics."""
    if config.data.normalization == "discogs":
        return frontend.DISCOGS_MEAN, frontend.DISCOGS_STD
    store = MelStore(config.data_path("store"))
    if not store.stats:
        raise TrainDataError(f"{config.data_path('store')} has no statistics: compute them with `maest prepare` "
                             f"or set data.normalization=discogs")
    return float(store.stats["mean"]), float(store.stats["std"])
