"""Feeds each epoch's validation grader to an Optuna trial and stops the run when the pruner says so.

Hand-written rather than optuna-integration's Lightning callback: that package is not a dependency,
and this one knows the engine's monitor name and skips the sanity check the engine may run.
"""

from __future__ import annotations

from typing import Any

import optuna
import pytorch_lightning as pl

MONITOR = "metrics_summary/grader"


class GraderPruning(pl.Callback):
    """Reports ``metrics_summary/grader`` as the trial's intermediate value at each epoch.

    Raising ``optuna.TrialPruned`` inside the hook leaves ``trainer.fit`` through Lightning's exception
    path (callbacks' ``on_exception``, loggers finalised, so metrics.csv holds the epochs run) and
    reaches the objective, which lets it propagate so that Optuna records the trial as PRUNED.
    """

    def __init__(self, trial: optuna.Trial, monitor: str = MONITOR) -> None:
        self.trial = trial
        self.monitor = monitor
        self.reported: dict[int, float] = {}

    def on_validation_end(self, trainer: pl.Trainer, pl_module: Any) -> None:
        if trainer.sanity_checking:
            return
        value = trainer.callback_metrics.get(self.monitor)
        if value is None:
            return
        epoch = trainer.current_epoch
        self.reported[epoch] = float(value)
        self.trial.report(float(value), epoch)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned at epoch {epoch} with {self.monitor} {float(value):.4g}")
