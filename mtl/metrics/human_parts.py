"""Human-part segmentation metric: semseg's confusion-matrix mIoU over the images that have people.

MTL-PyTorch (evaluation/eval_human_parts.py, ``eval_human_parts``, which scores its published files) skips an image
whose ground truth is one value, 0 (background) or 255 (ignored): images without people, and those whose people
carry no part annotation. The confusion matrix would already ignore an all-255 image; an all-background one
would add true background pixels and raise the background IoU, so it is skipped here too. Per class it sums TP, FP
and FN over the kept images and scores TP/(TP + FP + FN), 0 for a class absent from both (the course protocol's
"zero"; the run's protocol decides, as for semseg).
"""

from __future__ import annotations

import torch

from mtl.metrics.semseg import SemsegMetrics


class HumanPartsMetrics(SemsegMetrics):
    images: torch.Tensor

    def __init__(self, num_classes: int, ignore_index: int = 255, absent_classes: str = "zero", **kwargs) -> None:
        super().__init__(num_classes, ignore_index, absent_classes, **kwargs)
        self.add_state("images", default=torch.zeros((), dtype=torch.int64), dist_reduce_fx="sum")

    def update(self, pred_ids: torch.Tensor, target_ids: torch.Tensor) -> None:
        """Add a batch (B×H×W) or one image (H×W) of part ids; images without people are skipped."""
        if pred_ids.shape != target_ids.shape:
            raise ValueError(f"prediction shape {tuple(pred_ids.shape)} != target shape {tuple(target_ids.shape)}")
        pred, target = pred_ids.reshape(-1, *pred_ids.shape[-2:]), target_ids.reshape(-1, *target_ids.shape[-2:])
        flat = target.flatten(1)
        first = flat[:, 0]
        without_people = (flat == first[:, None]).all(1) & ((first == 0) | (first == self.ignore_index))
        keep = ~without_people
        if keep.any():
            super().update(pred[keep], target[keep])
        self.images += keep.sum()

    def compute(self) -> dict[str, torch.Tensor]:
        """Semseg's results (``miou``, ``iou_per_class``, ``pixel_accuracy``) and ``images``, the images counted."""
        return {**super().compute(), "images": self.images}
