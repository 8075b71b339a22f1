"""What a task plug-in provides: everything task-specific, so that nothing else in the toolkit names a task.

A task is one file in ``mtl/tasks/`` with a class registered by ``@register_task("name")``. It owns its
output channels, loss and flags, the decoding of raw network outputs into a prediction, its metric, its
TensorBoard tags, the tensors it is given by a dataset (from the dataset codec's arrays), how augmentation
resamples it, how test-time augmentation merges views, how it is drawn, and its ONNX output.

Tasks import torch inside their methods (see ``mtl.plugins``): building the command line imports them.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from mtl.datasets.base import DatasetInfo, DatasetLayout
from mtl.plugins import Registry

if TYPE_CHECKING:
    from torch import Tensor, nn
    from torchmetrics import Metric

TASKS: Registry[type[Task]] = Registry("task", "mtl.tasks")
register_task = TASKS.register


@dataclass(frozen=True)
class TaskOutput:
    """What a model must produce for a task: ``channels`` maps, or a dedicated head built on the decoder's
    feature width (``head(in_channels) -> nn.Module`` returning B×channels×h×w)."""

    channels: int
    head: Callable[[int], nn.Module] | None = None


def final(output: Tensor | Sequence[Tensor]) -> Tensor:
    """The prediction of a task: the last element of a deep-supervision list."""
    return output[-1] if isinstance(output, (list, tuple)) else output


def deep_supervision_mean(
    task: str, outputs: Tensor | Sequence[Tensor], target: Tensor, loss: Callable[[Tensor], Tensor]
) -> Tensor:
    """``loss`` of one output, or the *mean* over a deep-supervision list: a model with several outputs then
    has the loss scale of one with a single output, so weights and learning rates carry over between models.
    Every output must already be at the target's size."""
    import torch

    preds = [outputs] if not isinstance(outputs, (list, tuple)) else list(outputs)
    if not preds:
        raise ValueError(f"{task} loss got an empty list of outputs")
    for pred in preds:
        if pred.shape[-2:] != target.shape[-2:]:
            raise ValueError(
                f"{task} output {tuple(pred.shape)} is not at the target's size {tuple(target.shape)}; "
                "upsample predictions to the input size before the loss"
            )
    return torch.stack([loss(pred) for pred in preds]).mean()


