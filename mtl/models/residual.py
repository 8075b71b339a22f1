"""Two ResNet blocks in a row, with a 1×1 conv-BN shortcut when the width changes: the per-task feature
refinement of PAD-Net (bottleneck blocks) and MTI-Net (basic blocks), and MTI-Net's propagation module."""

from __future__ import annotations

from torch import nn

from mtl.models.resnet import BasicBlock, Bottleneck


def projection(in_channels: int, out_channels: int) -> nn.Sequential | None:
    """The shortcut of a block that changes the width (none when it does not)."""
    if in_channels == out_channels:
        return None
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels))


def residual_block(block: type[BasicBlock | Bottleneck], in_channels: int, out_channels: int) -> BasicBlock | Bottleneck:
    """One stride-1 block from ``in_channels`` to ``out_channels`` (a multiple of the block's expansion)."""
    if out_channels % block.expansion:
        raise ValueError(f"{block.__name__} needs a width divisible by {block.expansion}, got {out_channels}")
    return block(in_channels, out_channels // block.expansion, 1, 1, 1, projection(in_channels, out_channels))


def residual_pair(block: type[BasicBlock | Bottleneck], in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(residual_block(block, in_channels, out_channels), residual_block(block, out_channels, out_channels))
