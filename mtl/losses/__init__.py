"""Training losses: depth target units, per-task losses with deep supervision, and task weighting."""

from mtl.losses.depth import DEPTH_LOSSES, berhu_loss, get_depth_loss, l1_loss, l2_loss, silog_loss
from mtl.losses.depth_units import DEPTH_UNITS, DepthUnit, make_depth_unit
from mtl.losses.semseg import semseg_loss
from mtl.losses.task import TaskLoss
from mtl.losses.weighting import WEIGHTINGS, FixedWeighting, UncertaintyWeighting, Weighting, build_weighting

__all__ = [
    "DEPTH_LOSSES",
    "DEPTH_UNITS",
    "WEIGHTINGS",
    "DepthUnit",
    "FixedWeighting",
    "TaskLoss",
    "UncertaintyWeighting",
    "Weighting",
    "berhu_loss",
    "build_weighting",
    "get_depth_loss",
    "l1_loss",
    "l2_loss",
    "make_depth_unit",
    "semseg_loss",
    "silog_loss",
]
