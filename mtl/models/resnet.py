"""ResNet-18/34/50/101 encoders returning a feature pyramid, with torchvision's state-dict layout.

Written in plain torch because torchvision is unusable here; module and parameter names mirror
torchvision's ResNet (conv1, bn1, layer1.0.conv1, …, downsample.0/1) so its ImageNet files load as-is.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from mtl.models.registry import register_encoder


def _conv3x3(in_ch: int, out_ch: int, stride: int = 1, dilation: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)


class BasicBlock(nn.Module):
    """Two 3×3 convs. ``first_dilation`` is for the (possibly strided) first conv, ``dilation`` for the rest.

    torchvision refuses dilation in BasicBlock; here the conv after a removed stride is dilated, as the
    atrous algorithm requires for the dilated network to see what the strided one saw.
    """

    expansion = 1

    def __init__(self, in_ch: int, planes: int, stride: int, first_dilation: int, dilation: int, downsample: nn.Module | None):
        super().__init__()
        self.conv1 = _conv3x3(in_ch, planes, stride, first_dilation)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes, 1, dilation)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def last_bn(self) -> nn.BatchNorm2d:
        return self.bn2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class Bottleneck(nn.Module):
    """1×1 → 3×3 (strided, torchvision v1.5 style) → 1×1 with 4× expansion."""

    expansion = 4

    def __init__(self, in_ch: int, planes: int, stride: int, first_dilation: int, dilation: int, downsample: nn.Module | None):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes, stride, first_dilation)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def last_bn(self) -> nn.BatchNorm2d:
        return self.bn3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + identity)


class ResNet(nn.Module):
    """ResNet without avgpool/fc. ``forward(x)`` → {scale: features}, scale = input size / feature size.

    Scales are the nominal strides (exact also for sizes not divisible by 32). A stage whose stride
    is replaced by dilation stays at the previous scale and overwrites it: the dict keeps the deepest
    features of each scale. ``channels`` gives the channel count of every scale in that dict.
    """

    def __init__(self, block: type[BasicBlock | Bottleneck], layers: Sequence[int], dilations: Sequence[bool], weights_file: str):
        super().__init__()
        if len(dilations) != 3:
            raise ValueError(f"dilations must be 3 booleans (layer2, layer3, layer4), got {tuple(dilations)}")
        self.dilations = tuple(bool(d) for d in dilations)
        self.weights_file = weights_file
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.channels = {1: 3, 2: 64, 4: 64}
        self._stage_scales: list[int] = []
        in_ch, scale, dilation = 64, 4, 1
        for index, (planes, blocks) in enumerate(zip((64, 128, 256, 512), layers)):
            stride = 1 if index == 0 else 2
            previous_dilation = dilation
            if index > 0 and dilations[index - 1]:
                dilation, stride = dilation * stride, 1
            scale *= stride
            downsample = None
            if stride != 1 or in_ch != planes * block.expansion:
                downsample = nn.Sequential(
                    nn.Conv2d(in_ch, planes * block.expansion, 1, stride=stride, bias=False),
                    nn.BatchNorm2d(planes * block.expansion),
                )
            stage = [block(in_ch, planes, stride, previous_dilation, dilation, downsample)]
            in_ch = planes * block.expansion
            stage += [block(in_ch, planes, 1, dilation, dilation, None) for _ in range(blocks - 1)]
            self.add_module(f"layer{index + 1}", nn.Sequential(*stage))
            self._stage_scales.append(scale)
            self.channels[scale] = in_ch
        self.bottleneck_scale = scale
        self._init_weights()

    def _init_weights(self) -> None:
        """torchvision's init with zero_init_residual=True, as the course template built its encoder."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        for module in self.modules():
            if isinstance(module, (BasicBlock, Bottleneck)):
                nn.init.zeros_(module.last_bn().weight)

    def forward(self, x: torch.Tensor) -> dict[int, torch.Tensor]:
        features = {1: x}
        x = self.relu(self.bn1(self.conv1(x)))
        features[2] = x
        x = self.maxpool(x)
        for index, scale in enumerate(self._stage_scales):
            x = getattr(self, f"layer{index + 1}")(x)
            features[scale] = x
        return features


@register_encoder("resnet18")
def resnet18(dilations: Sequence[bool]) -> ResNet:
    return ResNet(BasicBlock, (2, 2, 2, 2), dilations, "resnet18-f37072fd.pth")


@register_encoder("resnet34")
def resnet34(dilations: Sequence[bool]) -> ResNet:
    return ResNet(BasicBlock, (3, 4, 6, 3), dilations, "resnet34-b627a593.pth")


@register_encoder("resnet50")
def resnet50(dilations: Sequence[bool]) -> ResNet:
    return ResNet(Bottleneck, (3, 4, 6, 3), dilations, "resnet50-11ad3fa6.pth")


@register_encoder("resnet101")
def resnet101(dilations: Sequence[bool]) -> ResNet:
    return ResNet(Bottleneck, (3, 4, 23, 3), dilations, "resnet101-cd907fc2.pth")
