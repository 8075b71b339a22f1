"""Monocular depth in metres: the unit the network predicts in, its losses, metrics and pictures.

Losses compare prediction and target in the unit's space; metrics always compare metres with the
untouched ground truth (a published pitfall was scoring in log space), so every unit has an exact
``encode`` (metres → unit) and a safe ``decode`` (unit → metres).

``decode`` clamps in the unit's space to the image of [zmin/2, 2·zmax], a margin of 2× around the
dataset's depth range: any finite or infinite prediction becomes a depth that the file formats and the
log-based metrics accept, while every ground-truth depth round-trips unchanged. NaN is not hidden: a
diverged network gives NaN metres, which metrics and the prediction writer then report loudly.

A layout that stores depth describes it as ``DatasetInfo.task_info["depth"] = DepthInfo(...)``: the range of
valid values, published statistics (if any) and the unit the values are in.

Units (``--depth_unit``):
- ``normalized``: (z − mean)/std, the course default (mean and std from ``--depth_stats``).
- ``log``: standardised log depth (log z − μ)/σ. μ, σ are the log-normal moments matching the dataset's
  metre mean/std (σ² = log(1 + std²/mean²), μ = log(mean) − σ²/2; for the course's 27.0727 m and 29.1264 m,
  μ ≈ 2.914, σ ≈ 0.877), so the target has roughly unit scale like ``normalized`` and equal task weights stay
  balanced.
- ``inverse``: zmin/z, a scaled disparity in (0, 1] for valid depths; mean/std unused.
- ``metric``: z in metres; mean/std unused.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from mtl.flags import float_list, positive_int
from mtl.models.options import TaskOutput
from mtl.tasks.base import Task, deep_supervision_mean, register_task

if TYPE_CHECKING:
    from torch import Tensor
    from torchmetrics import Metric

    from mtl.datasets.base import DatasetInfo, DatasetLayout
    from mtl.metrics.protocol import EvalProtocol

STATS_IMAGES = 256  # train images read to estimate the depth mean/std (`--depth_stats auto`)
LOSSES = ("l2", "l1", "berhu", "silog")
HEADS = ("plain", "adabins")
# The defaults of the task's options, for its constructor and its flags alike.
DEFAULT_UNIT = "normalized"
DEFAULT_LOSS = "l2"  # the course's
DEFAULT_HEAD = "plain"
DEFAULT_ADABINS = (256, 2, 4)  # adaptive bins, transformer layers, attention heads
UNIT_STATS = (1.0, 1.0)  # mean and std when neither a measurement nor the dataset gives any


@dataclass(frozen=True)
class DepthInfo:
    """What a dataset says about its depth maps: values a valid depth can have (in ``unit``; predictions are
    kept near them), published (mean, std) of the train split if any, and the unit: metres, or what a dataset
    stores instead (said, never converted)."""

    value_range: tuple[float, float] = (1e-3, 1e3)
    stats: tuple[float, float] | None = None
    unit: str = "m"


class DepthUnit:
    """Base class: subclasses define the pure maps ``_to_unit`` and ``_from_unit``; the rest is shared."""

    name = ""

    def __init__(self, mean: float, std: float, depth_range: tuple[float, float]) -> None:
        import torch

        if not (math.isfinite(mean) and mean > 0):
            raise ValueError(f"depth mean must be a positive number of metres, got {mean}")
        if not (math.isfinite(std) and std > 0):
            raise ValueError(f"depth std must be a positive number of metres, got {std}")
        self.mean = float(mean)
        self.std = float(std)
        self.zmin, self.zmax = (float(z) for z in depth_range)
        a, b = self._to_unit(torch.tensor([self.zmin / 2, self.zmax * 2], dtype=torch.float64)).tolist()
        self._clamp = (min(a, b), max(a, b))

    def _to_unit(self, z: Tensor) -> Tensor:
        raise NotImplementedError

    def _from_unit(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def encode(self, depth_m: Tensor) -> Tensor:
        """Metres → the loss target in this unit; NaN (invalid) stays NaN."""
        return self._to_unit(depth_m)

    def decode(self, pred: Tensor) -> Tensor:
        """Unit → float32 metres in [zmin/2, 2·zmax] (computed in float32 also under fp16/bf16)."""
        return self._from_unit(pred.float().clamp(*self._clamp))

    def log_metres(self, x: Tensor) -> Tensor:
        """log(metres) of unit values, differentiable; the SI-log loss works on it."""
        return self.decode(x).log()

    @property
    def range(self) -> tuple[float, float]:
        """(lo, hi) of the unit values of the dataset's depth range."""
        import torch

        a, b = self._to_unit(torch.tensor([self.zmin, self.zmax], dtype=torch.float64)).tolist()
        return (min(a, b), max(a, b))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(mean={self.mean}, std={self.std})"


