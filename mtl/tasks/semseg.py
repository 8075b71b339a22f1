"""Semantic segmentation: per-pixel class ids of the dataset's classes, cross-entropy, confusion-matrix mIoU.

A layout that stores it gives its classes as ``DatasetInfo.task_info["semseg"] = SemsegInfo(...)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from mtl.models.options import TaskOutput
from mtl.tasks.base import Task, deep_supervision_mean, register_task

if TYPE_CHECKING:
    from torch import Tensor
    from torchmetrics import Metric

    from mtl.datasets.base import DatasetInfo
    from mtl.metrics.protocol import EvalProtocol

IGNORE_COLOR = (255, 255, 255)  # drawn white: never mistaken for a class colour (the Cityscapes palette has no white)
OVERLAY_ALPHA = 0.5  # weight of the class colours over the photo in `mtl predict`'s overview


@dataclass(frozen=True)
class SemsegInfo:
    """A dataset's classes: names and colours in class-id order, and the id of unlabelled pixels."""

    class_names: tuple[str, ...]
    class_colors: tuple[tuple[int, int, int], ...]
    ignore_index: int = 255

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def palette(colors: Sequence[tuple[int, int, int]]) -> np.ndarray:
    """256×3 uint8 lookup table: class colours, every other id (the ignore id included) black."""
    lut = np.zeros((256, 3), dtype=np.uint8)
    lut[: len(colors)] = np.asarray(colors, dtype=np.uint8).reshape(-1, 3)
    return lut


@register_task("semseg")
class SemanticSegmentation(Task):
    info_type = SemsegInfo
    summary_name = "miou"
    summary_label = "mIoU"
    delta_metrics = (("metrics_summary/semseg", True), ("metrics_task_semseg/pixel_accuracy", True))
    delta_primary = ("metrics_summary/semseg", True)  # mIoU
    higher_is_better = True
    onnx_output = "semseg_logits"
    target_dtype = "int64"

    @property
    def fill(self) -> float:
        return self.task_info.ignore_index

    def output(self) -> TaskOutput:
        return TaskOutput(self.task_info.num_classes)

    def loss(self, outputs: Tensor | Sequence[Tensor], target: Tensor) -> Tensor:
        from mtl.losses.semseg import semseg_loss

        return deep_supervision_mean(self.name, outputs, target, lambda logits: semseg_loss(logits, target, self.task_info.ignore_index))

    def decode(self, raw: Tensor) -> Tensor:
        return raw.argmax(1)

    def export(self, raw: Tensor) -> Tensor:
        return raw

    def onnx_metadata(self) -> dict[str, str]:
        import json

        return {"semseg_classes": json.dumps(list(self.task_info.class_names))}

    def tta_term(self, raw: Tensor, num_views: int, back: Callable[[Tensor], Tensor]) -> Tensor:
        # Logits are resized, then turned into probabilities. One view needs no softmax: its argmax is the
        # logits' argmax, and skipping softmax avoids its rounding ties, so a single identity view
        # reproduces plain prediction bit for bit.
        logits = back(raw)
        return logits if num_views == 1 else logits.softmax(1)

    def tta_result(self, total: Tensor, num_views: int) -> Tensor:
        return total.argmax(1)

    def metric(self, protocol: EvalProtocol) -> Metric:
        from mtl.metrics.semseg import SemsegMetrics

        return SemsegMetrics(self.task_info.num_classes, self.task_info.ignore_index, protocol.absent_classes)

    def scalars(self, result: Mapping[str, Tensor]) -> dict[str, float]:
        # Tags under the task's own name: a task built on this one (human parts) logs its classes apart.
        scalars = {f"metrics_task_{self.name}/pixel_accuracy": float(result["pixel_accuracy"])}
        for name, iou in zip(self.task_info.class_names, result["iou_per_class"].tolist()):
            scalars[f"metrics_task_{self.name}/{name.replace(' ', '_')}"] = iou
        return scalars

    def report(self, result: Mapping[str, Tensor]) -> dict[str, Any]:
        return {
            "miou": float(result["miou"]),
            "pixel_accuracy": float(result["pixel_accuracy"]),
            # A class absent from ground truth and prediction has no IoU under the mtan and libmtl protocols: null.
            "iou_per_class": {
                name: iou if math.isfinite(iou) else None
                for name, iou in zip(self.task_info.class_names, result["iou_per_class"].tolist())
            },
        }

    def format_mismatch(self, target: DatasetInfo) -> str | None:
        """Class ids mean classes: files of a dataset with other classes would say other things."""
        theirs = target.task_info.get(self.name)
        if theirs is None or theirs.class_names == self.task_info.class_names:
            return None
        return (
            f"writes the {theirs.num_classes} classes of {target.name}; this model was trained on {self.info.name} "
            f"with {self.task_info.num_classes} other classes"
        )

    def to_tensor(self, array: np.ndarray) -> Tensor:
        import torch

        return torch.from_numpy(array.astype(np.int64))

    def to_array(self, prediction: Tensor) -> np.ndarray:
        return prediction.detach().cpu().numpy().astype(np.uint8)

    def picture(self, value: Tensor) -> np.ndarray:
        ids = value.detach().cpu().numpy()
        picture = palette(self.task_info.class_colors)[ids.astype(np.uint8)]
        picture[ids == self.task_info.ignore_index] = IGNORE_COLOR
        return picture

    def overview_picture(self, rgb: np.ndarray, prediction: Tensor) -> np.ndarray:
        """Class colours alpha-blended over the photo."""
        colours = self.picture(prediction).astype(np.float32)
        blend = (1.0 - OVERLAY_ALPHA) * rgb.astype(np.float32) + OVERLAY_ALPHA * colours
        return np.round(blend).astype(np.uint8)
