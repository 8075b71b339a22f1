"""Running a ResNet encoder stage by stage, for models that act between its stages (MTAN, cross-stitch).

``StagedEncoder`` holds a ResNet's own modules under the same names (its state dict is the ResNet's, so
ImageNet weights and branched-model checkpoints carry over) and runs one step per call: the stem and
max-pool, or one stage ``layer1..layer4``. Every step goes through the module's own call, so that hooks
and profilers (``mtl complexity``) see the encoder as the caller; ``Indexed`` does the same for a list
of per-stage modules.
"""

from __future__ import annotations

import torch
from torch import nn

STAGE_NAMES = ("layer1", "layer2", "layer3", "layer4")
_MODULES = ("conv1", "bn1", "relu", "maxpool", *STAGE_NAMES)
STEM = -1  # the step before the stages: conv1-bn1-relu (scale 2), then the max-pool


class StagedEncoder(nn.Module):
    """A ResNet run one step per call. ``encoder(x)`` is the ResNet's whole pyramid {scale: features};
    ``encoder(x, STEM)`` → (stem features at scale 2, max-pooled); ``encoder(x, j)`` → stage j's output;
    ``encoder(x, j, split=True)`` → (features before stage j's last block, stage j's output)."""

    def __init__(self, encoder: nn.Module, model_name: str):
        super().__init__()
        missing = [name for name in (*_MODULES, "dilations", "channels", "bottleneck_scale") if not hasattr(encoder, name)]
        if missing:
            raise ValueError(
                f"{model_name} runs the encoder stage by stage and needs a ResNet-style encoder ({', '.join(_MODULES)}); "
                f"{type(encoder).__name__} lacks {', '.join(missing)}"
            )
        for name in _MODULES:
            self.add_module(name, getattr(encoder, name))
        self.dilations = tuple(encoder.dilations)
        self.channels = dict(encoder.channels)
        self.bottleneck_scale = encoder.bottleneck_scale
        self.weights_file = getattr(encoder, "weights_file", None)
        # Output scale of each stage: 4 for layer1, then ×2 per stage unless its stride became dilation.
        self.scales = [4]
        for dilated in self.dilations:
            self.scales.append(self.scales[-1] * (1 if dilated else 2))
        self.stage_channels = [getattr(self, name)[-1].last_bn().num_features for name in STAGE_NAMES]

    def stage(self, index: int) -> nn.Sequential:
        return getattr(self, STAGE_NAMES[index])

    def forward(self, x: torch.Tensor, step: int | None = None, split: bool = False):
        if step is None:
            features = {1: x}
            h = self.relu(self.bn1(self.conv1(x)))
            features[2] = h
            h = self.maxpool(h)
            for index, scale in enumerate(self.scales):
                h = self.stage(index)(h)
                features[scale] = h
            return features
        if step == STEM:
            h = self.relu(self.bn1(self.conv1(x)))
            return h, self.maxpool(h)
        blocks = self.stage(step)
        if not split:
            return blocks(x)
        before_last = blocks[:-1](x)
        return before_last, blocks[-1](before_last)


class Indexed(nn.ModuleList):
    """A list of modules called through the list: ``modules(j, *args)`` runs ``modules[j](*args)`` inside the
    list's own call, so that the list is a part that ``mtl complexity`` can count."""

    def forward(self, index: int, *args):
        return self[index](*args)
