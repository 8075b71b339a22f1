"""Atrous Spatial Pyramid Pooling (DeepLabV3): multi-rate context on the encoder bottleneck."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from mtl.models.conv_bn_relu import ConvBNReLU
from mtl.models.se import SqueezeExcitation


class ImagePooling(nn.Module):
    """Global average → 1×1 ConvBNReLU → broadcast back to the input size (the image-level branch).

    Its BatchNorm sees one value per channel and image, so training needs batches of ≥ 2 images.
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.conv = ConvBNReLU(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Bilinear upsampling of a 1×1 map is a broadcast; expand does it without interpolation.
        return self.conv(self.pool(x)).expand(-1, -1, x.shape[-2], x.shape[-1])


class AtrousBranch(ConvBNReLU):
    def __init__(self, in_channels: int, out_channels: int, rate: int):
        super().__init__(in_channels, out_channels, 3, dilation=rate)


class ASPP(nn.Module):
    """1×1 branch, one 3×3 atrous branch per rate and image pooling; concat → 1×1 ConvBNReLU (→ SE)."""

    branch_type: type[nn.Module] = AtrousBranch

    def __init__(self, in_channels: int, out_channels: int = 256, rates: Sequence[int] = (3, 6, 9), se: bool = False):
        super().__init__()
        self.out_channels = out_channels
        branches = [ConvBNReLU(in_channels, out_channels, 1)]
        branches += [self.branch_type(in_channels, out_channels, rate) for rate in rates]
        branches.append(ImagePooling(in_channels, out_channels))
        self.branches = nn.ModuleList(branches)
        project = [ConvBNReLU(out_channels * len(branches), out_channels, 1)]
        if se:
            project.append(SqueezeExcitation(out_channels))
        self.project = nn.Sequential(*project)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(torch.cat([branch(x) for branch in self.branches], dim=1))
