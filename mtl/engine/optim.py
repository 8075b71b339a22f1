"""The optimiser and the learning-rate schedule, from typed options (the flags map onto them here, once)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from mtl.engine import schedule


@dataclass(frozen=True)
class OptimizerOptions:
    name: str = "sgd"  # sgd, adam or adamw
    lr: float = 0.01
    momentum: float = 0.9  # SGD only
    weight_decay: float = 1e-4

    @classmethod
    def from_flags(cls, flags: argparse.Namespace) -> OptimizerOptions:
        return cls(flags.optimizer, flags.optimizer_lr, flags.optimizer_momentum, flags.optimizer_weight_decay)


@dataclass(frozen=True)
class ScheduleOptions:
    kind: str = "poly"  # poly or constant
    power: float = 0.9
    warmup: int = 0  # linear warm-up length, in scheduler units
    unit: str = "epoch"  # the course steps poly per epoch; "step" per optimiser step
    num_epochs: int = 16

    @classmethod
    def from_flags(cls, flags: argparse.Namespace) -> ScheduleOptions:
        return cls(
            flags.lr_scheduler, flags.lr_scheduler_power, flags.lr_warmup, flags.lr_scheduler_step_unit, flags.num_epochs
        )

    def length(self, steps_per_epoch: int, num_epochs: int | None = None) -> int:
        """Scheduler indices in ``num_epochs`` (default: the whole run)."""
        epochs = self.num_epochs if num_epochs is None else num_epochs
        return epochs * (steps_per_epoch if self.unit == "step" else 1)


def build_optimizer(groups: Sequence[dict[str, Any]], options: OptimizerOptions) -> torch.optim.Optimizer:
    if options.name == "sgd":
        return torch.optim.SGD(groups, lr=options.lr, momentum=options.momentum, weight_decay=options.weight_decay)
    if options.name == "adam":
        return torch.optim.Adam(groups, lr=options.lr, weight_decay=options.weight_decay)
    if options.name == "adamw":
        return torch.optim.AdamW(groups, lr=options.lr, weight_decay=options.weight_decay)
    raise ValueError(f"unknown optimizer {options.name!r}; choose sgd, adam or adamw")


def build_scheduler(
    optimizer: torch.optim.Optimizer, options: ScheduleOptions, segments: list[schedule.Segment]
) -> torch.optim.lr_scheduler.LambdaLR:
    """Poly decay over ``segments`` (see mtl.engine.schedule) or a constant rate, after the warm-up."""

    def factor(index: int) -> float:
        if options.kind == "constant":
            return (index + 1) / (options.warmup + 1) if index < options.warmup else 1.0
        return schedule.poly_factor(index, segments, options.power, options.warmup)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
