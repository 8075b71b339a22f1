"""Where a run's scalars and pictures go: metrics.csv always; TensorBoard and Weights & Biases by --logger.

Weights & Biases (an optional extra: pip install 'mtl[wandb]') runs offline by default: it writes under
<run>/wandb/ and the user uploads later with `wandb sync`. Online mode needs credentials; without them the
run stays offline with a one-line note rather than waiting for a login, so no run blocks or fails for want of
a network or an account. A resumed run continues the same W&B run (its id is kept in <run>/wandb_run_id).
"""

from __future__ import annotations

import netrc
import os
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pytorch_lightning.loggers import Logger, TensorBoardLogger, WandbLogger
from pytorch_lightning.utilities import rank_zero_only

from mtl.errors import RunSetupError


@dataclass(frozen=True)
class LoggingOptions:
    loggers: tuple[str, ...]  # besides metrics.csv: tensorboard and/or wandb
    run_name: str | None  # the W&B run's name (None: the run directory's)
    wandb_project: str
    wandb_mode: str  # offline or online
    run_config: Mapping[str, Any]  # the run's flags as plain values, recorded by W&B


def make_loggers(options: LoggingOptions, log_dir: Path, purge_step: int | None) -> list[Logger]:
    loggers: list[Logger] = []
    if "tensorboard" in options.loggers:
        loggers.append(
            TensorBoardLogger(save_dir=str(log_dir), name="", version="", default_hp_metric=False, purge_step=purge_step)
        )
    if "wandb" in options.loggers and rank_zero_only.rank == 0:  # one W&B run per job, not one per process
        loggers.append(_wandb(options, log_dir))
    return loggers


def _has_wandb_credentials() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (OSError, netrc.NetrcParseError):
        return False


def _wandb(options: LoggingOptions, log_dir: Path) -> Logger:
    try:
        import wandb
    except ImportError as exc:
        raise RunSetupError("--logger wandb needs the wandb package: pip install 'mtl[wandb]'") from exc
    mode = options.wandb_mode
    if mode == "online" and not _has_wandb_credentials():
        print("note: no Weights & Biases credentials (wandb login or WANDB_API_KEY): logging offline, upload later "
              f"with `wandb sync {log_dir / 'wandb'}`")
        mode = "offline"
    id_file = log_dir / "wandb_run_id"
    run_id = id_file.read_text().strip() if id_file.is_file() else uuid.uuid4().hex[:12]
    id_file.write_text(run_id + "\n")
    run = wandb.init(
        project=options.wandb_project,
        name=options.run_name or log_dir.name,
        id=run_id,
        resume="allow",
        dir=str(log_dir),
        mode=mode,
        config=dict(options.run_config),
        settings=wandb.Settings(silent=True, init_timeout=60, x_disable_stats=True),
    )
    return WandbLogger(experiment=run)


def finish(loggers: Sequence[Logger]) -> None:
    """Close a W&B run (its offline file is complete only then); several runs in one process (tuning) need it."""
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            logger.experiment.finish()


def add_image(loggers: Sequence[Logger], tag: str, picture: np.ndarray, step: int) -> None:
    """An H×W×3 uint8 picture, to every logger that shows pictures."""
    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.experiment.add_image(tag, picture, step, dataformats="HWC")
        elif isinstance(logger, WandbLogger):
            logger.log_image(tag, images=[picture], step=step)


def add_histogram(loggers: Sequence[Logger], tag: str, values: Any, step: int) -> None:
    """The finite values to every logger that shows histograms. None left (observed samples without valid depth,
    or a diverged model's NaN predictions, which the validation metrics report) is no histogram: TensorBoard
    would raise and stop the run."""
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return
    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.experiment.add_histogram(tag, values, step)
        elif isinstance(logger, WandbLogger):
            import wandb

            logger.experiment.log({tag: wandb.Histogram(np.asarray(values)), "trainer/global_step": step})
