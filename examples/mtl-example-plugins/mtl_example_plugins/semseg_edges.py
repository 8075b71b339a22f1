"""Task ``semseg_edges``: semantic boundaries, a binary map derived from the semseg labels, one output channel.

Derived (``source = "semseg"``), so no dataset stores edge files: every layout with semseg labels has edges, and
the target is made from the labels right after they are read (``derive``), before augmentation crops and resamples
it. A pixel is an edge where its class differs from one of its 4 neighbours. An unlabelled pixel (semseg's ignore
index) is left out of the loss and the metric, and makes no edge beside it: its class is unknown.

Edge pixels are a few per cent of an image, so a plain binary cross-entropy is lowest for "no edge anywhere"; as
in HED (Xie & Tu, 2015) and CASENet, positives are weighted by the batch's ratio of negatives to positives. The
metric is F1 and IoU of the edge class over the whole split (pixel counts summed, not a mean of per-image scores,
which images with hardly any edge would swing), in percent like mIoU.

torch is imported inside the functions: mtl imports this module to build `mtl train --help`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from mtl.data.formats import DataFormatError, open_image
from mtl.datasets import Codec, DatasetLayout
from mtl.tasks import Task, TaskOutput, register_task
from mtl.tasks.base import deep_supervision_mean

if TYPE_CHECKING:
    from torch import Tensor

    from mtl.metrics.protocol import EvalProtocol
    from torchmetrics import Metric

IGNORE = 255  # target value of the pixels left out of the loss and the metric (also what augmentation fills in)
IGNORED_COLOR = (128, 128, 128)  # grey: neither an edge (white) nor background (black)


def semantic_edges(labels: np.ndarray, ignore_index: int) -> np.ndarray:
    """H×W class ids → uint8: 1 where a 4-neighbour has another class, 0 elsewhere, ``IGNORE`` where unlabelled."""
    labelled = labels != ignore_index
    edges = np.zeros(labels.shape, dtype=bool)
    across = (labels[:, 1:] != labels[:, :-1]) & labelled[:, 1:] & labelled[:, :-1]  # left–right pairs
    down = (labels[1:] != labels[:-1]) & labelled[1:] & labelled[:-1]  # top–bottom pairs
    edges[:, 1:] |= across
    edges[:, :-1] |= across
    edges[1:] |= down
    edges[:-1] |= down
    return np.where(labelled, edges, IGNORE).astype(np.uint8)


# Predictions are written by every layout as grey PNGs, edges white: a file one can look at.
def read_edges(path: Path) -> np.ndarray:
    image = open_image(path)
    values = np.array(image)
    if image.mode != "L" or not np.isin(values, (0, 255)).all():
        raise DataFormatError(f"{path}: not an edge map (expected a grey PNG of 0 and 255)")
    return (values == 255).astype(np.uint8)


def write_edges(path: Path, edges: np.ndarray) -> None:
    Image.fromarray((np.asarray(edges) == 1).astype(np.uint8) * 255).save(path)


DatasetLayout.add_codec("semseg_edges", Codec(".png", read_edges, write_edges))


@cache
def edge_scores() -> type[Metric]:
    """The metric's class, defined on first use: defining a torchmetrics class imports torch."""
    import torch
    from torchmetrics import Metric

    class EdgeScores(Metric):
        """Pixel counts of the edge class over a split, summed over DDP processes: exact, whatever the batching."""

        full_state_update = False
        higher_is_better = True

        def __init__(self) -> None:
            super().__init__()
            for name in ("true_pos", "false_pos", "false_neg"):
                self.add_state(name, default=torch.zeros((), dtype=torch.int64), dist_reduce_fx="sum")

        def update(self, pred: Tensor, target: Tensor) -> None:
            found, truth = pred.bool() & (target != IGNORE), target == 1
            self.true_pos += (found & truth).sum()
            self.false_pos += (found & ~truth).sum()
            self.false_neg += (~found & truth).sum()

        def compute(self) -> dict[str, Tensor]:
            tp, fp, fn = (count.double() for count in (self.true_pos, self.false_pos, self.false_neg))
            # No edge predicted or present scores 0, as mIoU scores a class absent from both.
            return {"f1": 100 * 2 * tp / (2 * tp + fp + fn).clamp(min=1), "iou": 100 * tp / (tp + fp + fn).clamp(min=1)}

    return EdgeScores


@register_task("semseg_edges")
class SemanticEdges(Task):
    source = "semseg"
    summary_name = "f1"
    summary_label = "edge F1"
    higher_is_better = True
    delta_metrics = (("metrics_summary/semseg_edges", True), ("metrics_task_semseg_edges/iou", True))
    onnx_output = "edge_probability"
    target_dtype = "uint8"

    def derive(self, source: np.ndarray) -> np.ndarray:
        return semantic_edges(source, self.info.task_info["semseg"].ignore_index)

    def output(self) -> TaskOutput:
        return TaskOutput(1)

    def loss(self, outputs: Tensor | Sequence[Tensor], target: Tensor) -> Tensor:
        import torch
        import torch.nn.functional as F

        labelled, truth = target != IGNORE, (target == 1).float()
        # At least one positive in the ratio: a batch without edges is not weighted up.
        negatives_per_positive = (labelled.sum() - truth.sum()) / truth.sum().clamp(min=1)

        def weighted_bce(raw: Tensor) -> Tensor:
            per_pixel = F.binary_cross_entropy_with_logits(
                raw[:, 0].float(), truth, pos_weight=negatives_per_positive, reduction="none"
            )
            return torch.where(labelled, per_pixel, 0.0).sum() / labelled.sum().clamp(min=1)

        return deep_supervision_mean(self.name, outputs, target, weighted_bce)

    def decode(self, raw: Tensor) -> Tensor:
        import torch

        return (raw[:, 0].float().sigmoid() > 0.5).to(torch.uint8)

    def export(self, raw: Tensor) -> Tensor:
        return raw.float().sigmoid()  # the probability of an edge: a user picks their own threshold

    def tta_term(self, raw: Tensor, num_views: int, back: Callable[[Tensor], Tensor]) -> Tensor:
        return back(raw.float().sigmoid())  # probabilities are averaged: a mean of logits overweights confident views

    def tta_result(self, total: Tensor, num_views: int) -> Tensor:
        import torch

        return ((total / num_views)[:, 0] > 0.5).to(torch.uint8)

    def metric(self, protocol: EvalProtocol) -> Metric:
        # No published protocol evaluates edges this way: pooled counts under every ``--eval_protocol``.
        return edge_scores()()

    def scalars(self, result: Mapping[str, Tensor]) -> dict[str, float]:
        return {"metrics_task_semseg_edges/iou": float(result["iou"])}  # F1 is the summary, logged by the engine

    def report(self, result: Mapping[str, Tensor]) -> dict[str, Any]:
        return {"f1": float(result["f1"]), "iou": float(result["iou"])}

    @property
    def fill(self) -> float:
        return IGNORE

    def to_tensor(self, array: np.ndarray) -> Tensor:
        import torch

        return torch.from_numpy(array)

    def picture(self, value: Tensor) -> np.ndarray:
        values = value.detach().cpu().numpy()
        picture = np.zeros((*values.shape, 3), dtype=np.uint8)
        picture[values == 1] = 255
        picture[values == IGNORE] = IGNORED_COLOR
        return picture
