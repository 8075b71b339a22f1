"""Streaming metrics (torchmetrics-based) of the tasks."""

from mtl.metrics.depth import DEPTH_METRIC_NAMES, DepthMetrics, depth_metrics_per_image
from mtl.metrics.semseg import SemsegMetrics

__all__ = [
    "DEPTH_METRIC_NAMES",
    "DepthMetrics",
    "SemsegMetrics",
    "depth_metrics_per_image",
]
