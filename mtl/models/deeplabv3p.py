"""Joint DeepLabV3+: encoder, context module and decoder all shared; only the last conv's channels are per task."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import torch
from torch import nn

from mtl.models.builders import build_context, build_decoder, build_encoder
from mtl.models.ops import resize
from mtl.models.options import ModelOptions, TaskOutput
from mtl.models.registry import register_model


@register_model("deeplabv3p")
class DeepLabV3Plus(nn.Module):
    def __init__(self, outputs: Mapping[str, TaskOutput], options: ModelOptions):
        super().__init__()
        if options.task_encoders:
            raise ValueError("--task_encoders needs per-task branches (branched, distillation); deeplabv3p shares everything")
        self.context_name = options.context.kind
        self.encoder = build_encoder(options.encoder)
        self.context = build_context(options.context, self.encoder.channels[self.encoder.bottleneck_scale])
        self.decoder = build_decoder(options.decoder, self.context.out_channels, self.encoder, outputs)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.encoder(x)
        predictions, _ = self.decoder(self.context(features[self.encoder.bottleneck_scale]), features)
        return {task: resize(p, x.shape[-2:]) for task, p in predictions.items()}

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        """Everything but the prediction head (whose output channels are per task)."""
        head = {id(p) for p in self.decoder.head.parameters()}
        return (p for p in self.parameters() if id(p) not in head)

    def parts(self) -> dict[str, nn.Module]:
        """Named parts for the complexity breakdown (a part nested in another is counted apart)."""
        return {"encoder": self.encoder, self.context_name: self.context, "decoder": self.decoder, "head": self.decoder.head}
