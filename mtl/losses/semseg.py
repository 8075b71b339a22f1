"""Semantic segmentation loss: cross-entropy that ignores label 255."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from mtl.data.classes import IGNORE_INDEX


def semseg_loss(logits: Tensor, target: Tensor) -> Tensor:
    """Mean cross-entropy over the non-ignored pixels of the batch (B×C×H×W logits, B×H×W int64 labels).

    Summed then divided by the labelled-pixel count instead of ``reduction="mean"``, which returns NaN
    (0/0) for a batch whose pixels are all ignored; here such a batch gives 0 with a (zero) gradient.
    """
    if logits.dim() != 4 or target.shape != (logits.shape[0], *logits.shape[2:]):
        raise ValueError(
            f"semseg loss expects B×C×H×W logits and B×H×W labels of the same size, "
            f"got {tuple(logits.shape)} and {tuple(target.shape)}"
        )
    total = F.cross_entropy(logits.float(), target, ignore_index=IGNORE_INDEX, reduction="sum")
    count = (target != IGNORE_INDEX).sum().clamp_min(1)
    return total / count
