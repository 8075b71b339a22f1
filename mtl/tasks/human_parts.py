"""Human parts: semantic segmentation of body parts (PASCAL-Context multi-task, after ASTMT / MTL-PyTorch).

Semseg with other classes and its own evaluation: the class set comes from ``DatasetInfo.task_info["human_parts"] =
SemsegInfo(part names with background first, colours, 255)`` (PASCAL: background, head, torso, upper arm, lower
arm, upper leg, lower leg), the loss is semseg's cross-entropy ignoring 255 (MTL-PyTorch's ``SoftMaxwithLoss``;
here a batch without people, all 255, gives 0 with a zero gradient instead of NaN), test-time augmentation
averages softmax probabilities like semseg's. The 6-part grouping merges left and right (MTL-PyTorch
data/pascal_context.py, ``HUMAN_PART[6]``: luarm and ruarm are both upper arm, …), so a horizontal flip needs no
label swap. The metric (``mtl.metrics.human_parts``) counts only images that have people.

Predictions are written by every layout that has no codec of its own as grey PNGs of the part ids, as
MTL-PyTorch writes its prediction files.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from mtl.data.formats import DataFormatError, open_image
from mtl.datasets.base import Codec, DatasetLayout
from mtl.tasks.base import register_task
from mtl.tasks.semseg import SemanticSegmentation

if TYPE_CHECKING:
    from torch import Tensor
    from torchmetrics import Metric

    from mtl.metrics.protocol import EvalProtocol

PART_IDS = 7  # the contract's ids 0..6 (background and the 6 parts); 255 is ignored


def read_parts(path: Path) -> np.ndarray:
    """A grey (or palette) PNG of part ids → H×W uint8; anything else is a DataFormatError naming the file."""
    image = open_image(path)
    if image.mode not in ("L", "P"):
        raise DataFormatError(f"{path}: human parts image has mode {image.mode!r}, expected a grey PNG of part ids ('L')")
    ids = np.array(image, dtype=np.uint8)
    bad = (ids >= PART_IDS) & (ids != 255)
    if bad.any():
        raise DataFormatError(f"{path}: human parts hold values {sorted(np.unique(ids[bad]).tolist())[:5]} outside 0..6 and 255")
    return ids


def write_parts(path: Path, ids: np.ndarray) -> None:
    ids = np.asarray(ids)
    if ids.ndim != 2 or ids.dtype != np.uint8:
        raise ValueError(f"{path}: human parts must be an H×W uint8 array of part ids, got {ids.dtype} {ids.shape}")
    Image.fromarray(ids).save(path)  # uint8 H×W: mode L


DatasetLayout.add_codec("human_parts", Codec(".png", read_parts, write_parts))


@register_task("human_parts")
class HumanParts(SemanticSegmentation):
    summary_label = "parts mIoU"
    # MTL-PyTorch's multi-task performance uses the parts mIoU alone (evaluation/evaluate_utils.py).
    delta_metrics = (("metrics_summary/human_parts", True),)
    delta_primary = ("metrics_summary/human_parts", True)  # not semseg's tag
    onnx_output = "human_parts_logits"

    def onnx_metadata(self) -> dict[str, str]:
        return {"human_parts_classes": json.dumps(list(self.task_info.class_names))}

    def metric(self, protocol: EvalProtocol) -> Metric:
        from mtl.metrics.human_parts import HumanPartsMetrics

        return HumanPartsMetrics(self.task_info.num_classes, self.task_info.ignore_index, protocol.absent_classes)

    def report(self, result: Mapping[str, Tensor]) -> dict[str, Any]:
        return {**super().report(result), "images": int(result["images"])}
