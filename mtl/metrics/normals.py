"""Streaming surface-normal metrics: angular error in degrees over all valid pixels of a split.

The NYUv2 literature (Eigen & Fergus 2015, and MTAN/LibMTL tables) reports the mean and median angle
between predicted and true normals and the percentage of pixels within 11.25°, 22.5° and 30°, pooled
over every valid pixel. The mean and the percentages are exact; the median comes from a histogram with
0.01° bins (a few kB of state that sums exactly across processes, where the exact median would need
every angle of the split in memory), interpolated within its bin.
"""

from __future__ import annotations

import torch
from torchmetrics import Metric

THRESHOLDS = (11.25, 22.5, 30.0)
NORMALS_METRIC_NAMES = ("mean_angle", "median_angle", "within_11_25", "within_22_5", "within_30")
BIN_DEG = 0.01
BINS = round(180 / BIN_DEG)


def angles_deg(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Angles (float64 degrees) between unit vectors on the valid pixels (target finite) of B×3×H×W tensors."""
    if pred.shape != target.shape or pred.dim() != 4 or pred.shape[1] != 3:
        raise ValueError(f"normals must be B×3×H×W of one shape, got {tuple(pred.shape)} and {tuple(target.shape)}")
    valid = target.isfinite().all(1)
    p = pred.permute(0, 2, 3, 1)[valid].double()
    t = target.permute(0, 2, 3, 1)[valid].double()
    p = p / p.norm(dim=1, keepdim=True).clamp_min(1e-12)
    cos = (p * t).sum(1).clamp(-1.0, 1.0)
    return torch.rad2deg(torch.arccos(cos))


class NormalsMetrics(Metric):
    is_differentiable = False
    higher_is_better = None  # mixed: the angles go down, the percentages up
    full_state_update = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("angle_sum", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.zeros((), dtype=torch.int64), dist_reduce_fx="sum")
        self.add_state("within", default=torch.zeros(len(THRESHOLDS), dtype=torch.int64), dist_reduce_fx="sum")
        self.add_state("histogram", default=torch.zeros(BINS, dtype=torch.int64), dist_reduce_fx="sum")

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """Add a batch of predicted unit normals and targets (NaN = invalid), both B×3×H×W."""
        angles = angles_deg(pred.detach(), target.detach())
        self.angle_sum += angles.sum()
        self.count += angles.numel()
        self.within += torch.stack([(angles < t).sum() for t in THRESHOLDS])
        bins = (angles / BIN_DEG).long().clamp_(0, BINS - 1)
        self.histogram += torch.bincount(bins, minlength=BINS)

    def compute(self) -> dict[str, torch.Tensor]:
        count = self.count.double()
        cumulative = self.histogram.cumsum(0).double()
        half = count / 2
        index = int(torch.searchsorted(cumulative, half))
        before = cumulative[index - 1] if index > 0 else torch.zeros((), dtype=torch.float64)
        inside = (half - before) / self.histogram[min(index, BINS - 1)].double().clamp_min(1)
        median = (index + inside) * BIN_DEG
        percent = 100.0 * self.within.double() / count
        values = (self.angle_sum / count, median, *percent)
        return dict(zip(NORMALS_METRIC_NAMES, values))
