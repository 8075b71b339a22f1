"""DeepLabV3+ decoder and the skip-less refinement decoder of the distillation model's second stage."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from mtl.models.conv_bn_relu import ConvBNReLU
from mtl.models.ops import resize
from mtl.models.se import SqueezeExcitation


def refine_blocks(in_channels: int, channels: int, num_blocks: int, se: bool = False) -> nn.Sequential:
    """``num_blocks`` 3×3 ConvBNReLU layers to ``channels`` (each followed by SE when asked)."""
    layers: list[nn.Module] = []
    for index in range(num_blocks):
        layers.append(ConvBNReLU(in_channels if index == 0 else channels, channels, 3))
        if se:
            layers.append(SqueezeExcitation(channels))
    return nn.Sequential(*layers)


class DeepLabV3PlusDecoder(nn.Module):
    """Context features + encoder skips → (predictions dict, features), at the finest skip's scale.

    For each skip scale, coarse to fine (4×, plus the optional extra 8× and 2×): upsample the current
    features to the skip's size, concat the skip projected by a 1×1 ConvBNReLU to ``skip_channels``,
    refine with 3×3 ConvBNReLU blocks (``num_blocks`` at 4×, one at an extra scale). ``head`` maps the
    final ``channels``-wide features to the predictions.
    """

    def __init__(
        self,
        in_channels: int,
        encoder_channels: Mapping[int, int],
        head: nn.Module,
        channels: int = 256,
        skip_channels: int = 48,
        num_blocks: int = 1,
        extra_skips: Sequence[int] = (),
        se: bool = False,
    ):
        super().__init__()
        self.out_channels = channels
        self.scales = sorted({4, *extra_skips}, reverse=True)
        self.skips = nn.ModuleDict()
        self.stages = nn.ModuleDict()
        current = in_channels
        for scale in self.scales:
            self.skips[f"scale{scale}"] = ConvBNReLU(encoder_channels[scale], skip_channels, 1)
            blocks = num_blocks if scale == 4 else 1
            self.stages[f"scale{scale}"] = refine_blocks(current + skip_channels, channels, blocks, se)
            current = channels
        self.head = head

    def forward(self, context: torch.Tensor, features: Mapping[int, torch.Tensor]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        x = context
        for scale in self.scales:
            skip = self.skips[f"scale{scale}"](features[scale])
            x = torch.cat([resize(x, skip.shape[-2:]), skip], dim=1)
            x = self.stages[f"scale{scale}"](x)
        return self.head(x), x


class RefineDecoder(nn.Module):
    """The distillation model's final decoder: the DeepLabV3+ refinement without a skip, then ``head``."""

    def __init__(self, in_channels: int, head: nn.Module, channels: int = 256, num_blocks: int = 1, se: bool = False):
        super().__init__()
        self.out_channels = channels if num_blocks else in_channels
        self.blocks = refine_blocks(in_channels, channels, num_blocks, se)
        self.head = head

    def forward(self, x: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        x = self.blocks(x)
        return self.head(x), x
