"""Streaming surface-normal metrics: angular error in degrees over all valid pixels of a split, or per
evaluation batch.

The NYUv2 literature (Eigen & Fergus 2015, and MTAN/LibMTL tables) reports the mean and median angle
between predicted and true normals and the percentage of pixels within 11.25°, 22.5° and 30°. LibMTL pools
them over every valid pixel of the split; MTAN's code (and Nash-MTL's, FAMO's) computes the five figures for
each evaluation batch and averages them over the batches (protocol ``mtan``), where the median of a batch is
exact. Pooled over the split, the mean and the percentages are exact and the median comes from a histogram with
0.01° bins (a few kB of state that sums exactly across processes, where the exact median would need every angle
of the split in memory), interpolated within its bin.

Under ``mtl_pytorch`` (``EvalProtocol.normals_8bit``) a prediction is scored as MTI-Net's and MTL-PyTorch's PNG
files hold it: the unit vector n stored as the codes ⌊255·(n + 1)/2⌋ (their ``get_output`` and ``astype(np.uint8)``)
and read back as 2·code/255 − 1, re-normalised (``eval_normals.py``) — the published figures score those files.

Which pixels count, and how: by default a target finite and not zero, re-normalised; with ``as_stored`` (the
references) the stored vector as it is, valid where x + y + z ≠ 0 — their test, which also drops a non-zero
vector whose components sum to 0.
"""

from __future__ import annotations

import torch
from torchmetrics import Metric

from mtl.metrics.protocol import PROTOCOLS, EvalProtocol

THRESHOLDS = (11.25, 22.5, 30.0)
NORMALS_METRIC_NAMES = ("mean_angle", "median_angle", "within_11_25", "within_22_5", "within_30")
BIN_DEG = 0.01
BINS = round(180 / BIN_DEG)


def angles_deg(pred: torch.Tensor, target: torch.Tensor, as_stored: bool = False) -> torch.Tensor:
    """Angles (float64 degrees) between the predicted directions and the targets on the valid pixels of B×3×H×W
    tensors (see the module's docstring for ``as_stored``)."""
    if pred.shape != target.shape or pred.dim() != 4 or pred.shape[1] != 3:
        raise ValueError(f"normals must be B×3×H×W of one shape, got {tuple(pred.shape)} and {tuple(target.shape)}")
    finite = target.isfinite().all(1)
    valid = finite & (target.sum(1) != 0) if as_stored else finite & (target.abs().sum(1) > 0)
    p = pred.permute(0, 2, 3, 1)[valid].double()
    t = target.permute(0, 2, 3, 1)[valid].double()
    p = p / p.norm(dim=1, keepdim=True).clamp_min(1e-12)
    if not as_stored:
        t = t / t.norm(dim=1, keepdim=True)
    cos = (p * t).sum(1).clamp(-1.0, 1.0)
    return torch.rad2deg(torch.arccos(cos))


def as_8bit_files(pred: torch.Tensor) -> torch.Tensor:
    """Predicted normals (B×3×H×W) → the vectors MTL-PyTorch's 8-bit prediction PNGs give back (not re-normalised)."""
    unit = pred.double() / pred.double().norm(dim=1, keepdim=True).clamp_min(1e-12)
    codes = ((unit + 1.0) * 255.0 / 2.0).floor().clamp(0, 255)
    return 2.0 * codes / 255.0 - 1.0


def median(values: torch.Tensor) -> torch.Tensor:
    """np.median's convention: the mean of the two middle values of an even count (torch.median takes the lower;
    torch.quantile refuses more than 2^24 values)."""
    ordered = values.flatten().sort().values
    n = ordered.numel()
    return (ordered[(n - 1) // 2] + ordered[n // 2]) / 2


class NormalsMetrics(Metric):
    is_differentiable = False
    higher_is_better = None  # mixed: the angles go down, the percentages up
    full_state_update = False

    def __init__(self, protocol: EvalProtocol = PROTOCOLS["course"], **kwargs) -> None:
        super().__init__(**kwargs)
        self.protocol = protocol
        self.add_state("angle_sum", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.zeros((), dtype=torch.int64), dist_reduce_fx="sum")
        self.add_state("within", default=torch.zeros(len(THRESHOLDS), dtype=torch.int64), dist_reduce_fx="sum")
        self.add_state("histogram", default=torch.zeros(BINS, dtype=torch.int64), dist_reduce_fx="sum")
        # Per evaluation batch (protocol mtan): the sum over batches of each batch's five figures, and the batches.
        self.add_state("batch_sums", default=torch.zeros(len(NORMALS_METRIC_NAMES), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("batches", default=torch.zeros((), dtype=torch.int64), dist_reduce_fx="sum")

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """Add a batch of predicted normals and targets (NaN = invalid), both B×3×H×W."""
        pred = as_8bit_files(pred.detach()) if self.protocol.normals_8bit else pred.detach()
        angles = angles_deg(pred, target.detach(), self.protocol.normals_as_stored)
        if self.protocol.normals_per_batch:
            if angles.numel():  # a batch without a valid pixel is left out (the references' mean would be NaN)
                within = [100.0 * (angles < t).double().mean() for t in THRESHOLDS]
                figures = torch.stack([angles.mean(), median(angles), *within])
                self.batch_sums += figures.to(self.batch_sums.device)
                self.batches += 1
            return
        self.angle_sum += angles.sum()
        self.count += angles.numel()
        self.within += torch.stack([(angles < t).sum() for t in THRESHOLDS])
        bins = (angles / BIN_DEG).long().clamp_(0, BINS - 1)
        self.histogram += torch.bincount(bins, minlength=BINS)

    def compute(self) -> dict[str, torch.Tensor]:
        if self.protocol.normals_per_batch:
            return dict(zip(NORMALS_METRIC_NAMES, self.batch_sums / self.batches.double()))
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