class NormalizedDepth(DepthUnit):
    name = "normalized"

    def _to_unit(self, z: Tensor) -> Tensor:
        return (z - self.mean) / self.std

    def _from_unit(self, x: Tensor) -> Tensor:
        return x * self.std + self.mean


class LogDepth(DepthUnit):
    name = "log"

    @property
    def log_std(self) -> float:
        """σ of the log-normal law with the dataset's metre mean and std."""
        return math.sqrt(math.log1p((self.std / self.mean) ** 2))

    @property
    def log_mean(self) -> float:
        """μ of that log-normal law."""
        return math.log(self.mean) - self.log_std**2 / 2

    def _to_unit(self, z: Tensor) -> Tensor:
        return (z.log() - self.log_mean) / self.log_std

    def _from_unit(self, x: Tensor) -> Tensor:
        return (x * self.log_std + self.log_mean).exp()

    def log_metres(self, x: Tensor) -> Tensor:
        # Affine, no clamp: the SI-log gradient never vanishes for out-of-range predictions.
        return x.float() * self.log_std + self.log_mean


class InverseDepth(DepthUnit):
    name = "inverse"

    def _to_unit(self, z: Tensor) -> Tensor:
        return self.zmin / z

    def _from_unit(self, x: Tensor) -> Tensor:
        return self.zmin / x


class MetricDepth(DepthUnit):
    name = "metric"

    def _to_unit(self, z: Tensor) -> Tensor:
        return z.clone()

    def _from_unit(self, x: Tensor) -> Tensor:
        return x


DEPTH_UNITS: dict[str, type[DepthUnit]] = {cls.name: cls for cls in (NormalizedDepth, LogDepth, InverseDepth, MetricDepth)}


def make_depth_unit(name: str, mean: float, std: float, depth_range: tuple[float, float]) -> DepthUnit:
    """The unit called ``name`` for a dataset with depth mean/std and valid range in metres."""
    if name not in DEPTH_UNITS:
        raise ValueError(f"unknown depth unit {name!r}; choose one of {', '.join(DEPTH_UNITS)}")
    return DEPTH_UNITS[name](mean, std, depth_range)


def depth_stats_value(value: str) -> str:
    """``--depth_stats``: 'auto', 'dataset', the name of a dataset layout (its published statistics) or
    'MEAN,STD' with MEAN, STD > 0."""
    from mtl.datasets import DATASETS

    if value in ("auto", "dataset") or value in DATASETS:
        return value
    try:
        mean, std = float_list(value)
        if not (mean > 0 and std > 0):
            raise ValueError
    except (ValueError, argparse.ArgumentTypeError) as exc:
        raise argparse.ArgumentTypeError(
            f"expected 'auto', 'dataset', a dataset's name or 'MEAN,STD' with MEAN, STD > 0, got {value!r}"
        ) from exc
    return value


def published_stats(info: DatasetInfo, asked: str) -> tuple[float, float]:
    """The (mean, std) a dataset publishes for its depth; ValueError naming ``--depth_stats asked`` when none."""
    stats = info.task_info["depth"].stats if "depth" in info.task_info else None
    if stats is None:
        raise ValueError(f"--depth_stats {asked}: {info.name} publishes no depth statistics; use auto")
    return stats


def _square(value: str) -> int:
    number = positive_int(value)
    if math.isqrt(number) ** 2 != number:
        raise argparse.ArgumentTypeError(f"expected a square number (latents come from a √n × √n grid), got {value}")
    return number


