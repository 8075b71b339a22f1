"""Joint DeepLabV3+: encoder, context module and decoder all shared; only the last conv's channels are per task."""

from __future__ import annotations

import argparse

import torch
from torch import nn

from mtl.models.builders import build_context, build_decoder, build_encoder, check_config
from mtl.models.ops import resize
from mtl.models.registry import register_model


@register_model("deeplabv3p")
class DeepLabV3Plus(nn.Module):
    def __init__(self, cfg: argparse.Namespace, outputs_desc: dict[str, int]):
        super().__init__()
        check_config(cfg)
        if cfg.task_encoders:
            raise ValueError("--task_encoders needs per-task branches (branched, distillation); deeplabv3p shares everything")
        self.context_name = cfg.context
        self.encoder = build_encoder(cfg)
        self.context = build_context(cfg, self.encoder.channels[self.encoder.bottleneck_scale])
        self.decoder = build_decoder(cfg, self.context.out_channels, self.encoder, outputs_desc)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.encoder(x)
        predictions, _ = self.decoder(self.context(features[self.encoder.bottleneck_scale]), features)
        return {task: resize(p, x.shape[-2:]) for task, p in predictions.items()}

    def parts(self) -> dict[str, nn.Module]:
        """Named parts for the complexity breakdown (a part nested in another is counted apart)."""
        return {"encoder": self.encoder, self.context_name: self.context, "decoder": self.decoder, "head": self.decoder.head}
