"""Fault tolerance and logging pieces around the Lightning Trainer.

- ``AtomicCheckpointIO``: a checkpoint is written to a temporary file and renamed, so a crash or
  ``kill -9`` during a save never leaves a truncated ``last.ckpt`` behind.
- ``LastCheckpoint``: ``last.ckpt`` before the first step of a new run (so a run that stops early, e.g. on
  a NaN loss or a corrupt image, can still be resumed), every N optimiser steps (except an epoch's last,
  whose checkpoint is the epoch-end one, after validation), at every epoch end, and on SIGTERM / SIGINT (a
  spot instance being reclaimed), after which training stops with ``TrainingInterrupted``.
- ``CSVMetrics``: ``metrics.csv``. Lightning's CSVLogger appends on resume, which would repeat the
  rows logged between the last checkpoint and a crash; this logger records how many rows a checkpoint
  had and truncates to that on resume, so a resumed run's file equals an uninterrupted one's.
- ``ResumeState``: what Lightning does not keep for an exact resume: the random states, the position in
  the epoch (counted by this callback across restarts, not by Lightning's per-restart counter), and the
  number of metrics.csv rows.
"""

from __future__ import annotations

import csv
import os
import random
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from pytorch_lightning.loggers.logger import Logger
from pytorch_lightning.utilities import rank_zero_only


class TrainingInterrupted(Exception):
    """Raised after the checkpoint on SIGTERM/SIGINT has been written."""

    def __init__(self, signum: int, checkpoint: Path | None) -> None:
        saved = f"saved {checkpoint}" if checkpoint else "stopped before the first step, nothing to save"
        super().__init__(f"received {signal.Signals(signum).name}; {saved}")
        self.signum = signum
        self.checkpoint = checkpoint


class AtomicCheckpointIO(TorchCheckpointIO):
    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        torch.save(checkpoint, tmp)
        os.replace(tmp, path)


class LastCheckpoint(pl.Callback):
    def __init__(self, dirpath: Path, every_n_steps: int) -> None:
        self.path = Path(dirpath) / "last.ckpt"
        self.every_n_steps = every_n_steps
        self.saved_step: int | None = None  # global step of the newest last.ckpt written by this process
        self._signal: int | None = None
        self._previous: dict[int, Any] = {}

    def save(self, trainer: pl.Trainer) -> None:
        trainer.save_checkpoint(self.path, weights_only=False)
        self.saved_step = trainer.global_step

    def _handler(self, signum: int, frame: Any) -> None:
        self._signal = signum

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Installed after Lightning's own handlers, so a signal only sets a flag checked between steps.
        for signum in (signal.SIGTERM, signal.SIGINT):
            self._previous[signum] = signal.signal(signum, self._handler)
        if trainer.global_step == 0 and trainer.current_epoch == 0:
            self.save(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self.on_train_end(trainer, pl_module)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        if trainer.fit_loop.epoch_loop.batch_progress.is_last_batch:
            # Lightning resumes a checkpoint taken after an epoch's last batch as if that epoch's validation had
            # run, so such a checkpoint would lose it (and, with our sampler, the next epoch): the epoch-end
            # checkpoint, after validation, takes its place, and a signal received now is answered there.
            return
        if self._received_signal(trainer):
            self.save(trainer)
            raise TrainingInterrupted(self._signal or signal.SIGTERM, self.path)
        if self.every_n_steps and trainer.global_step % self.every_n_steps == 0:
            self.save(trainer)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.save(trainer)
        if self._received_signal(trainer):
            raise TrainingInterrupted(self._signal or signal.SIGTERM, self.path)

    def _received_signal(self, trainer: pl.Trainer) -> bool:
        """Any process's signal stops all of them (DDP processes must stop at the same step)."""
        if trainer.world_size == 1:
            return self._signal is not None
        flag = torch.tensor([1 if self._signal is not None else 0], device=trainer.strategy.root_device)
        if trainer.strategy.reduce(flag, reduce_op="max").item() and self._signal is None:
            self._signal = signal.SIGTERM
        return self._signal is not None


class CSVMetrics(Logger):
    """Wide CSV (one column per scalar, one row per logging call) at ``<log_dir>/metrics.csv``."""

    def __init__(self, log_dir: Path, flush_every_s: float = 10.0) -> None:
        super().__init__()
        self.path = Path(log_dir) / "metrics.csv"
        self.rows: list[dict[str, Any]] = []
        self.flush_every_s = flush_every_s
        self._last_flush = 0.0
        if self.path.exists():
            with self.path.open(newline="") as f:
                self.rows = list(csv.DictReader(f))

    @property
    def name(self) -> str:
        return "csv"

    @property
    def version(self) -> str:
        return ""

    @property
    def save_dir(self) -> str:
        return str(self.path.parent)

    def truncate(self, num_rows: int) -> None:
        """Drop rows logged after the checkpoint a run resumes from."""
        self.rows = self.rows[:num_rows]
        self.save()

    @rank_zero_only
    def log_hyperparams(self, params: Any) -> None:
        pass

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        row = {"step": step, **{k: float(v) for k, v in metrics.items()}}
        self.rows.append(row)
        if time.monotonic() - self._last_flush > self.flush_every_s:
            self.save()

    @rank_zero_only
    def save(self) -> None:
        columns: list[str] = []
        for row in self.rows:
            columns += [k for k in row if k not in columns]
        columns = ["step", "epoch"] + sorted(c for c in columns if c not in ("step", "epoch"))
        tmp = self.path.with_name(self.path.name + ".tmp")
        with tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns, restval="")
            writer.writeheader()
            writer.writerows(self.rows)
        os.replace(tmp, self.path)
        self._last_flush = time.monotonic()

    @rank_zero_only
    def finalize(self, status: str) -> None:
        self.save()


