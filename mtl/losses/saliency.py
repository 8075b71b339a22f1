"""Saliency loss: class-balanced binary cross-entropy (HED-style), as MTL-PyTorch trains its saliency head.

MTL-PyTorch (losses/loss_functions.py, ``BalancedCrossEntropyLoss`` with no ``pos_weight``, chosen for ``sal`` in
utils/common_config.py ``get_loss``) weights the salient pixels' cross-entropy by w, the fraction of non-salient
pixels in the batch, the others by 1 − w, and divides the sum by the batch's pixel count. Here ignored pixels
(255) are left out of w, of the sums and of the count; the reference's saliency maps have none, so the two agree.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def balanced_bce(logits: Tensor, target: Tensor, ignore_index: int = 255) -> Tensor:
    """B×H×W logits against B×H×W labels (1 salient, 0 not, ``ignore_index`` left out). A batch whose pixels are
    all ignored gives 0 with a zero gradient (no 0/0)."""
    if logits.shape != target.shape:
        raise ValueError(f"saliency loss expects logits and labels of one shape, got {tuple(logits.shape)} and {tuple(target.shape)}")
    labelled = target != ignore_index
    salient = (target == 1) & labelled
    count = labelled.sum().clamp(min=1)
    weight = (labelled.sum() - salient.sum()) / count  # fraction of non-salient pixels: weights the salient ones
    per_pixel = F.binary_cross_entropy_with_logits(logits.float(), salient.float(), reduction="none")
    positive = torch.where(salient, per_pixel, 0.0).sum()
    negative = torch.where(labelled & ~salient, per_pixel, 0.0).sum()
    return (weight * positive + (1 - weight) * negative) / count