def depth_moments(depth_maps: Sequence[np.ndarray]) -> tuple[float, float]:
    """Mean and population std (metres) over the valid pixels of all maps, as float64 sums."""
    total = total_sq = 0.0
    count = 0
    for depth in depth_maps:
        valid = depth[np.isfinite(depth)].astype(np.float64)
        count += valid.size
        total += valid.sum()
        total_sq += np.square(valid).sum()
    if count == 0:
        raise ValueError("no valid depth pixel to measure the depth statistics on")
    mean = total / count
    return float(mean), float(np.sqrt(max(total_sq / count - mean * mean, 0.0)))


@register_task("depth")
class Depth(Task):
    info_type = DepthInfo
    summary_name = "si_log_rmse"
    summary_label = "SI-logRMSE"
    delta_metrics = (("metrics_task_depth/mae", False), ("metrics_task_depth/rel", False))  # abs err, rel err
    delta_primary = ("metrics_task_depth/rmse", False)  # MTL-PyTorch: RMSE, pooled under --eval_protocol mtl_pytorch
    higher_is_better = False
    onnx_output = "depth_m"
    target_dtype = "float32"

    def __init__(
        self,
        info: DatasetInfo,
        unit: str = DEFAULT_UNIT,
        loss: str = DEFAULT_LOSS,
        stats: tuple[float, float] | None = None,
        head: str = DEFAULT_HEAD,
        adabins: tuple[int, int, int] = DEFAULT_ADABINS,
    ) -> None:
        """``stats``: the depth (mean, std) measured by ``prepare``; None: the dataset's published ones, if any."""
        super().__init__(info)
        self.stats = stats or self.task_info.stats or UNIT_STATS
        self.unit = make_depth_unit(unit, *self.stats, self.task_info.value_range)
        self.loss_name = loss
        self.head = head
        self.adabins = adabins

    @property
    def task_info(self) -> DepthInfo:
        """The dataset's depth facts; ``DepthInfo``'s defaults for a dataset that gives none."""
        return self.info.task_info.get(self.name, DepthInfo())

    @classmethod
    def add_arguments(cls, group: argparse._ArgumentGroup) -> None:
        group.add_argument("--loss_depth", default=DEFAULT_LOSS, choices=LOSSES, help="depth loss (l2: the course)")
        group.add_argument(
            "--depth_unit", default=DEFAULT_UNIT, choices=sorted(DEPTH_UNITS),
            help="unit the network predicts depth in; metrics always use metres",
        )
        group.add_argument(
            "--depth_stats", type=depth_stats_value, default="auto",
            help="depth mean,std in metres for normalisation: 'auto' (measured on the train split), 'dataset' "
            "(the dataset's published values), the name of another dataset (its published values) or 'MEAN,STD'",
        )
        group.add_argument("--depth_head", choices=HEADS, default=DEFAULT_HEAD, help="depth prediction head")
        bins, layers, heads = DEFAULT_ADABINS
        group.add_argument("--adabins_bins", type=_square, default=bins, help="adaptive bins (a square number)")
        group.add_argument("--adabins_layers", type=positive_int, default=layers, help="transformer layers of the adaptive-bins head")
        group.add_argument("--adabins_heads", type=positive_int, default=heads, help="attention heads of the adaptive-bins head")

    @classmethod
    def prepare(cls, flags: argparse.Namespace, dataset: DatasetLayout) -> dict[str, Any]:
        from mtl.datasets import DATASETS

        if flags.depth_stats == "dataset":
            mean, std = published_stats(dataset.info, flags.depth_stats)
        elif flags.depth_stats in DATASETS:
            mean, std = published_stats(DATASETS[flags.depth_stats].info, flags.depth_stats)
        elif flags.depth_stats == "auto":
            size = dataset.split_size("train")
            picks = np.linspace(0, size - 1, min(STATS_IMAGES, size)).round().astype(int).tolist()
            mean, std = depth_moments([dataset.read("train", i, ("depth",))["depth"] for i in picks])
        else:
            mean, std = float_list(flags.depth_stats)
        return {"mean": mean, "std": std}

    @classmethod
    def from_flags(cls, flags: argparse.Namespace, info: DatasetInfo, state: Mapping[str, Any]) -> Depth:
        """Without a measured state (a model built only to count its size), the dataset's published statistics."""
        stats = (state["mean"], state["std"]) if state else None
        return cls(
            info,
            unit=flags.depth_unit,
            loss=flags.loss_depth,
            stats=stats,
            head=flags.depth_head,
            adabins=(flags.adabins_bins, flags.adabins_layers, flags.adabins_heads),
        )

    def state(self) -> dict[str, Any]:
        return {"mean": self.stats[0], "std": self.stats[1]}

    def output(self) -> TaskOutput:
        if self.head == "plain":
            return TaskOutput(1)
        from mtl.models.adabins import AdaBinsHead

        bins, layers, heads = self.adabins
        value_range = self.unit.range
        return TaskOutput(1, head=lambda channels: AdaBinsHead(channels, bins, layers, heads, value_range))

    def loss(self, outputs: Tensor | Sequence[Tensor], target: Tensor) -> Tensor:
        from mtl.losses.depth import DEPTH_LOSSES

        loss = DEPTH_LOSSES[self.loss_name]
        encoded = self.unit.encode(target.float())
        valid = encoded.isfinite()
        return deep_supervision_mean(self.name, outputs, target, lambda pred: loss(pred, encoded, valid, self.unit))

    def decode(self, raw: Tensor) -> Tensor:
        return self.unit.decode(raw[:, 0])

    def export(self, raw: Tensor) -> Tensor:
        return self.unit.decode(raw)

    def onnx_metadata(self) -> dict[str, str]:
        return {"depth_unit": "metres"}

    def tta_term(self, raw: Tensor, num_views: int, back: Callable[[Tensor], Tensor]) -> Tensor:
        return back(self.unit.decode(raw))  # averaged in metres: the mean of e.g. log units is not the mean depth

    def tta_result(self, total: Tensor, num_views: int) -> Tensor:
        return (total / num_views)[:, 0]

    def metric(self, protocol: EvalProtocol) -> Metric:
        from mtl.metrics.depth import DepthMetrics

        return DepthMetrics(protocol)

    def scalars(self, result: Mapping[str, Tensor]) -> dict[str, float]:
        from mtl.metrics.depth import DEPTH_METRIC_NAMES

        return {f"metrics_task_depth/{k}": float(result[k]) for k in DEPTH_METRIC_NAMES}

    def report(self, result: Mapping[str, Tensor]) -> dict[str, Any]:
        return {"si_log_rmse": float(result["si_log_rmse"]), "depth_metrics": {k: float(v) for k, v in result.items()}}

    @property
    def fill(self) -> float:
        return math.nan

    def to_tensor(self, array: np.ndarray) -> Tensor:
        import torch

        return torch.from_numpy(array)

    def to_array(self, prediction: Tensor) -> np.ndarray:
        return prediction.detach().float().cpu().numpy()

    def picture(self, value: Tensor) -> np.ndarray:
        """Log-scaled colour map over the dataset's depth range (near = red, far = blue); invalid (NaN) black."""
        from matplotlib import colormaps

        depth_m = value.detach().float().cpu().numpy()
        lut = (colormaps["turbo_r"](np.linspace(0.0, 1.0, 256))[:, :3] * 255).astype(np.uint8)
        zmin, zmax = self.task_info.value_range
        valid = np.isfinite(depth_m)
        z = np.clip(np.where(valid, depth_m, zmin), zmin, zmax)
        t = (np.log(z) - np.log(zmin)) / (np.log(zmax) - np.log(zmin))
        picture = lut[np.round(t * 255).astype(np.int64)]
        picture[~valid] = 0
        return picture

    def extra_pictures(self, prediction: Tensor) -> dict[str, np.ndarray]:
        return {"depth_color": self.picture(prediction)}

    def histograms(self, target: Tensor, prediction: Tensor) -> dict[str, Tensor]:
        """GT and predicted depth of the observed validation samples, in metres and in the training unit."""
        valid = target.isfinite()
        return {
            "depth_histogram/gt_metres": target[valid],
            "depth_histogram/pred_metres": prediction,
            "depth_histogram/gt_unit": self.unit.encode(target[valid]),
            "depth_histogram/pred_unit": self.unit.encode(prediction),
        }
