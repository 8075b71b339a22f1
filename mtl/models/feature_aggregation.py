"""MTI-Net's feature aggregation (sec. 3.4), as MTL-PyTorch's HRNet head: a task's features of every scale
upsampled to the finest, concatenated, a 1×1 ConvBNReLU and a 1×1 prediction head."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from mtl.models.conv_bn_relu import ConvBNReLU
from mtl.models.heads import PredictionHead
from mtl.models.ops import resize
from mtl.models.options import TaskOutput


class FeatureAggregation(nn.Module):
    def __init__(self, channels: Sequence[int], outputs: Mapping[str, TaskOutput]):
        super().__init__()
        total = sum(channels)
        self.fuse = ConvBNReLU(total, total, 1)
        self.head = PredictionHead(total, outputs, kernel_size=1)

    def forward(self, features: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
        """``features`` finest first; all are brought to the size of the first."""
        size = features[0].shape[-2:]
        return self.head(self.fuse(torch.cat([features[0], *(resize(f, size) for f in features[1:])], dim=1)))
