"""The optimiser and the learning-rate schedule, built from their typed options (``mtl.optimization``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from mtl.engine import schedule
from mtl.optimization import OPTIMIZERS, OptimizerOptions, ScheduleOptions


def build_optimizer(groups: Sequence[dict[str, Any]], options: OptimizerOptions) -> torch.optim.Optimizer:
    if options.name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {options.name!r}; choose among {', '.join(OPTIMIZERS)}")
    kind = OPTIMIZERS[options.name]
    momentum = {"momentum": options.momentum} if kind.momentum else {}
    return getattr(torch.optim, kind.torch_class)(groups, lr=options.lr, weight_decay=options.weight_decay, **momentum)


def build_scheduler(
    optimizer: torch.optim.Optimizer, options: ScheduleOptions, segments: list[schedule.Segment]
) -> torch.optim.lr_scheduler.LambdaLR:
    """Poly decay over ``segments`` (see mtl.engine.schedule) or a constant rate, after the warm-up."""

    def factor(index: int) -> float:
        if options.kind == "constant":
            return (index + 1) / (options.warmup + 1) if index < options.warmup else 1.0
        return schedule.poly_factor(index, segments, options.power, options.warmup)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
