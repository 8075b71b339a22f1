"""Prediction heads: decoder features → one prediction tensor per task."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn


class PredictionHead(nn.Module):
    """One k×k conv (with bias) for all tasks with plain heads, split per task, plus optional
    dedicated heads (e.g. adaptive bins for depth) that replace the conv's channels of their task.

    One conv over the summed channels is the course's joint head ("19 + 1 channels"); it equals one
    conv per task, so the same class serves the joint and the per-task decoders.
    """

    def __init__(self, in_channels: int, outputs_desc: Mapping[str, int], kernel_size: int = 3, special: Mapping[str, nn.Module] | None = None):
        super().__init__()
        special = dict(special or {})
        unknown = set(special) - set(outputs_desc)
        if unknown:
            raise ValueError(f"dedicated heads for tasks not in outputs_desc: {sorted(unknown)}")
        self.tasks = list(outputs_desc)
        self.plain = {task: channels for task, channels in outputs_desc.items() if task not in special}
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
