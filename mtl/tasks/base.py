"""What a task plug-in provides: everything task-specific, so that nothing else in the toolkit names a task.

A task is one file in ``mtl/tasks/`` with a class registered by ``@register_task("name")``. It owns its
output channels, loss and flags, the decoding of raw network outputs into a prediction, its metric, its
TensorBoard tags, the tensors it is given by a dataset (from the dataset codec's arrays), how augmentation
resamples it, how test-time augmentation merges views, how it is drawn, and its ONNX output.

What a dataset says about a task (its classes, its value range, …) is a small dataclass of the task's module,
which a layout fills in: ``DatasetInfo.task_info[name]``, read by the task as ``self.task_info``.
A task may have no files of its own: with ``source`` set, its target is derived (``derive``) from another
task's array, and it is present wherever that task is.

``Task`` is abstract: ``@register_task`` refuses a class that leaves a required method or attribute undefined,
naming them, so a plug-in fails when it is loaded, not when a rarely used path runs.
Tasks import torch inside their methods (see ``mtl.plugins``): building the command line imports them.
"""

from __future__ import annotations

import argparse
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from mtl.models.options import TaskOutput
from mtl.plugins import Registry

if TYPE_CHECKING:
    from torch import Tensor
    from torchmetrics import Metric

    from mtl.metrics.protocol import EvalProtocol

    from mtl.datasets.base import DatasetInfo, DatasetLayout

TASKS: Registry[type[Task]] = Registry("task", "mtl.tasks")
# Class attributes every task sets (the abstract methods are listed by ABC).
REQUIRED_ATTRIBUTES = ("summary_name", "summary_label", "higher_is_better", "onnx_output", "target_dtype")


def missing_members(cls: type, required_attributes: Iterable[str]) -> list[str]:
    """The abstract methods ``cls`` leaves undefined and the required class attributes it does not set."""
    return sorted(getattr(cls, "__abstractmethods__", ())) + [a for a in required_attributes if not hasattr(cls, a)]


def register_task(name: str) -> Callable[[type[Task]], type[Task]]:
    """Class decorator: ``@register_task("name")`` makes the task ``--tasks name``. A class that lacks a required
    method or attribute is refused here, with one line naming it and what it lacks."""

    def decorator(cls: type[Task]) -> type[Task]:
        missing = missing_members(cls, REQUIRED_ATTRIBUTES)
        if cls.source is not None and cls.derive is Task.derive:
            missing.append("derive")
        if missing:
            raise TypeError(f"task {name!r}: {cls.__name__} does not define {', '.join(missing)} (see mtl.tasks.Task)")
        return TASKS.register(name)(cls)

    return decorator


def derived_tasks(tasks: Iterable[str]) -> tuple[str, ...]:
    """The registered tasks derived from one of ``tasks`` (``Task.source``) and not among them, by name."""
    present = set(tasks)
    return tuple(name for name, cls in TASKS.items() if cls.source in present and name not in present)


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


