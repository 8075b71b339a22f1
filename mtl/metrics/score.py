"""The course's scalar scores, built from mIoU and SI-logRMSE (both in percent-like units)."""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch


def grader_score(miou: float | torch.Tensor, si_log_rmse: float | torch.Tensor) -> float:
    """The "Multitask" grader: max(mIoU − 50, 0) + max(50 − SI-logRMSE, 0), in [0, 100], higher is better."""
    return max(float(miou) - 50.0, 0.0) + max(50.0 - float(si_log_rmse), 0.0)


def total_score(miou: float | torch.Tensor, si_log_rmse: float | torch.Tensor) -> float:
    """mIoU − SI-logRMSE: unclipped, so it still moves when a task is below the grader's 50 threshold."""
    return float(miou) - float(si_log_rmse)


def checkpoint_rank(grader: float, total: float) -> float:
    """Orders validation results for best.ckpt: the grader, ties (e.g. 0 early in training) broken by total."""
    return float(grader) + 1e-4 * math.tanh(float(total) / 100.0)


def summary(semseg_result: Mapping[str, torch.Tensor], depth_result: Mapping[str, torch.Tensor]) -> dict[str, float]:
    """``grader``, ``miou``, ``si_log_rmse`` and ``total`` from SemsegMetrics.compute() and DepthMetrics.compute()."""
    miou = float(semseg_result["miou"])
    si = float(depth_result["si_log_rmse"])
    return {"grader": grader_score(miou, si), "miou": miou, "si_log_rmse": si, "total": total_score(miou, si)}
