"""Prediction heads: decoder features → one prediction tensor per task."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from mtl.models.options import TaskOutput


class PredictionHead(nn.Module):
    """One k×k conv (with bias) for all tasks with plain outputs, split per task, plus dedicated heads
    (e.g. adaptive bins for depth) for the tasks whose ``TaskOutput`` brings one.

    One conv over the summed channels is the course's joint head ("19 + 1 channels"); it equals one
    conv per task, so the same class serves the joint and the per-task decoders.
    """

    def __init__(self, in_channels: int, outputs: Mapping[str, TaskOutput], kernel_size: int = 3):
        super().__init__()
        self.tasks = list(outputs)
        # Dedicated heads are built before the conv: the order in which parameters draw their initial values.
        special = {task: out.head(in_channels) for task, out in outputs.items() if out.head is not None}
        self.plain = {task: out.channels for task, out in outputs.items() if out.head is None}
        self.conv = None
        if self.plain:
            self.conv = nn.Conv2d(in_channels, sum(self.plain.values()), kernel_size, padding=kernel_size // 2)
        self.special = nn.ModuleDict(special)

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        if self.conv is not None:
            out.update(zip(self.plain, torch.split(self.conv(features), list(self.plain.values()), dim=1)))
        for task, head in self.special.items():
            out[task] = head(features)
        return {task: out[task] for task in self.tasks}
