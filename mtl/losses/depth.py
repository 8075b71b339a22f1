"""Depth losses on valid pixels: per image, then averaged over the images that have valid pixels.

Every loss has the signature ``loss(pred, target, valid, unit) -> scalar`` with ``pred``/``target`` in the
unit's space (B×1×H×W or B×H×W) and ``valid`` a bool mask of the same size (None: the finite targets).
A pixel also counts as invalid where the target is not finite. Invalid pixels are replaced *before* any
arithmetic (NaN·0 is NaN, in the forward and the backward pass), so NaN targets never reach a gradient.
A batch without a single valid pixel gives 0, still connected to ``pred`` (zero gradient).
Computation is in float32 whatever the prediction dtype (mixed precision).
"""

from __future__ import annotations

from typing import Callable, Protocol

import torch
from torch import Tensor


class DepthUnit(Protocol):
    """What the losses need of a depth unit (``mtl.tasks.depth``): its value range and log metres."""

    range: tuple[float, float]

    def log_metres(self, x: Tensor) -> Tensor: ...


BERHU_THRESHOLD = 0.2  # c = 0.2·max|residual| per image (Laina et al. 2016)
SILOG_LAMBDA = 0.15  # sqrt(Var(ε) + λ·E[ε]²), i.e. the E[ε²] − 0.85·E[ε]² form of Eigen et al. / AdaBins
SILOG_SCALE = 10.0  # AdaBins' ×10 brings the loss (≈ SI-logRMSE/10) to the scale of the semseg CE
_EPS = 1e-12  # keeps sqrt and the berHu division away from 0/0 for perfect predictions

DepthLoss = Callable[[Tensor, Tensor, "Tensor | None", DepthUnit], Tensor]


def _flat(x: Tensor, name: str) -> Tensor:
    """B×1×H×W or B×H×W → B×(H·W)."""
    if x.dim() == 4 and x.shape[1] == 1:
        x = x[:, 0]
    if x.dim() != 3:
        raise ValueError(f"depth {name} must be B×1×H×W or B×H×W, got shape {tuple(x.shape)}")
    return x.reshape(x.shape[0], -1)


def _masked(pred: Tensor, target: Tensor, valid: Tensor | None, fill: float) -> tuple[Tensor, Tensor, Tensor]:
    """Flattened float32 pred and target with ``fill`` at invalid pixels, and the B×N validity mask."""
    p, t = _flat(pred, "prediction").float(), _flat(target, "target").float()
    if p.shape != t.shape:
        raise ValueError(f"depth prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ in size")
    mask = torch.isfinite(t)
    if valid is not None:
        v = _flat(valid, "valid mask")
        if v.shape != t.shape or v.dtype != torch.bool:
            raise ValueError(f"valid mask must be bool of the target's size, got {v.dtype} {tuple(valid.shape)}")
        mask = mask & v
    return torch.where(mask, p, fill), torch.where(mask, t, fill), mask


def _mean_over_images(per_image: Tensor, mask: Tensor) -> Tensor:
    """Mean of per-image values over the images with ≥ 1 valid pixel (0 if none has one)."""
    has = mask.any(1)
    return torch.where(has, per_image, 0.0).sum() / has.sum().clamp_min(1)


def _pixel_mean(values: Tensor, mask: Tensor) -> Tensor:
    """Per-image mean of ``values`` (already 0 at invalid pixels) over the valid pixels, then over images."""
    per_image = values.sum(1) / mask.sum(1).clamp_min(1)
    return _mean_over_images(per_image, mask)


def l2_loss(pred: Tensor, target: Tensor, valid: Tensor | None, unit: DepthUnit) -> Tensor:
    """Mean squared error (the course default, on normalised depth)."""
    p, t, mask = _masked(pred, target, valid, 0.0)
    return _pixel_mean((p - t) ** 2, mask)


def l1_loss(pred: Tensor, target: Tensor, valid: Tensor | None, unit: DepthUnit) -> Tensor:
    """Mean absolute error."""
    p, t, mask = _masked(pred, target, valid, 0.0)
    return _pixel_mean((p - t).abs(), mask)


def berhu_loss(pred: Tensor, target: Tensor, valid: Tensor | None, unit: DepthUnit) -> Tensor:
    """Reverse Huber: |r| up to c, (r² + c²)/(2c) beyond; c = 0.2·max|r| of the image, detached."""
    p, t, mask = _masked(pred, target, valid, 0.0)
    r = (p - t).abs()
    c = (BERHU_THRESHOLD * r.detach().amax(1, keepdim=True)).clamp_min(_EPS)
    values = torch.where(r <= c, r, (r**2 + c**2) / (2 * c))
    return _pixel_mean(values, mask)


def silog_loss(
    pred: Tensor,
    target: Tensor,
    valid: Tensor | None,
    unit: DepthUnit,
    lam: float = SILOG_LAMBDA,
    scale: float = SILOG_SCALE,
) -> Tensor:
    """Scale-invariant log loss, scale·sqrt(Var(ε) + λ·E[ε]²) per image, ε = log y − log ŷ in log metres.

    Log metres come from ``unit.log_metres``: exact and unclamped for the ``log`` unit, log of the decoded
    (≥ 2 m) depth otherwise, so for other units predictions beyond the decode range get no gradient.
    """
    fill = sum(unit.range) / 2  # a unit value whose log metres are finite
    p, t, mask = _masked(pred, target, valid, fill)
    eps = torch.where(mask, unit.log_metres(t) - unit.log_metres(p), 0.0)
    n = mask.sum(1).clamp_min(1)
    mean = eps.sum(1) / n
    var = (torch.where(mask, eps - mean[:, None], 0.0) ** 2).sum(1) / n
    per_image = scale * (var + lam * mean**2).clamp_min(_EPS).sqrt()
    return _mean_over_images(per_image, mask)


DEPTH_LOSSES: dict[str, DepthLoss] = {
    "l2": l2_loss,
    "l1": l1_loss,
    "berhu": berhu_loss,
    "silog": silog_loss,
}


def get_depth_loss(name: str) -> DepthLoss:
    if name not in DEPTH_LOSSES:
        raise ValueError(f"unknown depth loss {name!r}; choose one of {', '.join(DEPTH_LOSSES)}")
    return DEPTH_LOSSES[name]
