"""Task distillation (PAD-Net style): the branched model gives initial predictions and features; each
task's features plus self-attention over every other task's features go through a final decoder.

Outputs are lists [initial, final] per task (deep supervision: train both, the last is the
prediction). With one task there is nothing to distil: the final decoder refines the task's own
features (no cross-task term), keeping the same outputs and deep supervision.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import torch
from torch import nn

from mtl.models.attention import SelfAttention
from mtl.models.branched import Branched
from mtl.models.builders import build_refine_decoder
from mtl.models.ops import resize
from mtl.models.options import ModelOptions, TaskOutput
from mtl.models.registry import register_model


@register_model("distillation")
class Distillation(Branched):
    def __init__(self, outputs: Mapping[str, TaskOutput], options: ModelOptions):
        super().__init__(outputs, options)
        channels = self.decoder[self.tasks[0]].out_channels
        self.attention = nn.ModuleDict(
            {
                f"{source}_to_{target}": SelfAttention(channels, channels, options.sa_scale)
                for target in self.tasks
                for source in self.tasks
                if source != target
            }
        )
        self.final_decoder = nn.ModuleDict(
            {task: build_refine_decoder(options.decoder, channels, {task: outputs[task]}) for task in self.tasks}
        )

    def forward(self, x: torch.Tensor) -> dict[str, list[torch.Tensor]]:
        first = self.branches(x)
        out = {}
        for target in self.tasks:
            initial, fused = first[target]
            for source in self.tasks:
                if source != target:
                    fused = fused + self.attention[f"{source}_to_{target}"](first[source][1])
            final, _ = self.final_decoder[target](fused)
            out[target] = [resize(initial[target], x.shape[-2:]), resize(final[target], x.shape[-2:])]
        return out

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        """What every task's loss reaches: the encoder (or every task's, with --task_encoders) and every task's context
        module and decoder up to its features, which the other tasks read through the attention. The first heads,
        the attention modules and the final decoders each serve one task."""
        own = [self.attention, self.final_decoder, *(self.decoder[task].head for task in self.tasks)]
        excluded = {id(p) for module in own for p in module.parameters()}
        return (p for p in self.parameters() if id(p) not in excluded)

    def parts(self) -> dict[str, nn.Module]:
        parts = super().parts()
        parts.update({f"attention.{name}": module for name, module in self.attention.items()})
        for task in self.tasks:
            parts[f"final_decoder.{task}"] = self.final_decoder[task]
            parts[f"final_head.{task}"] = self.final_decoder[task].head
        return parts
