"""Multi-modal distillation (PAD-Net, Xu et al. CVPR 2018; MTI-Net's per-scale distillation): each task's
features plus, from every other task, that task's features passed through a gated conv (``SelfAttention``:
conv3×3(x) · sigmoid(conv3×3(x))). With one task there is no message and the features pass unchanged."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from mtl.models.attention import SelfAttention


class TaskMessages(nn.Module):
    """What flows into ``target``: its own features plus one gated message per other task."""

    def __init__(self, target: str, sources: Sequence[str], channels: int, learned_scale: bool = False):
        super().__init__()
        self.target = target
        self.message = nn.ModuleDict({source: SelfAttention(channels, channels, learned_scale) for source in sources})

    def forward(self, features: Mapping[str, torch.Tensor]) -> torch.Tensor:
        out = features[self.target]
        for source, gate in self.message.items():
            out = out + gate(features[source])
        return out


class MultiModalDistillation(nn.Module):
    """``forward({task: features})`` → {task: distilled features}, all tasks at ``channels`` wide."""

    def __init__(self, tasks: Sequence[str], channels: int, learned_scale: bool = False):
        super().__init__()
        self.into = nn.ModuleDict(
            {target: TaskMessages(target, [s for s in tasks if s != target], channels, learned_scale) for target in tasks}
        )

    def forward(self, features: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {target: module(features) for target, module in self.into.items()}
