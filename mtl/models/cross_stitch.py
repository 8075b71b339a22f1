"""Cross-stitch networks (Misra, Shrivastava, Gupta and Hebert, CVPR 2016) on ResNet encoders.

One encoder per task. After each encoder stage (layer1 … layer4) a cross-stitch unit mixes the tasks'
features linearly, channel by channel: x̃_i = Σ_j α_ij ⊙ x_j, with a learned α_ij per channel (the
per-channel form of Vandenhende et al.'s survey; the paper's units are the special case of one value per
task pair). The units start at the identity (α_ii = 1, α_ij = 0), so at initialisation every task's
encoder computes exactly what a lone encoder would and the model is the branched model with
``--task_encoders``; the off-diagonal α receive gradients from the first step and learn how much to share.
(Misra et al. also report a start at (α_S, α_D) = (0.9, 0.1); identity keeps the models comparable.)

Each task then has its own context module (ASPP) and DeepLabV3+ decoder on its stitched features, the
4× skip being its stitched layer1. The encoders, the units and the decoders keep the branched model's
module names, so a branched ``--task_encoders`` state dict loads into this model's (and back).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import torch
from torch import nn

from mtl.models.builders import build_context, build_decoder, build_encoder
from mtl.models.ops import resize
from mtl.models.options import ModelOptions, TaskOutput
from mtl.models.registry import register_model
from mtl.models.stages import STEM, Indexed, StagedEncoder


class CrossStitchUnit(nn.Module):
    """Per-channel linear mixing of T tasks' features; ``weight[i, j, c]`` = α_ij of channel c, starting at I."""

    def __init__(self, num_tasks: int, channels: int):
        super().__init__()
        self.weight = nn.Parameter(torch.eye(num_tasks)[:, :, None].repeat(1, 1, channels))

    def forward(self, features: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        stacked = torch.stack(list(features))  # T×B×C×H×W
        mixed = torch.einsum("ijc,jbchw->ibchw", self.weight.to(stacked.dtype), stacked)
        return list(mixed.unbind(0))


@register_model("cross_stitch")
class CrossStitch(nn.Module):
    def __init__(self, outputs: Mapping[str, TaskOutput], options: ModelOptions):
        super().__init__()
        # --task_encoders is what this model does anyway: accepted, changes nothing.
        self.tasks = list(outputs)
        self.context_name = options.context.kind
        self.encoder = nn.ModuleDict({task: StagedEncoder(build_encoder(options.encoder), "cross_stitch") for task in self.tasks})
        first = self.encoder[self.tasks[0]]
        self.scales = first.scales
        self.stitch = Indexed([CrossStitchUnit(len(self.tasks), c) for c in first.stage_channels])
        self.bottleneck_scale = first.bottleneck_scale
        bottleneck_channels = first.channels[self.bottleneck_scale]
        self.context = nn.ModuleDict({task: build_context(options.context, bottleneck_channels) for task in self.tasks})
        self.decoder = nn.ModuleDict(
            {
                task: build_decoder(options.decoder, self.context[task].out_channels, first, {task: outputs[task]})
                for task in self.tasks
            }
        )

    def pyramids(self, x: torch.Tensor) -> dict[str, dict[int, torch.Tensor]]:
        """Per task its encoder's pyramid {scale: features}, each stage's output taken after the cross-stitch."""
        stems = {task: self.encoder[task](x, STEM) for task in self.tasks}
        out = {task: {1: x, 2: stem} for task, (stem, _) in stems.items()}
        hidden = [pooled for _, pooled in stems.values()]
        for j, scale in enumerate(self.scales):
            hidden = self.stitch(j, [self.encoder[task](h, j) for task, h in zip(self.tasks, hidden)])
            for task, h in zip(self.tasks, hidden):
                out[task][scale] = h
        return out

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = {}
        for task, features in self.pyramids(x).items():
            predictions, _ = self.decoder[task](self.context[task](features[self.bottleneck_scale]), features)
            out[task] = resize(predictions[task], x.shape[-2:])
        return out

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        """What every task's loss reaches: all the encoders and the units between their stages. The last unit is
        not shared: its row for a task mixes what that task alone reads (like a head's channels)."""
        yield from self.encoder.parameters()
        for unit in self.stitch[:-1]:
            yield from unit.parameters()

    def parts(self) -> dict[str, nn.Module]:
        """Named parts for the complexity breakdown (a part nested in another is counted apart)."""
        parts: dict[str, nn.Module] = {f"encoder.{task}": self.encoder[task] for task in self.tasks}
        parts["cross_stitch"] = self.stitch
        for task in self.tasks:
            parts[f"{self.context_name}.{task}"] = self.context[task]
            parts[f"decoder.{task}"] = self.decoder[task]
            parts[f"head.{task}"] = self.decoder[task].head
        return parts

