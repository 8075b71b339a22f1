"""Scoring a trained model on a labelled split in one process (no Trainer): the numbers a grader would give."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from tqdm import tqdm

from mtl.datasets import SplitDataset
from mtl.inference.predictor import Predictor
from mtl.metrics.protocol import EvalProtocol

OnBatch = Callable[[dict[str, Any], dict[str, torch.Tensor]], None]


@torch.no_grad()
def evaluate_split(
    predictor: Predictor,
    dataset: SplitDataset,
    batch_size: int = 8,
    device: str = "cpu",
    on_batch: OnBatch | None = None,
    protocol: EvalProtocol | None = None,
) -> dict[str, Any]:
    """``{"scores": the dataset's scores (e.g. grader, total), "tasks": {task: its report (e.g. miou and
    iou_per_class)}}`` for the tasks with ground truth in ``dataset``: nothing merged, so no task's names can hide
    another's. ``on_batch(batch, predictions)`` sees every batch (in order).

    ``predictor`` is anything with ``predict(rgb_uint8)``, ``tasks`` and ``protocol`` (a Predictor, or test-time
    augmentation); ``protocol``: the evaluation protocol (default: the predictor's, recorded with the run). Under the
    per-batch protocol (``mtan``) the figures depend on ``batch_size``, as the reference's do.
    """
    predictor.eval().to(device)
    protocol = protocol or predictor.protocol
    metrics = {name: predictor.tasks[name].metric(protocol).to(device) for name in dataset.tasks}
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size)
    for batch in tqdm(loader, desc=f"evaluate {dataset.split}", unit="batch", leave=False):
        predictions = predictor.predict(batch["rgb"].to(device))
        for name, metric in metrics.items():
            metric.update(predictions[name], batch[name].to(device))
        if on_batch is not None:
            on_batch(batch, predictions)
    reports: dict[str, Any] = {}
    summary = {}
    for name, metric in metrics.items():
        if not metric.update_count:
            continue
        computed = metric.compute()
        task = predictor.tasks[name]
        reports[name] = task.report(computed)
        summary[name] = task.summary(computed)
    higher = {name: predictor.tasks[name].higher_is_better for name in summary}
    return {"scores": dataset.layout.scores(summary, higher), "tasks": reports}
