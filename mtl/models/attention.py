"""Cross-task self-attention of the distillation model (PAD-Net style):
SA(x) = conv3×3(x) · sigmoid(conv3×3_att(x)), both without bias."""

from __future__ import annotations

import torch
from torch import nn


class SelfAttention(nn.Module):
    """The attention conv starts at zero, so every gate starts at 0.5 and training decides what passes.

    With ``learned_scale`` the output is multiplied by a learned α that starts at 0, so the
    distillation model starts as the branched one and lets in the other task's features gradually.
    """

    def __init__(self, in_channels: int, out_channels: int, learned_scale: bool = False):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.attention = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        nn.init.zeros_(self.attention.weight)
        self.scale = nn.Parameter(torch.zeros(1)) if learned_scale else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x) * torch.sigmoid(self.attention(x))
        return out if self.scale is None else out * self.scale
