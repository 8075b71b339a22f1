"""Small tensor helpers shared by the model parts."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def resize(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Bilinear resize with align_corners=False, the convention of the course and of DeepLab."""
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)
