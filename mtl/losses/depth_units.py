"""Depth target units: the space the network predicts depth in, and the way back to metres.

Losses compare prediction and target in the unit's space; metrics always compare metres, so every unit
has an exact ``encode`` (metres → unit) and a safe ``decode`` (unit → metres).

``decode`` clamps in the unit's space to the image of [ZMIN/2, 2·ZMAX] = [2 m, 600 m] before mapping back:
any finite or infinite prediction becomes a depth that the PNG format and the log-based metrics accept,
while every ground-truth depth (always inside [ZMIN, ZMAX]) round-trips unchanged. NaN is not hidden: a
diverged network gives NaN metres, which metrics and the prediction writer then report loudly.

Units (``make_depth_unit(name, mean, std)``):
- ``normalized``: (z − mean)/std, the course default (MiniScapes mean 27.0727 m, std 29.1264 m).
- ``log``: standardised log depth (log z − μ)/σ. μ, σ are the log-normal moments matching the dataset's
  metre mean/std (σ² = log(1 + std²/mean²), μ = log(mean) − σ²/2; MiniScapes μ ≈ 2.914, σ ≈ 0.877), so the
  target has roughly unit scale like ``normalized`` and the 0.5/0.5 task weights stay balanced.
- ``inverse``: ZMIN/z, a scaled disparity in (0, 1] for valid depths; mean/std unused.
- ``metric``: z in metres; mean/std unused.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from mtl.data.formats import ZMAX, ZMIN

# The decode clamp range in metres: a margin of 2× around the storable range [ZMIN, ZMAX].
DECODE_MIN_M = ZMIN / 2
DECODE_MAX_M = ZMAX * 2


class DepthUnit:
    """Base class: subclasses define the pure maps ``_to_unit`` and ``_from_unit``; the rest is shared."""

    name = ""

    def __init__(self, mean: float, std: float) -> None:
        if not (math.isfinite(mean) and mean > 0):
            raise ValueError(f"depth mean must be a positive number of metres, got {mean}")
        if not (math.isfinite(std) and std > 0):
            raise ValueError(f"depth std must be a positive number of metres, got {std}")
        self.mean = float(mean)
        self.std = float(std)
        a, b = self._to_unit(torch.tensor([DECODE_MIN_M, DECODE_MAX_M], dtype=torch.float64)).tolist()
        self._clamp = (min(a, b), max(a, b))

    def _to_unit(self, z: Tensor) -> Tensor:
        raise NotImplementedError

    def _from_unit(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def encode(self, depth_m: Tensor) -> Tensor:
        """Metres → the loss target in this unit; NaN (invalid) stays NaN."""
        return self._to_unit(depth_m)

    def decode(self, pred: Tensor) -> Tensor:
        """Unit → float32 metres in [DECODE_MIN_M, DECODE_MAX_M] (computed in float32 also under fp16/bf16)."""
        return self._from_unit(pred.float().clamp(*self._clamp))

    def log_metres(self, x: Tensor) -> Tensor:
        """log(metres) of unit values, differentiable; the SI-log loss works on it."""
        return torch.log(self.decode(x))

    @property
    def range(self) -> tuple[float, float]:
        """(lo, hi) of the unit values of the storable depths [ZMIN, ZMAX]."""
        a, b = self._to_unit(torch.tensor([ZMIN, ZMAX], dtype=torch.float64)).tolist()
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
        return (torch.log(z) - self.log_mean) / self.log_std

    def _from_unit(self, x: Tensor) -> Tensor:
        return torch.exp(x * self.log_std + self.log_mean)

    def log_metres(self, x: Tensor) -> Tensor:
        # Affine, no clamp: the SI-log gradient never vanishes for out-of-range predictions.
        return x.float() * self.log_std + self.log_mean


class InverseDepth(DepthUnit):
    name = "inverse"

    def _to_unit(self, z: Tensor) -> Tensor:
        return ZMIN / z

    def _from_unit(self, x: Tensor) -> Tensor:
        return ZMIN / x


class MetricDepth(DepthUnit):
    name = "metric"

    def _to_unit(self, z: Tensor) -> Tensor:
        return z.clone()

    def _from_unit(self, x: Tensor) -> Tensor:
        return x


DEPTH_UNITS: dict[str, type[DepthUnit]] = {
    cls.name: cls for cls in (NormalizedDepth, LogDepth, InverseDepth, MetricDepth)
}


def make_depth_unit(name: str, mean: float, std: float) -> DepthUnit:
    """The unit called ``name`` for a dataset with depth mean/std in metres."""
    if name not in DEPTH_UNITS:
        raise ValueError(f"unknown depth unit {name!r}; choose one of {', '.join(DEPTH_UNITS)}")
    return DEPTH_UNITS[name](mean, std)
