"""Branched model: a shared encoder (or one per task with --task_encoders), then per task its own
context module and decoder."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import torch
from torch import nn

from mtl.models.builders import build_context, build_decoder, build_encoder
from mtl.models.ops import resize
from mtl.models.options import ModelOptions, TaskOutput
from mtl.models.registry import register_model


@register_model("branched")
class Branched(nn.Module):
    def __init__(self, outputs: Mapping[str, TaskOutput], options: ModelOptions):
        super().__init__()
        self.tasks = list(outputs)
        self.context_name = options.context.kind
        self.task_encoders = options.task_encoders
        if self.task_encoders:
            self.encoder = nn.ModuleDict({task: build_encoder(options.encoder) for task in self.tasks})
            encoder = self.encoder[self.tasks[0]]
        else:
            self.encoder = encoder = build_encoder(options.encoder)
        self.bottleneck_scale = encoder.bottleneck_scale
        bottleneck_channels = encoder.channels[self.bottleneck_scale]
        self.context = nn.ModuleDict({task: build_context(options.context, bottleneck_channels) for task in self.tasks})
        self.decoder = nn.ModuleDict(
            {
                task: build_decoder(options.decoder, self.context[task].out_channels, encoder, {task: outputs[task]})
                for task in self.tasks
            }
        )

    def branches(self, x: torch.Tensor) -> dict[str, tuple[dict[str, torch.Tensor], torch.Tensor]]:
        """Per task: (its predictions at the decoder's scale, its decoder features)."""
        shared = None if self.task_encoders else self.encoder(x)
        out = {}
        for task in self.tasks:
            features = self.encoder[task](x) if self.task_encoders else shared
            out[task] = self.decoder[task](self.context[task](features[self.bottleneck_scale]), features)
        return out

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {task: resize(predictions[task], x.shape[-2:]) for task, (predictions, _) in self.branches(x).items()}

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        """The shared encoder (none with --task_encoders: every parameter then serves one task)."""
        return iter(()) if self.task_encoders else self.encoder.parameters()

    def parts(self) -> dict[str, nn.Module]:
        """Named parts for the complexity breakdown (a part nested in another is counted apart)."""
        parts: dict[str, nn.Module] = {}
        if self.task_encoders:
            parts.update({f"encoder.{task}": self.encoder[task] for task in self.tasks})
        else:
            parts["encoder"] = self.encoder
        for task in self.tasks:
            parts[f"{self.context_name}.{task}"] = self.context[task]
            parts[f"decoder.{task}"] = self.decoder[task]
            parts[f"head.{task}"] = self.decoder[task].head
        return parts
