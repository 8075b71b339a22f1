"""Edges: binary object boundaries, as the dense-prediction benchmarks (NYUD-v2, PASCAL-Context) evaluate them.

A layout that stores edges gives the matching tolerance of its benchmark as ``DatasetInfo.task_info["edges"] =
EdgesInfo(...)``. Targets are uint8: 1 boundary, 0 not, 255 ignored. The prediction is the edge probability
quantised to 8 bits (float32 code/255): the boundary benchmark scores the soft map at 99 thresholds, from the
8-bit files MTL-PyTorch writes (docs/dense/edges.md).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from mtl.data.formats import DataFormatError, open_image
from mtl.datasets.base import Codec, DatasetLayout
from mtl.models.options import TaskOutput
from mtl.tasks.base import Task, deep_supervision_mean, register_task

if TYPE_CHECKING:
    from torch import Tensor
    from torchmetrics import Metric

    from mtl.datasets.base import DatasetInfo
    from mtl.metrics.protocol import EvalProtocol


@dataclass(frozen=True)
class EdgesInfo:
    """How far (a fraction of the image diagonal) a predicted boundary pixel may lie from a ground-truth one and
    still match it: 0.0075 for PASCAL-Context, 0.011 for NYUD-v2 (the BSDS benchmark's ``maxDist``)."""

    tolerance: float = 0.0075


IGNORE = 255  # target value of pixels left out of the loss and the metric (also what augmentation fills in)
DEFAULT_POS_WEIGHT = 0.95  # MTL-PyTorch's edge_w (configs/*/edge.yml, pad_net/mti_net configs)
IGNORED_COLOR = (128, 128, 128)  # grey: neither an edge (white) nor background (black)


def quantise(probability: Tensor) -> Tensor:
    """Probabilities → the 8-bit codes the benchmark's PNG files hold, as float32 code/255: MTL-PyTorch writes
    ``(255·sigmoid).astype(uint8)``, which truncates."""
    return (probability.float() * 255).floor().clamp(0, 255) / 255


def read_edge_probability(path: Path) -> np.ndarray:
    image = open_image(path)
    if image.mode != "L":
        raise DataFormatError(f"{path}: not an edge probability map (expected an 8-bit grey PNG, got mode {image.mode})")
    return np.array(image, dtype=np.uint8)


def write_edge_probability(path: Path, codes: np.ndarray) -> None:
    Image.fromarray(np.asarray(codes, dtype=np.uint8), mode="L").save(path)


# Predictions: 8-bit grey PNGs of 255·probability (MTL-PyTorch's files, which SEISM evaluates), in every layout that
# has no edges codec of its own.
DatasetLayout.add_codec("edges", Codec(".png", read_edge_probability, write_edge_probability))


@register_task("edges")
class Edges(Task):
    """One output channel (logits). Loss: MTL-PyTorch's ``BalancedCrossEntropyLoss`` with a fixed positive weight w,
    ``(w·Σ_edge BCE + (1 − w)·Σ_non-edge BCE) / pixels``, over the labelled pixels. Prediction: the edge probability
    quantised to 8 bits; metric: odsF and oisF of the BSDS boundary benchmark (``mtl.metrics.boundary``)."""

    info_type = EdgesInfo
    summary_name = "ods_f"
    summary_label = "odsF"
    higher_is_better = True
    delta_metrics = (("metrics_summary/edges", True),)  # Δ_MTL of MTI-Net / MTL-PyTorch uses odsF alone
    onnx_output = "edge_probability"
    target_dtype = "uint8"

    def __init__(self, info: DatasetInfo, pos_weight: float = DEFAULT_POS_WEIGHT) -> None:
        super().__init__(info)
        self.pos_weight = pos_weight

    @classmethod
    def add_arguments(cls, group: argparse._ArgumentGroup) -> None:
        group.add_argument(
            "--edges_pos_weight", type=_fraction, default=DEFAULT_POS_WEIGHT,
            help="weight of edge pixels in the balanced cross-entropy, non-edge pixels get 1 minus it (MTL-PyTorch: 0.95)",
        )

    @classmethod
    def from_flags(cls, flags: argparse.Namespace, info: DatasetInfo, state: Mapping[str, Any]) -> Edges:
        return cls(info, pos_weight=flags.edges_pos_weight)

    def output(self) -> TaskOutput:
        return TaskOutput(1)

    def loss(self, outputs: Tensor | Sequence[Tensor], target: Tensor) -> Tensor:
        import torch
        import torch.nn.functional as F

        labelled, edge = target != IGNORE, (target == 1).float()
        weight = torch.where(edge.bool(), self.pos_weight, 1.0 - self.pos_weight) * labelled

        def balanced_bce(raw: Tensor) -> Tensor:
            per_pixel = F.binary_cross_entropy_with_logits(raw[:, 0].float(), edge, reduction="none")
            return (weight * per_pixel).sum() / labelled.sum().clamp(min=1)

        return deep_supervision_mean(self.name, outputs, target, balanced_bce)

    def decode(self, raw: Tensor) -> Tensor:
        return quantise(raw[:, 0].float().sigmoid())

    def export(self, raw: Tensor) -> Tensor:
        return raw.float().sigmoid()  # the edge probability, unquantised

    def tta_term(self, raw: Tensor, num_views: int, back: Callable[[Tensor], Tensor]) -> Tensor:
        return back(raw.float().sigmoid())  # probabilities are averaged, as for saliency and semseg

    def tta_result(self, total: Tensor, num_views: int) -> Tensor:
        return quantise((total / num_views)[:, 0])

    def metric(self, protocol: EvalProtocol) -> Metric:
        from mtl.metrics.boundary import BoundaryF

        # No published protocol treats edges differently: the SEISM evaluation under every --eval_protocol.
        return BoundaryF(self.task_info.tolerance)

    def scalars(self, result: Mapping[str, Tensor]) -> dict[str, float]:
        # odsF is the summary, logged by the engine as metrics_summary/edges.
        names = ("ois_f", "ods_threshold", "ods_precision", "ods_recall")
        return {f"metrics_task_edges/{name}": float(result[name]) for name in names}

    def report(self, result: Mapping[str, Tensor]) -> dict[str, Any]:
        return {name: float(value) for name, value in result.items()}

    @property
    def fill(self) -> float:
        return IGNORE

    def to_tensor(self, array: np.ndarray) -> Tensor:
        import torch

        return torch.from_numpy(np.asarray(array, dtype=np.uint8))

    def to_array(self, prediction: Tensor) -> np.ndarray:
        """The 8-bit codes (255·probability) the codecs write."""
        return (prediction.detach().float().cpu().numpy() * 255).round().astype(np.uint8)

    def picture(self, value: Tensor) -> np.ndarray:
        """A prediction (float probability) in grey levels; a target (uint8) with edges white, ignored pixels grey."""
        values = value.detach().cpu()
        if values.is_floating_point():
            grey = (values.numpy() * 255).round().astype(np.uint8)
            return np.repeat(grey[..., None], 3, axis=-1)
        labels = values.numpy()
        picture = np.zeros((*labels.shape, 3), dtype=np.uint8)
        picture[labels == 1] = 255
        picture[labels == IGNORE] = IGNORED_COLOR
        return picture


def _fraction(value: str) -> float:
    number = float(value)
    if not 0.0 <= number <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a weight between 0 and 1, got {value}")
    return number