class Task(ABC):
    name: ClassVar[str]
    default_weight: ClassVar[float] = 0.5  # --loss_weight_<task>
    summary_name: ClassVar[str]  # the metric shown as metrics_summary/<task>
    summary_label: ClassVar[str]  # how it is printed after each validation
    higher_is_better: ClassVar[bool]
    # The metrics Δm compares with single-task baselines: (TensorBoard tag, higher is better), as published tables use.
    delta_metrics: ClassVar[tuple[tuple[str, bool], ...]] = ()
    # The one metric of the Δ_MTL of ASTMT / MTI-Net / MTL-PyTorch tables (``--delta_metrics primary``): (tag, higher is
    # better); None: the summary metric.
    delta_primary: ClassVar[tuple[str, bool] | None] = None
    onnx_output: ClassVar[str]
    target_dtype: ClassVar[str]  # torch dtype name of the target tensor (what augmentation must keep)
    source: ClassVar[str | None] = None  # the task whose array this one's target is derived from (``derive``)
    # The dataclass of DatasetInfo.task_info[name], if the task has dataset facts: checkpoints rebuild it from their
    # plain record (mtl.inference.predictor).
    info_type: ClassVar[type | None] = None

    def __init__(self, info: DatasetInfo) -> None:
        self.info = info

    @property
    def task_info(self) -> Any:
        """What the dataset says about this task (``info.task_info[name]``, a dataclass of the task's module)."""
        try:
            return self.info.task_info[self.name]
        except KeyError:
            raise ValueError(f"the {self.info.name} dataset gives no {self.name} facts (DatasetInfo.task_info)") from None

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
    @abstractmethod
    def output(self) -> TaskOutput:
        """What the model must produce for this task."""

    @abstractmethod
    def loss(self, outputs: Tensor | Sequence[Tensor], target: Tensor) -> Tensor:
        """Training loss against the dataset's target tensor (float32, whatever the output dtype)."""

    @abstractmethod
    def decode(self, raw: Tensor) -> Tensor:
        """Final raw output (B×C×H×W) → prediction in the target's convention."""

    @abstractmethod
    def export(self, raw: Tensor) -> Tensor:
        """What the ONNX graph returns for this task (B×C×H×W)."""

    def onnx_metadata(self) -> dict[str, str]:
        """Properties of the ONNX file that describe this task's output."""
        return {}

    def flip_back(self, raw: Tensor) -> Tensor:
        """Raw output of a horizontally flipped input → the output for the unflipped input."""
        return raw.flip(-1)

    @abstractmethod
    def tta_term(self, raw: Tensor, num_views: int, back: Callable[[Tensor], Tensor]) -> Tensor:
        """One test-time-augmentation view's contribution, mapped to the input's frame by ``back`` (undoes the
        view's flip with ``flip_back`` and its scale); views are summed, then ``tta_result``."""

    @abstractmethod
    def tta_result(self, total: Tensor, num_views: int) -> Tensor:
        """The summed views → the prediction."""

    # ------------------------------------------------------------------------------- metrics
    @abstractmethod
    def metric(self, protocol: EvalProtocol) -> Metric:
        """A fresh torchmetrics metric whose ``compute()`` is a mapping of named results, computed under the
        evaluation ``protocol`` (``mtl.metrics.protocol``: how published tables average and clamp; a task follows
        the choices that concern it, or none)."""

    @abstractmethod
    def scalars(self, result: Mapping[str, Tensor]) -> dict[str, float]:
        """Validation scalars by TensorBoard tag (``metrics_task_<task>/…``); the engine adds
        ``metrics_summary/<task>`` from ``summary``."""

    @abstractmethod
    def report(self, result: Mapping[str, Tensor]) -> dict[str, Any]:
        """The same result for a JSON report (``mtl predict``): plain numbers by name."""

    def summary(self, result: Mapping[str, Tensor]) -> float:
        """The one number that sums the task up (logged as ``metrics_summary/<task>``, ranked by the dataset)."""
        return float(result[self.summary_name])

    def format_mismatch(self, target: DatasetInfo) -> str | None:
        """Why this task's predictions cannot be written in the files of a dataset with ``target``'s facts (e.g.
        other classes), as the end of a sentence starting with the format's flag; None when they can."""
        return None

    # -------------------------------------------------------------------------------- data
    def derive(self, source: np.ndarray) -> np.ndarray:
        """The target array from the ``source`` task's array (a task with ``source`` defines it)."""
        raise NotImplementedError(f"{type(self).__name__} has no source task to derive its target from")

    @abstractmethod
    def to_tensor(self, array: np.ndarray) -> Tensor:
        """A dataset codec's array → the target tensor (what losses and metrics take)."""

    def to_array(self, prediction: Tensor) -> np.ndarray:
        """One decoded prediction → the array a dataset codec writes."""
        return prediction.detach().cpu().numpy()

    @property
    @abstractmethod
    def fill(self) -> float:
        """Target value of pixels that a geometric augmentation brings in from outside the image (ignore,
        invalid). Targets are resampled by nearest neighbour: no invented labels, depths or normals."""

    def reorient(self, target: Tensor, flip: bool, angle_rad: float) -> Tensor:
        """Correct a resampled target for a mirror and an in-plane rotation (vector-valued targets only)."""
        return target

    # ------------------------------------------------------------------------------ pictures
    @abstractmethod
    def picture(self, value: Tensor) -> np.ndarray:
        """A target or prediction (H×W…) as an H×W×3 uint8 picture; invalid pixels visibly marked."""

    def overview_picture(self, rgb: np.ndarray, prediction: Tensor) -> np.ndarray:
        """The panel of `mtl predict`'s overview picture."""
        return self.picture(prediction)

    def extra_pictures(self, prediction: Tensor) -> dict[str, np.ndarray]:
        """Pictures `mtl predict` writes besides the dataset-format file, by file-name suffix."""
        return {}

    def histograms(self, target: Tensor, prediction: Tensor) -> dict[str, Tensor]:
        """Values for TensorBoard histograms of observed validation samples, by tag."""
        return {}


def build_tasks(
    names: Sequence[str], flags: argparse.Namespace, info: DatasetInfo, states: Mapping[str, Mapping[str, Any]]
) -> dict[str, Task]:
    """The tasks of a run, in the order given, each from its own flags and saved state."""
    return {name: TASKS[name].from_flags(flags, info, states.get(name, {})) for name in names}
