"""Semantic segmentation loss: cross-entropy that ignores one label (255 in the Cityscapes convention)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def semseg_loss(logits: Tensor, target: Tensor, ignore_index: int = 255) -> Tensor:
    """Mean cross-entropy over the non-ignored pixels of the batch (B×C×H×W logits, B×H×W int64 labels).

    Summed then divided by the labelled-pixel count instead of ``reduction="mean"``, which returns NaN
    (0/0) for a batch whose pixels are all ignored; here such a batch gives 0 with a (zero) gradient.
    """
    if logits.dim() != 4 or target.shape != (logits.shape[0], *logits.shape[2:]):
        raise ValueError(
            f"semseg loss expects B×C×H×W logits and B×H×W labels of the same size, "
            f"got {tuple(logits.shape)} and {tuple(target.shape)}"
        )
    total = F.cross_entropy(logits.float(), target, ignore_index=ignore_index, reduction="sum")
    count = (target != ignore_index).sum().clamp_min(1)
    return total / count
