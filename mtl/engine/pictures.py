"""TensorBoard pictures: training crops at chosen steps, observed validation and training samples after each
validation, and each task's histograms of the observed validation samples.

A row shows the RGB input, then for each task its ground truth and its prediction (``Task.picture``:
invalid or ignored pixels visibly marked).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch import Tensor

from mtl.engine.loggers import add_histogram, add_image
from mtl.tasks import Task


def sample_row(tasks: Mapping[str, Task], rgb: Tensor, targets: Mapping[str, Tensor], predictions: Mapping[str, Tensor]) -> np.ndarray:
    """One H×(k·W)×3 strip: RGB, then each task's target and prediction (whichever are given)."""
    panels = [rgb.detach().cpu().permute(1, 2, 0).numpy().astype(np.uint8)]
    for name, task in tasks.items():
        for values in (targets, predictions):
            if name in values:
                panels.append(task.picture(values[name]))
    return np.concatenate(panels, axis=1)


def grid(rows: Sequence[np.ndarray], gap: int = 2) -> np.ndarray:
    """Stack strips vertically with a thin white gap."""
    width = max(r.shape[1] for r in rows)
    out = []
    for row in rows:
        padded = np.zeros((row.shape[0], width, 3), dtype=np.uint8)
        padded[:, : row.shape[1]] = row
        out += [padded, np.full((gap, width, 3), 255, dtype=np.uint8)]
    return np.concatenate(out[:-1], axis=0)


def _row(tasks: Mapping[str, Task], batch: Mapping[str, Tensor], predictions: Mapping[str, Tensor], i: int) -> np.ndarray:
    targets = {name: batch[name][i] for name in tasks if name in batch}
    return sample_row(tasks, batch["rgb"][i], targets, {name: p[i] for name, p in predictions.items()})


class Pictures(pl.Callback):
    def __init__(
        self,
        first_step: int,
        interval: int,
        samples_in_batch: int,
        observe_train_ids: Sequence[int],
        observe_valid_ids: Sequence[int],
    ) -> None:
        self.first_step, self.interval, self.samples_in_batch = first_step, interval, samples_in_batch
        self.observe_train_ids, self.observe_valid_ids = tuple(observe_train_ids), set(observe_valid_ids)
        self.rows: list[np.ndarray] = []
        self.observed: list[tuple[dict[str, Tensor], dict[str, Tensor]]] = []  # (targets, predictions) on the CPU

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        step = trainer.global_step - 1  # the step just taken
        if not (step == self.first_step or (self.interval > 0 and step % self.interval == 0)):
            return
        if not trainer.is_global_zero:
            return
        predictions = pl_module.predictor.decode(outputs["outputs"])
        n = min(self.samples_in_batch, batch["rgb"].shape[0])
        rows = [_row(pl_module.tasks, batch, predictions, i) for i in range(n)]
        add_image(trainer.loggers, "train/batch_crops", grid(rows), step)

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: Any) -> None:
        self.rows, self.observed = [], []

    def on_validation_batch_end(
        self, trainer: pl.Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        for i, index in enumerate(batch["index"].tolist()):
            if index in self.observe_valid_ids:
                self.rows.append(_row(pl_module.tasks, batch, outputs, i))
                targets = {name: batch[name][i].cpu() for name in pl_module.tasks if name in batch}
                self.observed.append((targets, {name: p[i].cpu() for name, p in outputs.items()}))

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: Any) -> None:
        if not trainer.is_global_zero or trainer.sanity_checking:
            return
        step = trainer.global_step
        if self.rows:
            add_image(trainer.loggers, "valid/observed_samples", grid(self.rows), step)
        for name, task in pl_module.tasks.items():
            pairs = [(t[name], p[name]) for t, p in self.observed if name in t]
            if pairs:
                targets, predictions = torch.stack([t for t, _ in pairs]), torch.stack([p for _, p in pairs])
                for tag, values in task.histograms(targets, predictions).items():
                    add_histogram(trainer.loggers, tag, values, step)
        train = trainer.datamodule.train_split
        ids = [i for i in self.observe_train_ids if i < len(train)]
        if ids:
            batch = torch.utils.data.default_collate([train[i] for i in ids])
            predictions = pl_module.predictor.predict(batch["rgb"].to(pl_module.device))
            predictions = {name: p.cpu() for name, p in predictions.items()}
            rows = [_row(pl_module.tasks, batch, predictions, i) for i in range(len(ids))]
            add_image(trainer.loggers, "train/observed_samples", grid(rows), step)
