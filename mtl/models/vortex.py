"""Vortex pooling (Xie et al. 2018), an ASPP alternative: each atrous branch first averages a window
as wide as its rate, so the dilated taps see local context instead of isolated pixels."""

from __future__ import annotations

from torch import nn

from mtl.models.aspp import ASPP
from mtl.models.conv_bn_relu import ConvBNReLU


class VortexBranch(nn.Sequential):
    def __init__(self, in_channels: int, out_channels: int, rate: int):
        if rate < 1 or rate % 2 == 0:
            raise ValueError(f"vortex pooling needs odd positive rates (the window is rate × rate), got {rate}")
        super().__init__(
            nn.AvgPool2d(rate, stride=1, padding=rate // 2, count_include_pad=False),
            ConvBNReLU(in_channels, out_channels, 3, dilation=rate),
        )


class VortexPooling(ASPP):
    """ASPP's layout (1×1, one branch per rate, image pooling, 1×1 projection) with pooled atrous branches."""

    branch_type = VortexBranch
