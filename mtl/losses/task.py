"""One task's training loss over a single output or a deep-supervision list of outputs."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from mtl.data.classes import TASKS
from mtl.losses.depth import get_depth_loss
from mtl.losses.depth_units import DepthUnit
from mtl.losses.semseg import semseg_loss


class TaskLoss:
    """Callable ``(outputs, target) -> (loss, per-output losses)`` for one task.

    ``outputs`` is one prediction or a list of them (e.g. the distillation model's [initial, final]),
    each at the target's size: semseg logits B×19×H×W, depth B×1×H×W in the unit's space.
    ``target`` is the ground truth as the dataset gives it: semseg int64 B×H×W (255 ignored), depth
    float metres B×H×W (NaN invalid) — the depth target is encoded into the unit here, once per call.

    A list is reduced by its *mean*, not the sum: the loss then has the same scale whether a model has
    one output or several, so task weights and learning rates carry over between models.
    The per-output values are returned detached, for logging only.
    """

    def __init__(self, task: str, depth_loss: str = "l2", depth_unit: DepthUnit | None = None) -> None:
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
        if task == "depth" and depth_unit is None:
            raise ValueError("the depth loss needs a depth unit (make_depth_unit)")
        self.task = task
        self.depth_unit = depth_unit
        self.depth_loss = get_depth_loss(depth_loss) if task == "depth" else None

    def __call__(self, outputs: Tensor | Sequence[Tensor], target: Tensor) -> tuple[Tensor, list[Tensor]]:
        preds = [outputs] if isinstance(outputs, Tensor) else list(outputs)
        if not preds:
            raise ValueError(f"{self.task} loss got an empty list of outputs")
        for pred in preds:
            if pred.shape[-2:] != target.shape[-2:]:
                raise ValueError(
                    f"{self.task} output {tuple(pred.shape)} is not at the target's size {tuple(target.shape)}; "
                    "upsample predictions to the input size before the loss"
                )
        if self.task == "semseg":
            parts = [semseg_loss(pred, target) for pred in preds]
        else:
            encoded = self.depth_unit.encode(target.float())
            valid = torch.isfinite(encoded)
            parts = [self.depth_loss(pred, encoded, valid, self.depth_unit) for pred in preds]
        return torch.stack(parts).mean(), [part.detach() for part in parts]
