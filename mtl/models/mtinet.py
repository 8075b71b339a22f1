"""MTI-Net (Vandenhende, Georgoulis and Van Gool, ECCV 2020), structured as MTL-PyTorch's ``models/mti_net.py``.

The encoder's four stages (layer1..layer4, C_1..C_4 channels) are the scales. From the coarsest stage to the
finest, per task: the stage's features (C_j wide, concatenated, below the coarsest, with the task's features propagated
from the coarser stage and resized to this one) → two basic blocks to the task width T_j and a 1×1 head: the initial
prediction of that scale (deep supervision). Between stages the feature propagation module
(``FeaturePropagation``) passes each task's features, mixed with the other tasks', down to the finer stage.
At every stage multi-modal distillation adds gated messages from the other tasks; per task the distilled
features of all stages go through the feature aggregation (``FeatureAggregation``): the final prediction.

Outputs per task: [initial of layer4, layer3, layer2, layer1, final], all at the input size; the tasks'
losses average them (``deep_supervision_mean``), where MTL-PyTorch sums the five.

How it differs from MTL-PyTorch: the backbone is mtl's ResNet (stages at 1/4..1/32, 64..512 channels for
ResNet-18/34, 256..2048 for ResNet-50/101) instead of HRNet-18 (four branches at 1/4..1/32, 18..144 channels);
MTL-PyTorch sets a stage's per-task width to HRNet's width of that stage; here it is the stage's base width
(64, 128, 256, 512; for ResNet-50/101 their stage widths over the bottleneck's 4× expansion) ×
``--decoder_channels`` / 256: the default 256 gives the base widths (about 110 M parameters besides the
encoder for three tasks, 77 M of them at layer4), ``--decoder_channels 72`` HRNet-18's
18, 36, 72, 144. Propagated features are resized to the finer stage's size (MTL-PyTorch upsamples 2×; the same
for sizes divisible by 32, and it also serves ``--dilations``, whose stages share a scale). The feature
propagation's softmax groups the tasks channel by channel (see ``mtl.models.feature_propagation``) and its
squeeze-and-excitation has at least 4 hidden units; the aggregation's 1×1 conv has no bias before its BatchNorm;
gates start at zero (mtl's ``SelfAttention``). Every task is also an auxiliary task (MTL-PyTorch allows more of these).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import torch
from torch import nn

from mtl.models.builders import build_encoder
from mtl.models.feature_aggregation import FeatureAggregation
from mtl.models.feature_propagation import FeaturePropagation
from mtl.models.multimodal_distillation import MultiModalDistillation
from mtl.models.ops import resize
from mtl.models.options import ModelOptions, TaskOutput
from mtl.models.registry import register_model
from mtl.models.resnet import BasicBlock
from mtl.models.stages import STAGE_NAMES, STEM, StagedEncoder
from mtl.models.task_prediction import TaskPredictions


def task_widths(encoder: StagedEncoder, decoder_channels: int) -> list[int]:
    """Per-task width of each stage: the stage's base width (its width over the block's expansion: 64, 128, 256,
    512 for every ResNet depth) × ``--decoder_channels`` / 256. 72 gives HRNet-18's 18, 36, 72, 144."""
    expansion = getattr(type(encoder.stage(0)[-1]), "expansion", 1)
    widths = [c // expansion * decoder_channels // 256 for c in encoder.stage_channels]
    if min(widths) < 1:
        raise ValueError(f"--decoder_channels {decoder_channels}: mtinet's finest per-task width would be 0")
    return widths


@register_model("mtinet")
class MTINet(nn.Module):
    def __init__(self, outputs: Mapping[str, TaskOutput], options: ModelOptions):
        super().__init__()
        if options.task_encoders:
            raise ValueError("--task_encoders: mtinet shares one encoder among the tasks; branched or distillation have one per task")
        self.tasks = list(outputs)
        self.encoder = StagedEncoder(build_encoder(options.encoder), "mtinet")
        stage_channels = self.encoder.stage_channels
        channels = task_widths(self.encoder, options.decoder.channels)
        last = len(channels) - 1
        self.initial = nn.ModuleList(
            TaskPredictions(BasicBlock, stage_channels[j] + (channels[j + 1] if j < last else 0), c, outputs)
            for j, c in enumerate(channels)
        )
        # propagation[j - 1] carries stage j's task features to stage j - 1.
        self.propagation = nn.ModuleList(FeaturePropagation(self.tasks, c) for c in channels[1:])
        self.distillation = nn.ModuleList(MultiModalDistillation(self.tasks, c, options.sa_scale) for c in channels)
        self.aggregation = nn.ModuleDict({task: FeatureAggregation(channels, {task: outputs[task]}) for task in self.tasks})

    def forward(self, x: torch.Tensor) -> dict[str, list[torch.Tensor]]:
        _, h = self.encoder(x, STEM)
        stages = []
        for j in range(len(self.initial)):
            h = self.encoder(h, j)
            stages.append(h)
        outputs: dict[str, list[torch.Tensor]] = {task: [] for task in self.tasks}
        distilled: list[dict[str, torch.Tensor]] = []
        propagated = None
        for j in reversed(range(len(stages))):
            size = stages[j].shape[-2:]
            if propagated is None:
                inputs = {task: stages[j] for task in self.tasks}
            else:
                inputs = {task: torch.cat([stages[j], resize(propagated[task], size)], dim=1) for task in self.tasks}
            predictions, features = self.initial[j](inputs)
            for task in self.tasks:
                outputs[task].append(resize(predictions[task], x.shape[-2:]))
            if j > 0:
                propagated = self.propagation[j - 1](features)
            distilled.insert(0, self.distillation[j](features))
        for task in self.tasks:
            final = self.aggregation[task]([scale[task] for scale in distilled])
            outputs[task].append(resize(final[task], x.shape[-2:]))
        return outputs

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        """What every task's loss reaches: the encoder, every task's initial feature towers and the propagation
        modules (their features reach the other tasks through the distillation). The initial heads, the messages
        into a task and its aggregation serve one task."""
        heads = [module.head for scale in self.initial for module in scale.task.values()]
        own = [*self.distillation, self.aggregation, *heads]
        excluded = {id(p) for module in own for p in module.parameters()}
        return (p for p in self.parameters() if id(p) not in excluded)

    def parts(self) -> dict[str, nn.Module]:
        """Named parts for the complexity breakdown (a part nested in another is counted apart)."""
        parts: dict[str, nn.Module] = {"encoder": self.encoder}
        for j, stage in enumerate(STAGE_NAMES):
            parts[f"initial.{stage}"] = self.initial[j]
            if j > 0:
                parts[f"propagation.{stage}"] = self.propagation[j - 1]
            parts[f"distillation.{stage}"] = self.distillation[j]
        parts.update({f"aggregation.{task}": self.aggregation[task] for task in self.tasks})
        return parts
