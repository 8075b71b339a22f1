"""Surface normals: a unit vector per pixel in camera coordinates (x right, y down, z forward).

The network predicts 3 channels, normalised to unit length; the loss is 1 − cos (``cosine``) or the L1
distance of unit vectors (``l1``) on valid pixels. Geometric augmentation moves the image-plane part of
each normal with the image: a horizontal flip negates x, an in-plane rotation turns (x, y) (scale and
corner jitter, which a normal does not follow simply, leave it as is).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from mtl.models.options import TaskOutput
from mtl.tasks.base import Task, deep_supervision_mean, register_task

if TYPE_CHECKING:
    from torch import Tensor
    from torchmetrics import Metric

    from mtl.datasets.base import DatasetInfo
    from mtl.metrics.protocol import EvalProtocol

LOSSES = ("cosine", "l1")
DEFAULT_LOSS = "cosine"


def unit(raw: Tensor) -> Tensor:
    """B×3×H×W → unit vectors along dim 1."""
    return raw / raw.norm(dim=1, keepdim=True).clamp_min(1e-6)


@register_task("normals")
class Normals(Task):
    summary_name = "mean_angle"
    summary_label = "normals mean angle"
    delta_metrics = (
        ("metrics_task_normals/mean_angle", False),
        ("metrics_task_normals/median_angle", False),
        ("metrics_task_normals/within_11_25", True),
        ("metrics_task_normals/within_22_5", True),
        ("metrics_task_normals/within_30", True),
    )
    delta_primary = ("metrics_task_normals/mean_angle", False)
    higher_is_better = False
    onnx_output = "normals"
    target_dtype = "float32"

    def __init__(self, info: DatasetInfo, loss: str = DEFAULT_LOSS) -> None:
        super().__init__(info)
        if loss not in LOSSES:
            raise ValueError(f"unknown normals loss {loss!r}; choose one of {', '.join(LOSSES)}")
        self.loss_name = loss

    @classmethod
    def add_arguments(cls, group: argparse._ArgumentGroup) -> None:
        group.add_argument("--loss_normals", default=DEFAULT_LOSS, choices=LOSSES, help="normals loss: 1 − cos, or L1 of unit vectors")

    @classmethod
    def from_flags(cls, flags: argparse.Namespace, info: DatasetInfo, state: Mapping[str, Any]) -> Normals:
        return cls(info, flags.loss_normals)

    def output(self) -> TaskOutput:
        return TaskOutput(3)

    def loss(self, outputs: Tensor | Sequence[Tensor], target: Tensor) -> Tensor:
        valid = target.isfinite().all(1, keepdim=True)
        # NaN → 0 before any arithmetic (NaN·0 is NaN, in the backward pass too); stored vectors need not be unit
        clean = unit(target.float().nan_to_num(0.0))

        def per_output(raw: Tensor) -> Tensor:
            pred = unit(raw.float())
            if self.loss_name == "cosine":
                error = 1.0 - (pred * clean).sum(1, keepdim=True)
            else:
                error = (pred - clean).abs().sum(1, keepdim=True)
            return (error * valid).sum() / valid.sum().clamp_min(1)

        return deep_supervision_mean(self.name, outputs, target, per_output)

    def decode(self, raw: Tensor) -> Tensor:
        return unit(raw.float())

    def export(self, raw: Tensor) -> Tensor:
        return unit(raw)

    def flip_back(self, raw: Tensor) -> Tensor:
        flipped = raw.flip(-1)
        return flipped * flipped.new_tensor([-1.0, 1.0, 1.0]).view(1, 3, 1, 1)

    def tta_term(self, raw: Tensor, num_views: int, back: Callable[[Tensor], Tensor]) -> Tensor:
        return back(unit(raw.float()))

    def tta_result(self, total: Tensor, num_views: int) -> Tensor:
        return unit(total)

    def metric(self, protocol: EvalProtocol) -> Metric:
        from mtl.metrics.normals import NormalsMetrics

        return NormalsMetrics(protocol)

    def scalars(self, result: Mapping[str, Tensor]) -> dict[str, float]:
        return {f"metrics_task_normals/{k}": float(v) for k, v in result.items()}

    def report(self, result: Mapping[str, Tensor]) -> dict[str, Any]:
        return {"normals_metrics": {k: float(v) for k, v in result.items()}}

    @property
    def fill(self) -> float:
        return math.nan

    def to_tensor(self, array: np.ndarray) -> Tensor:
        import torch

        return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))

    def to_array(self, prediction: Tensor) -> np.ndarray:
        return prediction.detach().float().cpu().numpy().transpose(1, 2, 0)

    def reorient(self, target: Tensor, flip: bool, angle_rad: float) -> Tensor:
        """The warp shows the source turned by −angle: image-plane components turn with it, then mirror."""
        import torch

        cos, sin = math.cos(angle_rad), math.sin(angle_rad)
        x, y, z = target[0], target[1], target[2]
        x, y = cos * x + sin * y, -sin * x + cos * y
        return torch.stack([-x if flip else x, y, z])

    def picture(self, value: Tensor) -> np.ndarray:
        """(n + 1)/2 as RGB (the file format's colours); invalid black."""
        n = value.detach().float().cpu().numpy().transpose(1, 2, 0)
        valid = np.isfinite(n).all(-1)
        picture = np.round((np.nan_to_num(n) + 1.0) * 127.5).clip(0, 255).astype(np.uint8)
        picture[~valid] = 0
        return picture
