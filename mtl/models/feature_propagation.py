"""MTI-Net's feature propagation module (Vandenhende et al., ECCV 2020, sec. 3.3): the tasks' features of one
scale, distilled into a shared representation that each task re-weights for itself before it joins the
task's features at the next finer scale.

The N tasks' features (C channels each) are concatenated; f (a basic block to N·C/4, a basic block, a 1×1
conv back to N·C) gives per channel and pixel a softmax over the tasks, which weights the concatenation; a
basic block reduces it to C channels; per task a squeeze-and-excitation picks from it, added to the task's
own features. The softmax groups channel c of every task, as the paper describes; MTL-PyTorch's reshape
(``view(B, C, N, H, W)`` of the task-major concatenation) instead groups N consecutive channels, mostly
of one task. With one task the softmax over one task is 1, so f is left out (it would get no gradient).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from mtl.models.residual import residual_block
from mtl.models.resnet import BasicBlock
from mtl.models.se import SqueezeExcitation


class FeaturePropagation(nn.Module):
    def __init__(self, tasks: Sequence[str], channels: int):
        super().__init__()
        self.tasks = list(tasks)
        shared = len(self.tasks) * channels
        self.task_attention = None
        if len(self.tasks) > 1:
            if shared % 4:
                raise ValueError(f"feature propagation needs tasks × channels divisible by 4, got {shared}")
            self.task_attention = nn.Sequential(
                residual_block(BasicBlock, shared, shared // 4),
                residual_block(BasicBlock, shared // 4, shared // 4),
                nn.Conv2d(shared // 4, shared, 1),
            )
        self.reduce = residual_block(BasicBlock, shared, channels)
        # At least 4 hidden units in the SE (MTL-PyTorch: channels // 16, a single unit for HRNet-18's 18 channels,
        # which one ReLU can switch off for good); the same for 64 channels or more.
        reduction = 16 if channels >= 64 else max(1, channels // 4)
        self.select = nn.ModuleDict({task: SqueezeExcitation(channels, reduction) for task in self.tasks})

    def forward(self, features: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        concat = torch.cat([features[task] for task in self.tasks], dim=1)
        if self.task_attention is not None:
            b, _, h, w = concat.shape
            n = len(self.tasks)
            weights = torch.softmax(self.task_attention(concat).view(b, n, -1, h, w), dim=1)
            concat = (weights * concat.view(b, n, -1, h, w)).view(b, -1, h, w)
        shared = self.reduce(concat)
        return {task: self.select[task](shared) + features[task] for task in self.tasks}
