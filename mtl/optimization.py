"""Typed options of the optimiser and the learning-rate schedule, and the optimisers by name.

Torch-free, so that `mtl train`'s flags take their defaults and choices from here (``mtl.config``) without
importing torch for ``--help``; the engine builds the optimiser and the schedule from the same objects
(``mtl.engine.optim``).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass


@dataclass(frozen=True)
class OptimizerKind:
    """An optimiser of ``torch.optim`` by its class name, and whether it takes ``--optimizer_momentum``."""

    torch_class: str
    momentum: bool


# ``--optimizer`` name → optimiser: the flag's choices and what the engine builds.
OPTIMIZERS = {
    "sgd": OptimizerKind("SGD", momentum=True),
    "adam": OptimizerKind("Adam", momentum=False),
    "adamw": OptimizerKind("AdamW", momentum=False),
}
SCHEDULES = ("poly", "constant")  # --lr_scheduler
SCHEDULE_UNITS = ("epoch", "step")  # --lr_scheduler_step_unit


@dataclass(frozen=True)
class OptimizerOptions:
    name: str = "sgd"  # a key of OPTIMIZERS
    lr: float = 0.01
    momentum: float = 0.9  # optimisers that take a momentum (SGD)
    weight_decay: float = 1e-4

    @classmethod
    def from_flags(cls, flags: argparse.Namespace) -> OptimizerOptions:
        return cls(flags.optimizer, flags.optimizer_lr, flags.optimizer_momentum, flags.optimizer_weight_decay)


@dataclass(frozen=True)
class ScheduleOptions:
    kind: str = "poly"  # one of SCHEDULES
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
