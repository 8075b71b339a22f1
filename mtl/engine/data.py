"""Data loading for training: deterministic per-sample augmentation and a sampler that resumes mid-epoch.

Exact resume needs two things Lightning does not give a plain DataLoader: (1) the random crop of
sample i in epoch e must not depend on which worker made it or on what ran before, so every sample
draws its randomness from a generator seeded by (seed, epoch, i); (2) the order of samples in an
epoch is a pure function of (seed, epoch), so a resumed run can skip exactly the samples already
seen. With both, a run killed mid-epoch and resumed sees the same batches as one that never stopped.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from mtl.data.transforms import PerspectiveCrop, PhotometricJitter, Target
from mtl.datasets import DatasetLayout, SplitDataset
from mtl.tasks import Task


def _derive_seed(*keys: int) -> int:
    return int(np.random.SeedSequence(list(keys)).generate_state(1, dtype=np.uint64)[0] >> 1)


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """Seed of the augmentation of sample ``index`` in ``epoch``."""
    return _derive_seed(seed, 0, epoch, index)


def order_seed(seed: int, epoch: int) -> int:
    """Seed of the sample order of ``epoch``."""
    return _derive_seed(seed, 1, epoch)


def augmentation_targets(tasks: Mapping[str, Task]) -> dict[str, Target]:
    """How the geometric augmentation resamples each task's target (the task says)."""
    return {name: Target(task.fill, getattr(torch, task.target_dtype), task.reorient) for name, task in tasks.items()}


class AugmentedDataset(Dataset):
    """Wraps a split; an item key is (epoch, index) and its augmentation is seeded from it."""

    def __init__(self, base: SplitDataset, cfg: argparse.Namespace) -> None:
        self.base = base
        self.seed = cfg.seed
        self.crop = PerspectiveCrop(
            crop_size=cfg.aug_input_crop_size,
            scale_min=cfg.aug_geom_scale_min,
            scale_max=cfg.aug_geom_scale_max,
            tilt_max_deg=cfg.aug_geom_tilt_max_deg,
            wiggle_max_ratio=cfg.aug_geom_wiggle_max_ratio,
            reflect=cfg.aug_geom_reflect,
            targets=augmentation_targets(base.tasks),
        )
        self.jitter = PhotometricJitter(*cfg.aug_photometric) if any(cfg.aug_photometric) else None

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, Any]:
        epoch, index = key
        generator = torch.Generator().manual_seed(sample_seed(self.seed, epoch, index))
        sample = self.crop(self.base[index], generator)
        if self.jitter is not None:
            sample = self.jitter(sample, generator)
        return sample


class ResumableSampler(Sampler):
    """Shuffled (epoch, index) keys, a shard per process, that can start part-way into an epoch.

    Each process takes every world-th element of the epoch's permutation, truncated to the same
    length, so all processes run the same number of steps (DDP needs that).
    """

    def __init__(self, size: int, seed: int, rank: int = 0, world_size: int = 1) -> None:
        self.size, self.seed, self.rank, self.world_size = size, seed, rank, world_size
        self.epoch = 0
        self.skip = 0  # samples of this process already consumed in self.epoch (set on resume)

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning at the start of every epoch; a pending resume offset applies once."""
        if epoch != self.epoch:
            self.skip = 0
        self.epoch = epoch

    def resume_at(self, epoch: int, samples_done: int) -> None:
        self.epoch, self.skip = epoch, samples_done

    def __len__(self) -> int:
        return self.size // self.world_size

    def __iter__(self) -> Iterator[tuple[int, int]]:
        generator = torch.Generator().manual_seed(order_seed(self.seed, self.epoch))
        order = torch.randperm(self.size, generator=generator)[self.rank :: self.world_size][: len(self)]
        skip, self.skip = self.skip, 0
        for index in order[skip:].tolist():
            yield self.epoch, index


class ShardSampler(Sampler):
    """Indices rank, rank + world, …: every sample evaluated exactly once across processes (no padding)."""

    def __init__(self, size: int, rank: int = 0, world_size: int = 1) -> None:
        self.indices = list(range(rank, size, world_size))

    def __len__(self) -> int:
        return len(self.indices)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)


def _workers(requested: int) -> int:
    return min(requested, os.cpu_count() or 1)


def train_loader(cfg: argparse.Namespace, sampler: ResumableSampler, dataset: Dataset) -> DataLoader:
    workers = _workers(cfg.workers)
    return DataLoader(
        dataset,
        batch_size=cfg.batch_size,
        sampler=sampler,
        drop_last=True,
        num_workers=workers,
        pin_memory=torch.cuda.is_available(),
        persistent_workers=workers > 0,
        prefetch_factor=4 if workers > 0 else None,
    )


def eval_loader(cfg: argparse.Namespace, dataset: Dataset, rank: int = 0, world_size: int = 1) -> DataLoader:
    workers = _workers(cfg.workers_validation)
    return DataLoader(
        dataset,
        batch_size=cfg.batch_size_validation,
        sampler=ShardSampler(len(dataset), rank, world_size),
        num_workers=workers,
        pin_memory=torch.cuda.is_available(),
        persistent_workers=workers > 0,
    )


class TrainingData(pl.LightningDataModule):
    """The train split (augmented, in a resumable order) and the val split (full images) of one dataset."""

    def __init__(self, cfg: argparse.Namespace, layout: DatasetLayout, tasks: Mapping[str, Task]) -> None:
        super().__init__()
        self.cfg = cfg
        self.train_split = SplitDataset(layout, "train", tasks)
        self.train_dataset = AugmentedDataset(self.train_split, cfg)
        self.val_dataset = SplitDataset(layout, "val", tasks)
        self.train_sampler: ResumableSampler | None = None
        self.pending_resume: tuple[int, int] | None = None

    def train_dataloader(self) -> DataLoader:
        trainer = self.trainer
        self.train_sampler = ResumableSampler(
            len(self.train_dataset), self.cfg.seed, trainer.global_rank, trainer.world_size
        )
        if self.pending_resume is not None:
            epoch, batches_done = self.pending_resume
            self.train_sampler.resume_at(epoch, batches_done * self.cfg.batch_size)
        return train_loader(self.cfg, self.train_sampler, self.train_dataset)

    def val_dataloader(self) -> DataLoader:
        return eval_loader(self.cfg, self.val_dataset, self.trainer.global_rank, self.trainer.world_size)

    def steps_per_epoch(self, world_size: int) -> int:
        return (len(self.train_dataset) // world_size) // self.cfg.batch_size
