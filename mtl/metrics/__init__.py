"""Metrics (streaming, torchmetrics-based), the course's scores, and the submission grader."""

from mtl.metrics.depth import DEPTH_METRIC_NAMES, DepthMetrics, depth_metrics_per_image
from mtl.metrics.score import checkpoint_rank, grader_score, summary, total_score
from mtl.metrics.semseg import SemsegMetrics

__all__ = [
    "DEPTH_METRIC_NAMES",
    "DepthMetrics",
    "checkpoint_rank",
    "SemsegMetrics",
    "depth_metrics_per_image",
    "grader_score",
    "summary",
    "total_score",
]
