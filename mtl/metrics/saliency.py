"""Saliency metric as MTL-PyTorch publishes it (evaluation/eval_sal.py, after ASTMT): maxF and mIoU over thresholds.

For each threshold t of ``THRESHOLDS`` (15 values, 0.2 to 0.9), a pixel is predicted salient where its probability
is > t. Each image gives a precision, a recall and an IoU at every t; these are averaged over the images first.
F(t) = 2·P̄(t)·R̄(t)/(P̄(t) + R̄(t)) (β² = 1, as the reference; the saliency literature often uses β² = 0.3), and
maxF = max over t of F(t). The reported mIoU is likewise max over t of the mean image IoU (each maximised over t on
its own, so the two may come from different thresholds).

Per image, as the reference's evaluation/jaccard.py: a precision with nothing predicted salient is 0, a recall with
nothing salient in the ground truth is 0, and the IoU of an image with neither is 1. Ignored pixels (255) are left
out of every count (the reference's ``void_pixels``; its saliency maps have none), and an image with no labelled
pixel is not counted at all. The reference adds 1e-12 to the denominators; here an empty one gives the value above
exactly: the figures differ by less than 1e-10 %.
"""

from __future__ import annotations

import numpy as np
import torch
from torchmetrics import Metric

# np.linspace(0.2, 0.9, 15), the reference's thresholds, in float64: probabilities are compared in float64, as
# the reference compares its float32 maps with these numbers.
THRESHOLDS = np.linspace(0.2, 0.9, 15)


class SaliencyMetrics(Metric):
    """Per-threshold sums of the images' precision, recall and IoU, and the image count: exact under DDP (sums)."""

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    precision: torch.Tensor
    recall: torch.Tensor
    iou: torch.Tensor
    images: torch.Tensor

    def __init__(self, ignore_index: int = 255, **kwargs) -> None:
        super().__init__(**kwargs)
        self.ignore_index = ignore_index
        for name in ("precision", "recall", "iou"):
            self.add_state(name, default=torch.zeros(len(THRESHOLDS), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("images", default=torch.zeros((), dtype=torch.int64), dist_reduce_fx="sum")

    def update(self, probability: torch.Tensor, target: torch.Tensor) -> None:
        """Add a batch (B×H×W) or one image (H×W): probabilities of being salient, labels 1 / 0 / ignore."""
        if probability.shape != target.shape:
            raise ValueError(f"saliency prediction shape {tuple(probability.shape)} != target shape {tuple(target.shape)}")
        if not probability.is_floating_point():
            raise ValueError("saliency predictions must be probabilities in [0, 1] (floating point), not labels")
        prob = probability.reshape(-1, probability.shape[-2] * probability.shape[-1]).double()
        labels = target.reshape(prob.shape)
        labelled = labels != self.ignore_index
        truth = (labels == 1) & labelled
        thresholds = torch.as_tensor(THRESHOLDS, dtype=torch.float64, device=prob.device)
        predicted = (prob[:, None, :] > thresholds[None, :, None]) & labelled[:, None, :]  # image × threshold × pixel
        tp = (predicted & truth[:, None, :]).sum(-1).double()
        found = predicted.sum(-1).double()
        actual = truth.sum(-1, keepdim=True).double()
        union = found + actual - tp
        precision = torch.where(found > 0, tp / found.clamp(min=1), 0.0)
        recall = torch.where(actual > 0, tp / actual.clamp(min=1), 0.0)
        iou = torch.where(union > 0, tp / union.clamp(min=1), 1.0)
        keep = labelled.any(-1)
        self.precision += precision[keep].sum(0)
        self.recall += recall[keep].sum(0)
        self.iou += iou[keep].sum(0)
        self.images += keep.sum()

    def compute(self) -> dict[str, torch.Tensor]:
        """``max_f`` and ``miou`` in percent, with the per-threshold curves, mean precision and recall (percent), and
        ``threshold``, the threshold of maxF."""
        images = self.images.double().clamp(min=1)
        precision, recall = self.precision / images, self.recall / images
        total = precision + recall
        f = torch.where(total > 0, 2 * precision * recall / total.clamp(min=1e-300), 0.0)
        miou = self.iou / images
        thresholds = torch.as_tensor(THRESHOLDS, dtype=torch.float64, device=f.device)
        return {
            "max_f": 100 * f.max(),
            "miou": 100 * miou.max(),
            "threshold": thresholds[f.argmax()],
            "f_per_threshold": 100 * f,
            "miou_per_threshold": 100 * miou,
            "precision": 100 * precision,
            "recall": 100 * recall,
            "images": self.images,
        }
