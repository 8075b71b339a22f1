"""MTAN, the Multi-Task Attention Network (Liu, Johns and Davison, CVPR 2019), on a ResNet encoder.

One encoder is shared by all tasks. Each task owns a soft attention module per encoder stage that picks
its features out of the shared ones: for stage j with blocks b_1 … b_n, the mask

    m_j = sigmoid(BN(conv1×1(ReLU(BN(conv1×1(input_j))))))      (values in [0, 1], one per channel and pixel)

is computed from the stage's features before its last block (u_j = b_1…b_{n-1}), concatenated for j > 1
with the task's attended features of the previous stage, and multiplies the stage's output:
a_j = m_j ⊙ b_n(u_j). The attended features are chained: a_j goes through a block shared by the tasks
(conv-BN-ReLU 3×3 for BasicBlock encoders as in the paper's SegNet; a bottleneck block for ResNet-50/101
as in the authors' ResNet version), is max-pooled when the next stage halves the resolution, and
joins the next stage's mask input. The attention input thus has ``c`` channels at the first stage and
``2c`` afterwards (c = the stage's channels), the masks' hidden width is c/4.

Each task then has its own decoder, as in the branched model: its context module (ASPP) on its attended
bottleneck features and its DeepLabV3+ decoder, whose skips are the task's attended features of the
same scales (so the 4× skip is the task's attended layer1). Every parameter takes part in every forward.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from mtl.models.builders import build_context, build_decoder, build_encoder
from mtl.models.conv_bn_relu import ConvBNReLU
from mtl.models.ops import resize
from mtl.models.options import ModelOptions, TaskOutput
from mtl.models.registry import register_model
from mtl.models.resnet import Bottleneck
from mtl.models.stages import STEM, Indexed, StagedEncoder


class AttentionMask(nn.Sequential):
    """1×1 ConvBNReLU to ``hidden`` → 1×1 conv → BN → sigmoid: a soft mask in [0, 1] of ``out`` channels."""

    def __init__(self, in_channels: int, hidden: int, out_channels: int):
        super().__init__(
            ConvBNReLU(in_channels, hidden, 1),
            nn.Conv2d(hidden, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.Sigmoid(),
        )


def shared_block(encoder: StagedEncoder, in_channels: int, out_channels: int) -> nn.Module:
    """The block shared by the tasks between two attention stages (channels of stage j → stage j+1)."""
    if isinstance(encoder.stage(0)[-1], Bottleneck):
        planes = out_channels // Bottleneck.expansion
        downsample = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels))
        return Bottleneck(in_channels, planes, 1, 1, 1, downsample)
    return ConvBNReLU(in_channels, out_channels, 3)


@register_model("mtan")
class MTAN(nn.Module):
    def __init__(self, outputs: Mapping[str, TaskOutput], options: ModelOptions):
        super().__init__()
        if options.task_encoders:
            raise ValueError(
                "--task_encoders: mtan shares one encoder among the tasks (its attention modules make the features "
                "task-specific); cross_stitch or branched --task_encoders have one encoder per task"
            )
        self.tasks = list(outputs)
        self.context_name = options.context.kind
        self.encoder = StagedEncoder(build_encoder(options.encoder), "mtan")
        self.scales = self.encoder.scales
        channels = self.encoder.stage_channels
        self.attention = nn.ModuleDict(
            {
                task: Indexed(
                    [AttentionMask(c if j == 0 else 2 * c, max(1, c // 4), c) for j, c in enumerate(channels)]
                )
                for task in self.tasks
            }
        )
        self.shared = Indexed([shared_block(self.encoder, channels[j], channels[j + 1]) for j in range(len(channels) - 1)])
        self.bottleneck_scale = self.encoder.bottleneck_scale
        bottleneck_channels = channels[-1]
        self.context = nn.ModuleDict({task: build_context(options.context, bottleneck_channels) for task in self.tasks})
        self.decoder = nn.ModuleDict(
            {
                task: build_decoder(options.decoder, self.context[task].out_channels, self.encoder, {task: outputs[task]})
                for task in self.tasks
            }
        )

    def attend(self, x: torch.Tensor) -> tuple[dict[str, dict[int, torch.Tensor]], dict[str, list[torch.Tensor]]]:
        """(per task its attended pyramid {scale: features}, per task its attention mask of every stage).

        Scales 1 (the input) and 2 (the stem) are shared; every stage's scale holds the task's attended
        features (a dilated stage overwrites the previous one at the same scale, as in the encoder)."""
        stem, h = self.encoder(x, STEM)
        pyramids = {task: {1: x, 2: stem} for task in self.tasks}
        masks: dict[str, list[torch.Tensor]] = {task: [] for task in self.tasks}
        carried: dict[str, torch.Tensor] = {}
        for j, scale in enumerate(self.scales):
            before_last, h = self.encoder(h, j, split=True)
            for task in self.tasks:
                inputs = before_last if j == 0 else torch.cat([before_last, carried[task]], dim=1)
                mask = self.attention[task](j, inputs)
                attended = mask * h
                masks[task].append(mask)
                pyramids[task][scale] = attended
                if j + 1 < len(self.scales):
                    carried[task] = self._to_next_stage(self.shared(j, attended), self.scales[j + 1] // scale)
        return pyramids, masks

    @staticmethod
    def _to_next_stage(features: torch.Tensor, factor: int) -> torch.Tensor:
        """Max-pool by 2 when the next stage halves the resolution; ceil_mode gives the size a stride-2 conv gives."""
        return F.max_pool2d(features, 2, 2, ceil_mode=True) if factor == 2 else features

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        pyramids, _ = self.attend(x)
        out = {}
        for task in self.tasks:
            features = pyramids[task]
            predictions, _ = self.decoder[task](self.context[task](features[self.bottleneck_scale]), features)
            out[task] = resize(predictions[task], x.shape[-2:])
        return out

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        """What every task's loss reaches: the encoder and the attention blocks the tasks share."""
        yield from self.encoder.parameters()
        yield from self.shared.parameters()

    def parts(self) -> dict[str, nn.Module]:
        """Named parts for the complexity breakdown (a part nested in another is counted apart)."""
        parts: dict[str, nn.Module] = {"encoder": self.encoder, "attention.shared": self.shared}
        for task in self.tasks:
            parts[f"attention.{task}"] = self.attention[task]
            parts[f"{self.context_name}.{task}"] = self.context[task]
            parts[f"decoder.{task}"] = self.decoder[task]
            parts[f"head.{task}"] = self.decoder[task].head
        return parts