class ResumeState(pl.Callback):
    """Writes and restores ``checkpoint["mtl"]``: random states, epoch, global step, the number of batches done
    in the epoch and of metrics.csv rows. ``resume`` is that dict from the checkpoint a run continues from."""

    def __init__(self, csv_logger: CSVMetrics, resume: dict[str, Any] | None = None) -> None:
        self.csv_logger = csv_logger
        # Lightning calls no epoch-start hook when it resumes mid-epoch: the epoch is tracked here.
        self.epoch, self.batches_done = (resume["epoch"], resume["batches_done"]) if resume else (0, 0)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        if trainer.current_epoch != self.epoch:
            self.epoch, self.batches_done = trainer.current_epoch, 0
        self.batches_done += 1

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]) -> None:
        checkpoint["mtl"] = {
            "rng_torch": torch.get_rng_state(),
            "rng_numpy": _numpy_state_to_plain(np.random.get_state()),
            "rng_python": random.getstate(),
            "epoch": trainer.current_epoch,
            "global_step": trainer.global_step,
            "batches_done": self.batches_done if trainer.current_epoch == self.epoch else 0,
            "csv_rows": len(self.csv_logger.rows),
        }
        self.csv_logger.save()

    def on_load_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]) -> None:
        state = checkpoint["mtl"]
        torch.set_rng_state(state["rng_torch"])
        np.random.set_state(_numpy_state_from_plain(state["rng_numpy"]))
        random.setstate(_as_tuple(state["rng_python"]))


def _numpy_state_to_plain(state: tuple) -> tuple:
    name, keys, pos, has_gauss, cached = state
    return (name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached)


def _numpy_state_from_plain(state: tuple) -> tuple:
    name, keys, pos, has_gauss, cached = state
    return (name, keys.numpy().astype(np.uint32), pos, has_gauss, cached)


def _as_tuple(value: Any) -> Any:
    return tuple(_as_tuple(v) for v in value) if isinstance(value, (list, tuple)) else value
