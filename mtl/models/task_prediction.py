"""Per-task feature refinement plus a 1×1 prediction head: the initial (deep-supervised) predictions of
PAD-Net and MTI-Net and PAD-Net's final heads."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from mtl.models.heads import PredictionHead
from mtl.models.options import TaskOutput
from mtl.models.residual import residual_pair
from mtl.models.resnet import BasicBlock, Bottleneck


class TaskPrediction(nn.Module):
    """Two residual blocks to ``channels``, then a 1×1 head; ``forward(x) -> (predictions dict, features)``."""

    def __init__(self, block: type[BasicBlock | Bottleneck], in_channels: int, channels: int, outputs: Mapping[str, TaskOutput]):
        super().__init__()
        self.out_channels = channels
        self.tower = residual_pair(block, in_channels, channels)
        self.head = PredictionHead(channels, outputs, kernel_size=1)

    def forward(self, x: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        features = self.tower(x)
        return self.head(features), features


class TaskPredictions(nn.Module):
    """One ``TaskPrediction`` per task, called with each task's input: ``forward({task: x})`` →
    ({task: prediction}, {task: features})."""

    def __init__(self, block: type[BasicBlock | Bottleneck], in_channels: int, channels: int, outputs: Mapping[str, TaskOutput]):
        super().__init__()
        self.task = nn.ModuleDict({task: TaskPrediction(block, in_channels, channels, {task: out}) for task, out in outputs.items()})

    def forward(self, inputs: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        predictions, features = {}, {}
        for task, module in self.task.items():
            out, features[task] = module(inputs[task])
            predictions[task] = out[task]
        return predictions, features
