"""Streaming monocular-depth metrics in metres, computed per image and averaged over images."""

from __future__ import annotations

import torch
from torchmetrics import Metric

# Fixed order: logs, CSV columns and tables list the metrics in this order.
DEPTH_METRIC_NAMES: tuple[str, ...] = (
    "log_mae",
    "mae",
    "rmse",
    "rel",
    "rel_squared",
    "delta1",
    "delta2",
    "delta3",
    "inv_mae",
    "inv_rmse",
    "log_rmse",
    "si_log_rmse",
)

MIN_DEPTH_M = 0.01
KM_PER_M_INVERSE = 1000.0  # an inverse depth in 1/m times this is in 1/km


def _as_images(x: torch.Tensor, what: str) -> torch.Tensor:
    """H×W, B×H×W or B×1×H×W → B×H×W."""
    if x.dim() == 2:
        return x.unsqueeze(0)
    if x.dim() == 4 and x.shape[1] == 1:
        return x.squeeze(1)
    if x.dim() == 3:
        return x
    raise ValueError(f"{what} must be H×W, B×H×W or B×1×H×W, got shape {tuple(x.shape)}")


def depth_metrics_per_image(pred_m: torch.Tensor, target_m: torch.Tensor) -> torch.Tensor:
    """Metrics of each image with at least one valid target pixel: a K×len(DEPTH_METRIC_NAMES) float64 tensor.

    See :class:`DepthMetrics` for the definitions. Work is vectorised over the batch: invalid pixels are
    masked out of every per-image mean instead of looping over images.
    """
    pred = _as_images(pred_m, "prediction")
    target = _as_images(target_m, "target")
    if pred.shape != target.shape:
        raise ValueError(f"prediction shape {tuple(pred.shape)} != target shape {tuple(target.shape)}")
    valid = torch.isfinite(target) & (target > 0)
    n = valid.sum(dim=(1, 2))
    keep = n > 0
    valid, n = valid[keep], n[keep].double()
    # float64 throughout: the scale-invariant term is a small difference of large sums.
    gt = torch.where(valid, target[keep].double(), 1.0).clamp(min=MIN_DEPTH_M)
    est = torch.where(valid, pred[keep].double(), 1.0).clamp(min=MIN_DEPTH_M)

    def mean(x: torch.Tensor) -> torch.Tensor:
        return torch.where(valid, x, 0.0).sum(dim=(1, 2)) / n

    d = gt.log() - est.log()
    d_mean = mean(d)
    err = gt - est
    ratio = torch.maximum(gt / est, est / gt)
    inv_err = KM_PER_M_INVERSE * (1.0 / gt - 1.0 / est)  # 1/km, as KITTI reports iMAE and iRMSE
    values = {
        "log_mae": mean(d.abs()),
        "mae": mean(err.abs()),
        "rmse": mean(err**2).sqrt(),
        "rel": mean(err.abs() / gt),
        "rel_squared": mean(err**2 / gt),  # Sq Rel of Eigen et al. 2014 (metres)
        "delta1": 100.0 * mean((ratio < 1.25).double()),
        "delta2": 100.0 * mean((ratio < 1.25**2).double()),
        "delta3": 100.0 * mean((ratio < 1.25**3).double()),
        "inv_mae": mean(inv_err.abs()),
        "inv_rmse": mean(inv_err**2).sqrt(),
        "log_rmse": mean(d**2).sqrt(),
        # Centred form of 100·sqrt(mean(d²) − mean(d)²): same value, no cancellation when d is nearly constant.
        "si_log_rmse": 100.0 * mean((d - d_mean[:, None, None]) ** 2).sqrt(),
    }
    return torch.stack([values[name] for name in DEPTH_METRIC_NAMES], dim=1)


class DepthMetrics(Metric):
    """Depth metrics in metres, each computed per image over its valid pixels, then averaged over images.

    Valid pixels: target finite and > 0 (NaN, ±inf, ≤ 0 are invalid; the MiniScapes decoder gives NaN).
    Images without a valid pixel are skipped. Both depths are clamped to ≥ 0.01 m, then with
    d = ln(gt) − ln(pred), err = gt − pred, n valid pixels, means over valid pixels:

    - ``si_log_rmse`` = 100·sqrt(mean(d²) − mean(d)²)  (the course's scale-invariant log RMSE)
    - ``log_rmse`` = sqrt(mean(d²)), ``log_mae`` = mean(|d|)  (natural log, not scaled)
    - ``mae`` = mean(|err|), ``rmse`` = sqrt(mean(err²))  (metres)
    - ``rel`` = mean(|err|/gt)  (Abs Rel, a fraction)
    - ``rel_squared`` = mean(err²/gt)  (Sq Rel of Eigen et al. 2014, in metres; earlier versions of mtl
      logged mean(err²/gt²) under this tag, the "squared relative" of the KITTI depth devkit's C++ code)
    - ``delta{k}`` = 100·mean(max(gt/pred, pred/gt) < 1.25^k), k = 1, 2, 3  (percent)
    - ``inv_mae`` = 1000·mean(|1/gt − 1/pred|), ``inv_rmse`` = 1000·sqrt(mean((1/gt − 1/pred)²))  (1/km, the
      unit of KITTI's iMAE and iRMSE; earlier versions logged 1/m, 1000× smaller)

    A NaN or infinite prediction on a valid pixel makes the metrics NaN rather than hiding it.
    The state is a float64 sum per metric plus an image count, reduced by summation (DDP-safe).
    ``compute()`` before any valid image returns NaN for every metric.
    """

    is_differentiable = False
    higher_is_better = None  # mixed: the deltas go up, the errors go down
    full_state_update = False

    sums: torch.Tensor
    count: torch.Tensor

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("sums", default=torch.zeros(len(DEPTH_METRIC_NAMES), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.zeros((), dtype=torch.int64), dist_reduce_fx="sum")

    def update(self, pred_m: torch.Tensor, target_m: torch.Tensor) -> None:
        """Add a batch (B×H×W, B×1×H×W) or one image (H×W) of depths in metres."""
        per_image = depth_metrics_per_image(pred_m.detach(), target_m.detach())
        self.sums += per_image.sum(dim=0)
        self.count += per_image.shape[0]

    def compute(self) -> dict[str, torch.Tensor]:
        means = self.sums / self.count.double()
        return {name: means[i] for i, name in enumerate(DEPTH_METRIC_NAMES)}
