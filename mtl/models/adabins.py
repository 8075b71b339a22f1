"""Adaptive-bins depth head (after AdaBins, Bhat et al. 2021, as in the course's later years).

Latents pooled from the decoder features go through a small transformer; each latent yields one
bin width (softmax over bins, so widths sum to 1) and a per-pixel score (dot product with a query
map). Depth is the softmax-weighted sum of the per-image bin centres, mapped affinely from [0, 1]
to the engine's training unit ``value_range``. Everything is tensor ops: compile- and DDP-safe.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class AdaBinsHead(nn.Module):
    def __init__(
        self,
        in_channels: int,
        num_bins: int = 256,
        num_layers: int = 2,
        num_heads: int = 4,
        value_range: tuple[float, float] = (-1.0, 10.0),
    ):
        super().__init__()
        grid = math.isqrt(num_bins)
        if grid * grid != num_bins:
            raise ValueError(f"the number of bins must be a square (latents come from a grid), got {num_bins}")
        if in_channels % num_heads:
            raise ValueError(f"{in_channels} channels cannot be split into {num_heads} attention heads")
        lo, hi = (float(v) for v in value_range)
        if not hi > lo:
            raise ValueError(f"depth value range must be increasing, got {value_range}")
        self.grid, self.lo, self.hi = grid, lo, hi
        self.position = nn.Parameter(torch.zeros(1, num_bins, in_channels))
        nn.init.trunc_normal_(self.position, std=0.02)
        layer = nn.TransformerEncoderLayer(
            in_channels, num_heads, dim_feedforward=4 * in_channels, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
        )
        self.transformer = nn.TransformerEncoder(layer, num_layers, norm=nn.LayerNorm(in_channels), enable_nested_tensor=False)
        self.width = nn.Sequential(nn.Linear(in_channels, in_channels), nn.LeakyReLU(), nn.Linear(in_channels, 1))
        self.queries = nn.Conv2d(in_channels, in_channels, 3, padding=1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        latents = F.adaptive_avg_pool2d(features, self.grid).flatten(2).transpose(1, 2)  # B × N × C
        latents = self.transformer(latents + self.position)
        widths = torch.softmax(self.width(latents).squeeze(-1), dim=1)  # B × N, sums to 1
        centres = torch.cumsum(widths, dim=1) - 0.5 * widths  # in [0, 1]
        centres = self.lo + (self.hi - self.lo) * centres
        scores = torch.einsum("bchw,bnc->bnhw", self.queries(features), latents) / math.sqrt(latents.shape[-1])
        return torch.einsum("bnhw,bn->bhw", torch.softmax(scores, dim=1), centres).unsqueeze(1)
