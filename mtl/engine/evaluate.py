"""Scoring a trained model on a labelled split in one process (no Trainer): the numbers the grader would give."""

from __future__ import annotations

from typing import Any

import torch
from tqdm import tqdm

from mtl.data.classes import CLASS_NAMES
from mtl.data.miniscapes import MiniScapes
from mtl.metrics import DepthMetrics, SemsegMetrics, grader_score, total_score


@torch.no_grad()
def evaluate_split(module: Any, dataset: MiniScapes, batch_size: int = 8, device: str = "cpu") -> dict[str, Any]:
    """grader, miou, si_log_rmse, total, iou_per_class and depth_metrics of ``module`` on ``dataset``.

    ``module`` is anything with ``predict(rgb_uint8) -> {"semseg": ids, "depth": metres}``.
    """
    module.eval().to(device)
    semseg, depth = SemsegMetrics().to(device), DepthMetrics().to(device)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size)
    for batch in tqdm(loader, desc=f"evaluate {dataset.split}", unit="batch", leave=False):
        pred = module.predict(batch["rgb"].to(device))
        if "semseg" in pred and "semseg" in batch:
            semseg.update(pred["semseg"], batch["semseg"].to(device))
        if "depth" in pred and "depth" in batch:
            depth.update(pred["depth"], batch["depth"].to(device))
    result: dict[str, Any] = {}
    miou = si = 50.0  # a task that is not evaluated contributes 0 to the grader
    if semseg.update_count:
        s = semseg.compute()
        miou = float(s["miou"])
        result["iou_per_class"] = dict(zip(CLASS_NAMES, s["iou_per_class"].tolist()))
        result["miou"] = miou
    if depth.update_count:
        d = depth.compute()
        si = float(d["si_log_rmse"])
        result["depth_metrics"] = {k: float(v) for k, v in d.items()}
        result["si_log_rmse"] = si
    result["grader"] = grader_score(miou, si)
    result["total"] = total_score(miou, si)
    return result
