"""Streaming semantic-segmentation metric: a confusion matrix summed over a whole split."""

from __future__ import annotations

import torch
from torchmetrics import Metric

from mtl.data.classes import IGNORE_INDEX, NUM_CLASSES


class SemsegMetrics(Metric):
    """Per-class IoU and mIoU over everything seen since the last reset.

    The state is one ``num_classes × num_classes`` int64 confusion matrix (rows = ground truth,
    columns = prediction) reduced by summation, so it is exact under DDP and on any device.
    IoU = 100·TP/(TP + FP + FN); mIoU is the plain mean over all classes. A class absent from both ground truth
    and prediction scores 0 with ``absent_classes="zero"`` (the course's convention, which keeps mIoU comparable
    with its published figures) and is left out of the mean, its IoU NaN, with ``"excluded"`` (MTAN's and LibMTL's
    code compute its IoU as 0/0 = NaN; their ``torch.mean`` then makes the mIoU NaN, where mtl leaves the class
    out: the two agree whenever theirs is a number). Pixels whose target is ``ignore_index`` are left out.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    confusion: torch.Tensor

    def __init__(
        self, num_classes: int = NUM_CLASSES, ignore_index: int = IGNORE_INDEX, absent_classes: str = "zero", **kwargs
    ) -> None:
        super().__init__(**kwargs)
        if num_classes < 1:
            raise ValueError(f"num_classes must be positive, got {num_classes}")
        if absent_classes not in ("zero", "excluded"):
            raise ValueError(f"absent_classes must be 'zero' or 'excluded', got {absent_classes!r}")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.absent_classes = absent_classes
        self.add_state(
            "confusion", default=torch.zeros(num_classes, num_classes, dtype=torch.int64), dist_reduce_fx="sum"
        )

    def update(self, pred_ids: torch.Tensor, target_ids: torch.Tensor) -> None:
        """Add a batch (B×H×W) or one image (H×W) of integer class ids."""
        if pred_ids.shape != target_ids.shape:
            raise ValueError(f"prediction shape {tuple(pred_ids.shape)} != target shape {tuple(target_ids.shape)}")
        if pred_ids.is_floating_point() or target_ids.is_floating_point():
            raise ValueError("class ids must be integer tensors (take argmax of the logits first)")
        keep = target_ids != self.ignore_index
        pred = pred_ids[keep].long()
        target = target_ids[keep].long()
        if pred.numel() == 0:
            return
        # bincount would silently grow the matrix (or fail on negatives) for ids out of range.
        for name, ids in (("prediction", pred), ("target", target)):
            low, high = int(ids.min()), int(ids.max())
            if low < 0 or high >= self.num_classes:
                raise ValueError(f"{name} holds class ids in [{low}, {high}], expected 0..{self.num_classes - 1}")
        counts = torch.bincount(target * self.num_classes + pred, minlength=self.num_classes**2)
        self.confusion += counts.view(self.num_classes, self.num_classes)

    def compute(self) -> dict[str, torch.Tensor]:
        """``miou``, ``iou_per_class`` [num_classes] and ``pixel_accuracy`` (labelled pixels predicted right),
        float64, in percent."""
        conf = self.confusion.double()
        tp = conf.diag()
        union = conf.sum(dim=0) + conf.sum(dim=1) - tp
        absent = torch.zeros_like(tp) if self.absent_classes == "zero" else torch.full_like(tp, float("nan"))
        iou = torch.where(union > 0, 100.0 * tp / union.clamp(min=1), absent)
        accuracy = 100.0 * tp.sum() / conf.sum().clamp(min=1)
        return {"miou": iou.nanmean(), "iou_per_class": iou, "pixel_accuracy": accuracy}
