"""Data loading for training: deterministic per-sample augmentation and a sampler that resumes mid-epoch.

Exact resume needs two things Lightning does not give a plain DataLoader: (1) the random crop of
sample i in epoch e must not depend on which worker made it or on what ran before, so every sample
draws its randomness from a generator seeded by (seed, epoch, i); (2) the order of samples in an
epoch is a pure function of (seed, epoch), so a resumed run can skip exactly the samples already
seen. With both, a run killed mid-epoch and resumed sees the same batches as one that never stopped.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from mtl.data.transforms import PerspectiveCrop, PhotometricJitter, Target
from mtl.datasets import DatasetLayout, SplitDataset
from mtl.tasks import Task


@dataclass(frozen=True)
class AugmentationOptions:
    """The training crop and its random geometry and colour (``--aug_*``)."""

    crop_size: int
    scale_min: float  # source region, × crop size
    scale_max: float
    tilt_max_deg: float
    wiggle_max_ratio: float
    reflect: bool
    photometric: tuple[float, ...]  # brightness, contrast, saturation, hue (0: off)


@dataclass(frozen=True)
class DataOptions:
    """What the loaders need: the seed of sample order and augmentation, batches and worker processes."""

    seed: int
    batch_size: int  # training, per process
    batch_size_validation: int
    workers: int  # training loader processes (capped at the CPU count)
    workers_validation: int
    augmentation: AugmentationOptions


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

    def __init__(self, base: SplitDataset, augmentation: AugmentationOptions, seed: int) -> None:
        self.base = base
        self.seed = seed
        self.crop = PerspectiveCrop(
            crop_size=augmentation.crop_size,
            scale_min=augmentation.scale_min,
            scale_max=augmentation.scale_max,
            tilt_max_deg=augmentation.tilt_max_deg,
            wiggle_max_ratio=augmentation.wiggle_max_ratio,
            reflect=augmentation.reflect,
            targets=augmentation_targets(base.tasks),
        )
        photometric = augmentation.photometric
        self.jitter = PhotometricJitter(*photometric) if any(photometric) else None

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


def train_loader(options: DataOptions, sampler: ResumableSampler, dataset: Dataset) -> DataLoader:
    workers = _workers(options.workers)
    return DataLoader(
        dataset,
        batch_size=options.batch_size,
        sampler=sampler,
        drop_last=True,
        num_workers=workers,
        pin_memory=torch.cuda.is_available(),
        persistent_workers=workers > 0,
        prefetch_factor=4 if workers > 0 else None,
    )


def eval_loader(options: DataOptions, dataset: Dataset, rank: int = 0, world_size: int = 1) -> DataLoader:
    workers = _workers(options.workers_validation)
    return DataLoader(
        dataset,
        batch_size=options.batch_size_validation,
        sampler=ShardSampler(len(dataset), rank, world_size),
        num_workers=workers,
        pin_memory=torch.cuda.is_available(),
        persistent_workers=workers > 0,
    )


class TrainingData(pl.LightningDataModule):
    """The train split (augmented, in a resumable order) and the val split (full images) of one dataset."""

    def __init__(self, options: DataOptions, layout: DatasetLayout, tasks: Mapping[str, Task]) -> None:
        super().__init__()
        self.options = options
        self.train_split = SplitDataset(layout, "train", tasks)
        self.train_dataset = AugmentedDataset(self.train_split, options.augmentation, options.seed)
        self.val_dataset = SplitDataset(layout, "val", tasks)
        self.train_sampler: ResumableSampler | None = None
        self.pending_resume: tuple[int, int] | None = None

    def train_dataloader(self) -> DataLoader:
        trainer = self.trainer
        self.train_sampler = ResumableSampler(
            len(self.train_dataset), self.options.seed, trainer.global_rank, trainer.world_size
        )
        if self.pending_resume is not None:
            epoch, batches_done = self.pending_resume
            self.train_sampler.resume_at(epoch, batches_done * self.options.batch_size)
        return train_loader(self.options, self.train_sampler, self.train_dataset)

    def val_dataloader(self) -> DataLoader:
        return eval_loader(self.options, self.val_dataset, self.trainer.global_rank, self.trainer.world_size)

    def steps_per_epoch(self, world_size: int) -> int:
        return (len(self.train_dataset) // world_size) // self.options.batch_size
