"""Streaming monocular-depth metrics in metres, computed per image and averaged over images; Abs Err and Rel Err
also pooled per evaluation batch or over the split, RMSE and log-RMSE over the split, as other protocols compute
them (``mtl.metrics.protocol``)."""

from __future__ import annotations

import torch
from torchmetrics import Metric

from mtl.metrics.protocol import PROTOCOLS, EvalProtocol

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


def _images_and_validity(pred_m: torch.Tensor, target_m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(prediction, target, valid) as B×H×W; valid: target finite and > 0."""
    pred = _as_images(pred_m, "prediction")
    target = _as_images(target_m, "target")
    if pred.shape != target.shape:
        raise ValueError(f"prediction shape {tuple(pred.shape)} != target shape {tuple(target.shape)}")
    return pred, target, torch.isfinite(target) & (target > 0)


def _clamped(x: torch.Tensor, depth_min: float | None) -> torch.Tensor:
    return x if depth_min is None else x.clamp(min=depth_min)


def depth_metrics_per_image(
    pred_m: torch.Tensor, target_m: torch.Tensor, depth_min: float | None = MIN_DEPTH_M
) -> torch.Tensor:
    """Metrics of each image with at least one valid target pixel: a K×len(DEPTH_METRIC_NAMES) float64 tensor.

    See :class:`DepthMetrics` for the definitions; both depths are clamped to ≥ ``depth_min`` (None: not at all).
    Work is vectorised over the batch: invalid pixels are masked out of every per-image mean instead of looping
    over images.
    """
    pred, target, valid = _images_and_validity(pred_m, target_m)
    n = valid.sum(dim=(1, 2))
    keep = n > 0
    valid, n = valid[keep], n[keep].double()
    # float64 throughout: the scale-invariant term is a small difference of large sums.
    gt = _clamped(torch.where(valid, target[keep].double(), 1.0), depth_min)
    est = _clamped(torch.where(valid, pred[keep].double(), 1.0), depth_min)

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


def pooled_errors(pred_m: torch.Tensor, target_m: torch.Tensor, depth_min: float | None) -> torch.Tensor:
    """[Σ|err|, Σ|err|/gt, valid pixels] over every valid pixel of a batch (float64), the references' Abs and Rel
    Err before their division."""
    pred, target, valid = _images_and_validity(pred_m, target_m)
    gt = _clamped(target[valid].double(), depth_min)
    err = (gt - _clamped(pred[valid].double(), depth_min)).abs()
    return torch.stack([err.sum(), (err / gt).sum(), torch.tensor(float(gt.numel()), dtype=torch.float64)])


def pooled_squares(pred_m: torch.Tensor, target_m: torch.Tensor, depth_min: float | None) -> torch.Tensor:
    """[Σerr², Σ(ln gt − ln pred)², valid pixels] over every valid pixel of a batch (float64): MTL-PyTorch's RMSE and
    log-RMSE before their division."""
    pred, target, valid = _images_and_validity(pred_m, target_m)
    gt = _clamped(target[valid].double(), depth_min)
    est = _clamped(pred[valid].double(), depth_min)
    squares = [((gt - est) ** 2).sum(), ((gt.log() - est.log()) ** 2).sum()]
    return torch.stack([*squares, torch.tensor(float(gt.numel()), dtype=torch.float64)])


class DepthMetrics(Metric):
    """Depth metrics in metres, each computed per image over its valid pixels, then averaged over images
    (under ``protocol`` ``mtan`` and ``libmtl``, ``mae`` and ``rel`` are pooled instead, see below).

    Valid pixels: target finite and > 0 (NaN, ±inf, ≤ 0 are invalid; the decoders give NaN for stored 0).
    Images without a valid pixel are skipped. Both depths are clamped to ≥ the protocol's ``depth_min`` (0.01 m in
    the course protocol; no clamp in the others), then with d = ln(gt) − ln(pred), err = gt − pred, n valid
    pixels, means over valid pixels:

    - ``si_log_rmse`` = 100·sqrt(mean(d²) − mean(d)²)  (the course's scale-invariant log RMSE)
    - ``log_rmse`` = sqrt(mean(d²)), ``log_mae`` = mean(|d|)  (natural log, not scaled)
    - ``mae`` = mean(|err|), ``rmse`` = sqrt(mean(err²))  (metres)
    - ``rel`` = mean(|err|/gt)  (Abs Rel, a fraction)
    - ``rel_squared`` = mean(err²/gt)  (Sq Rel of Eigen et al. 2014, in metres; earlier versions of mtl
      logged mean(err²/gt²) under this tag, the "squared relative" of the KITTI depth devkit's C++ code)
    - ``delta{k}`` = 100·mean(max(gt/pred, pred/gt) < 1.25^k), k = 1, 2, 3  (percent)
    - ``inv_mae`` = 1000·mean(|1/gt − 1/pred|), ``inv_rmse`` = 1000·sqrt(mean((1/gt − 1/pred)²))  (1/km, the
      unit of KITTI's iMAE and iRMSE; earlier versions logged 1/m, 1000× smaller)

    Abs Err and Rel Err as MTAN, Nash-MTL and FAMO compute them (protocol ``mtan``): Σ|err| and Σ|err|/gt over the
    valid pixels of each evaluation batch (the batches ``update`` is given) divided by the batch's valid pixels,
    then the mean over batches — so the figure depends on the batch size, as theirs does; a batch without a valid
    pixel is left out (theirs would divide by zero). As LibMTL computes them (``libmtl``): the same sums over every
    valid pixel of the split, divided once.

    RMSE and log-RMSE as MTI-Net and MTL-PyTorch compute them (protocol ``mtl_pytorch``, ``depth_rmse_pooled``):
    sqrt(Σerr²/n) and sqrt(Σd²/n) over every valid pixel of the split.

    A NaN or infinite prediction on a valid pixel makes the metrics NaN rather than hiding it.
    The state is float64 sums plus counts, reduced by summation (DDP-safe: under ``mtan`` every process's batches
    count). ``compute()`` before any valid image returns NaN for every metric.
    """

    is_differentiable = False
    higher_is_better = None  # mixed: the deltas go up, the errors go down
    full_state_update = False

    sums: torch.Tensor
    count: torch.Tensor

    def __init__(self, protocol: EvalProtocol = PROTOCOLS["course"], **kwargs) -> None:
        super().__init__(**kwargs)
        self.protocol = protocol
        self.add_state("sums", default=torch.zeros(len(DEPTH_METRIC_NAMES), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.zeros((), dtype=torch.int64), dist_reduce_fx="sum")
        # Abs and Rel Err pooled: per batch, the sum of the batches' means and their number; over the split, the
        # sums of the errors and the number of valid pixels.
        self.add_state("pooled", default=torch.zeros(2, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("pooled_count", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        # RMSE and log-RMSE pooled over the split: Σerr², Σd² and the valid pixels.
        self.add_state("squares", default=torch.zeros(3, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, pred_m: torch.Tensor, target_m: torch.Tensor) -> None:
        """Add a batch (B×H×W, B×1×H×W) or one image (H×W) of depths in metres."""
        pred_m, target_m = pred_m.detach(), target_m.detach()
        per_image = depth_metrics_per_image(pred_m, target_m, self.protocol.depth_min)
        self.sums += per_image.sum(dim=0)
        self.count += per_image.shape[0]
        if self.protocol.depth_rmse_pooled:
            self.squares += pooled_squares(pred_m, target_m, self.protocol.depth_min).to(self.squares.device)
        if self.protocol.averaging == "image":
            return
        abs_sum, rel_sum, pixels = pooled_errors(pred_m, target_m, self.protocol.depth_min).to(self.pooled.device)
        if self.protocol.averaging == "split":
            self.pooled += torch.stack([abs_sum, rel_sum])
            self.pooled_count += pixels
        elif pixels > 0:
            self.pooled += torch.stack([abs_sum, rel_sum]) / pixels
            self.pooled_count += 1

    def compute(self) -> dict[str, torch.Tensor]:
        means = self.sums / self.count.double()
        result = {name: means[i] for i, name in enumerate(DEPTH_METRIC_NAMES)}
        if self.protocol.averaging != "image":
            pooled = self.pooled / self.pooled_count
            result["mae"], result["rel"] = pooled[0], pooled[1]
        if self.protocol.depth_rmse_pooled:
            result["rmse"], result["log_rmse"] = (self.squares[:2] / self.squares[2]).sqrt()
        return result
