"""PAD-Net (Xu, Ouyang, Wang and Sebe, CVPR 2018), structured as MTL-PyTorch's ``models/padnet.py``.

Encoder bottleneck features → per task two bottleneck blocks to ``--decoder_channels`` (C) wide features and
a 1×1 head: the initial predictions (deep supervision) → multi-modal distillation: each task's features plus
a gated message (conv3×3 · sigmoid(conv3×3)) from every other task's features → per task two bottleneck
blocks and a 1×1 head: the final prediction. Outputs per task are [initial, final], both at the input size;
the tasks' losses average them (``deep_supervision_mean``).

How it differs from mtl's ``distillation`` model (the course's PAD-Net-style variant): that one builds on the
branched model (per task ASPP and a DeepLabV3+ decoder with a 4× skip, initial predictions from 3×3 heads at
1/4 resolution) and refines the distilled features with the decoder's 3×3 ConvBNReLU blocks; ``padnet`` has
no context module, decoder or skip: the initial and final stages are bottleneck towers with 1×1 heads on the
encoder's bottleneck features, at the encoder's output stride (upsampled bilinearly at the end).

How it differs from MTL-PyTorch: the encoder is mtl's ResNet (any depth). MTL-PyTorch's configs run PAD-Net on
HRNet-18 with its four branches upsampled and fused (270 channels at 1/4); its code also takes a dilated
ResNet-18/50 at output stride 8, the closest mtl has (``--dilations F,T,T``; the default F,F,F gives stride 32). The
width C is ``--decoder_channels`` (256 there and by default); the gate conv starts at zero (mtl's
``SelfAttention``: every gate starts at 0.5; ``--sa_scale`` adds a learned scale) where MTL-PyTorch uses
PyTorch's default init; the loss averages the two outputs where MTL-PyTorch sums them (half the scale).
MTL-PyTorch also allows auxiliary tasks that are predicted but not output; here every task is both.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import torch
from torch import nn

from mtl.models.builders import build_encoder
from mtl.models.multimodal_distillation import MultiModalDistillation
from mtl.models.ops import resize
from mtl.models.options import ModelOptions, TaskOutput
from mtl.models.registry import register_model
from mtl.models.resnet import Bottleneck
from mtl.models.task_prediction import TaskPredictions


@register_model("padnet")
class PADNet(nn.Module):
    def __init__(self, outputs: Mapping[str, TaskOutput], options: ModelOptions):
        super().__init__()
        if options.task_encoders:
            raise ValueError("--task_encoders: padnet shares one encoder among the tasks; branched or distillation have one per task")
        self.tasks = list(outputs)
        self.encoder = build_encoder(options.encoder)
        self.bottleneck_scale = self.encoder.bottleneck_scale
        channels = options.decoder.channels
        self.initial = TaskPredictions(Bottleneck, self.encoder.channels[self.bottleneck_scale], channels, outputs)
        self.distillation = MultiModalDistillation(self.tasks, channels, options.sa_scale)
        self.final = TaskPredictions(Bottleneck, channels, channels, outputs)

    def forward(self, x: torch.Tensor) -> dict[str, list[torch.Tensor]]:
        features = self.encoder(x)[self.bottleneck_scale]
        initial, task_features = self.initial({task: features for task in self.tasks})
        final, _ = self.final(self.distillation(task_features))
        return {task: [resize(initial[task], x.shape[-2:]), resize(final[task], x.shape[-2:])] for task in self.tasks}

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        """What every task's loss reaches: the encoder and every task's initial feature tower, which the other tasks
        read through the distillation. The initial heads, the messages into a task and its final stage serve one task."""
        own = [self.distillation, self.final, *(module.head for module in self.initial.task.values())]
        excluded = {id(p) for module in own for p in module.parameters()}
        return (p for p in self.parameters() if id(p) not in excluded)

    def parts(self) -> dict[str, nn.Module]:
        """Named parts for the complexity breakdown (a part nested in another is counted apart)."""
        parts: dict[str, nn.Module] = {"encoder": self.encoder}
        for task in self.tasks:
            parts[f"initial.{task}"] = self.initial.task[task]
            parts[f"distillation.{task}"] = self.distillation.into[task]
            parts[f"final.{task}"] = self.final.task[task]
        return parts