class Task:
    name: ClassVar[str]
    default_weight: ClassVar[float] = 0.5  # --loss_weight_<task>
    summary_name: ClassVar[str]  # the metric shown as metrics_summary/<task>
    summary_label: ClassVar[str]  # how it is printed after each validation
    higher_is_better: ClassVar[bool]
    # The metrics Δm compares with single-task baselines: (TensorBoard tag, higher is better), as published tables use.
    delta_metrics: ClassVar[tuple[tuple[str, bool], ...]] = ()
    onnx_output: ClassVar[str]
    target_dtype: ClassVar[str]  # torch dtype name of the target tensor (what augmentation must keep)

    def __init__(self, info: DatasetInfo) -> None:
        self.info = info

    # ---------------------------------------------------------------------------------- flags
    @classmethod
    def add_arguments(cls, group: argparse._ArgumentGroup) -> None:
        """The task's own flags (besides --loss_weight_<task>, which every task has)."""

    @classmethod
    def prepare(cls, flags: argparse.Namespace, dataset: DatasetLayout) -> dict[str, Any]:
        """State measured on the training data before a run starts (e.g. depth statistics); saved in
        checkpoints so that a trained model needs no dataset. Plain values only."""
        return {}

    @classmethod
    def from_flags(cls, flags: argparse.Namespace, info: DatasetInfo, state: Mapping[str, Any]) -> Task:
        return cls(info)

    def state(self) -> dict[str, Any]:
        """What ``prepare`` measured, for the checkpoint."""
        return {}

    # --------------------------------------------------------------------------------- model
    def output(self) -> TaskOutput:
        raise NotImplementedError

    def loss(self, outputs: Tensor | Sequence[Tensor], target: Tensor) -> Tensor:
        """Training loss against the dataset's target tensor (float32, whatever the output dtype)."""
        raise NotImplementedError

    def decode(self, raw: Tensor) -> Tensor:
        """Final raw output (B×C×H×W) → prediction in the target's convention."""
        raise NotImplementedError

    def export(self, raw: Tensor) -> Tensor:
        """What the ONNX graph returns for this task (B×C×H×W)."""
        raise NotImplementedError

    def onnx_metadata(self) -> dict[str, str]:
        """Properties of the ONNX file that describe this task's output."""
        return {}

    def flip_back(self, raw: Tensor) -> Tensor:
        """Raw output of a horizontally flipped input → the output for the unflipped input."""
        return raw.flip(-1)

    def tta_term(self, raw: Tensor, num_views: int, back: Callable[[Tensor], Tensor]) -> Tensor:
        """One test-time-augmentation view's contribution, mapped to the input's frame by ``back`` (undoes the
        view's flip with ``flip_back`` and its scale); views are summed, then ``tta_result``."""
        raise NotImplementedError

    def tta_result(self, total: Tensor, num_views: int) -> Tensor:
        raise NotImplementedError

    # ------------------------------------------------------------------------------- metrics
    def metric(self) -> Metric:
        raise NotImplementedError

    def scalars(self, result: Mapping[str, Tensor]) -> dict[str, float]:
        """Validation scalars by TensorBoard tag, ``metrics_summary/<task>`` included."""
        raise NotImplementedError

    def report(self, result: Mapping[str, Tensor]) -> dict[str, Any]:
        """The same result for a JSON report (``mtl predict``): plain numbers by name."""
        raise NotImplementedError

    def summary(self, result: Mapping[str, Tensor]) -> float:
        return float(result[self.summary_name])

    # -------------------------------------------------------------------------------- data
    def to_tensor(self, array: np.ndarray) -> Tensor:
        """A dataset codec's array → the target tensor (what losses and metrics take)."""
        raise NotImplementedError

    def to_array(self, prediction: Tensor) -> np.ndarray:
        """One decoded prediction → the array a dataset codec writes."""
        return prediction.detach().cpu().numpy()

    @property
    def fill(self) -> float:
        """Target value of pixels that a geometric augmentation brings in from outside the image (ignore,
        invalid). Targets are resampled by nearest neighbour: no invented labels, depths or normals."""
        raise NotImplementedError

    def reorient(self, target: Tensor, flip: bool, angle_rad: float) -> Tensor:
        """Correct a resampled target for a mirror and an in-plane rotation (vector-valued targets only)."""
        return target

    # ------------------------------------------------------------------------------ pictures
    def picture(self, value: Tensor) -> np.ndarray:
        """A target or prediction (H×W…) as an H×W×3 uint8 picture; invalid pixels visibly marked."""
        raise NotImplementedError

    def overview_picture(self, rgb: np.ndarray, prediction: Tensor) -> np.ndarray:
        """The panel of `mtl predict`'s overview picture."""
        return self.picture(prediction)

    def extra_pictures(self, prediction: Tensor) -> dict[str, np.ndarray]:
        """Pictures `mtl predict` writes besides the dataset-format file, by file-name suffix."""
        return {}

    def histograms(self, target: Tensor, prediction: Tensor) -> dict[str, Tensor]:
        """Values for TensorBoard histograms of observed validation samples, by tag."""
        return {}


def loss_weight_flag(task: str) -> str:
    return f"loss_weight_{task}"


def build_tasks(
    names: Sequence[str], flags: argparse.Namespace, info: DatasetInfo, states: Mapping[str, Mapping[str, Any]]
) -> dict[str, Task]:
    """The tasks of a run, in the order given, each from its own flags and saved state."""
    return {name: TASKS[name].from_flags(flags, info, states.get(name, {})) for name in names}
