"""`mtl train`: set up the run directory, build the Trainer, fit, then predict the test split."""

from __future__ import annotations

import argparse
import os
import signal
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.loggers import TensorBoardLogger
from pytorch_lightning.utilities.exceptions import SIGTERMException

from mtl.engine import rundir
from mtl.engine.callbacks import AtomicCheckpointIO, CSVMetrics, LastCheckpoint, TrainingInterrupted
from mtl.engine.checkpoint import read_checkpoint
from mtl.engine.config import plain_values
from mtl.engine.data import MiniScapesDataModule, depth_statistics
from mtl.engine.module import MultiTaskModule

RUN_DIR_ENV = "MTL_RUN_DIR"  # tells DDP worker processes (re-launched by Lightning) which run they join


class RunSetupError(ValueError):
    """A run that cannot start as asked (e.g. --num_epochs shrinking on resume); the message says why."""


def is_launcher_process() -> bool:
    """False in the extra processes that Lightning's DDP launcher starts (they must not set up the run)."""
    return os.environ.get("LOCAL_RANK", "0") == "0" and os.environ.get("NODE_RANK", "0") == "0"


def prepare_run_dir(cfg: argparse.Namespace) -> tuple[Path, Path | None]:
    """Create a new run directory, or check that a resumed one may continue. Returns (log_dir, checkpoint)."""
    ckpt = None
    if cfg.resume is not None:
        log_dir, ckpt = rundir.resolve_resume(cfg.resume)
        if cfg.log_dir is not None and Path(cfg.log_dir).resolve() != log_dir.resolve():
            raise RunSetupError(f"--log_dir {cfg.log_dir} differs from the resumed run {log_dir}")
    elif not is_launcher_process():
        log_dir = Path(os.environ[RUN_DIR_ENV])
    else:
        name = cfg.name or f"{time.strftime('%Y%m%d-%H%M%S')}_{cfg.model_name}"
        log_dir = Path(cfg.log_dir) if cfg.log_dir else Path("runs") / name
    cfg.log_dir = str(log_dir)
    if not is_launcher_process():
        return log_dir, ckpt
    if ckpt is not None:
        for change in rundir.check_resume(log_dir, cfg):
            print(f"warning: resuming despite change: {change}")
        recorded = rundir.recorded_config(log_dir)
        if cfg.num_epochs < recorded.get("num_epochs", cfg.num_epochs):
            raise RunSetupError(f"--num_epochs may only grow when resuming (run has {recorded['num_epochs']})")
    else:
        if (log_dir / "source.zip").exists():
            raise FileExistsError(f"{log_dir} already holds a run; pass --resume {log_dir} or choose another --log_dir")
        (log_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
        rundir.write_source_zip(log_dir, cfg)
    rundir.write_config(log_dir, cfg)
    os.environ[RUN_DIR_ENV] = str(log_dir)
    return log_dir, ckpt


def build_trainer(
    cfg: argparse.Namespace,
    log_dir: Path,
    csv_logger: CSVMetrics,
    purge_step: int | None,
    extra_callbacks: Sequence[pl.Callback] = (),
) -> pl.Trainer:
    tensorboard = TensorBoardLogger(
        save_dir=str(log_dir), name="", version="", default_hp_metric=False, purge_step=purge_step
    )
    best = ModelCheckpoint(
        dirpath=log_dir / "checkpoints",
        filename="best",
        monitor="checkpoint_rank",
        mode="max",
        save_top_k=1,
        auto_insert_metric_name=False,
        enable_version_counter=False,
    )
    return pl.Trainer(
        default_root_dir=str(log_dir),
        accelerator=cfg.accelerator,
        devices=cfg.devices if cfg.devices == "auto" else int(cfg.devices),
        strategy=cfg.strategy,
        precision=cfg.precision,
        max_epochs=cfg.num_epochs,
        logger=[tensorboard, csv_logger],
        callbacks=[LastCheckpoint(log_dir / "checkpoints", cfg.checkpoint_every_n_steps), best, *extra_callbacks],
        plugins=[AtomicCheckpointIO()],
        enable_progress_bar=cfg.progress_bar,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        use_distributed_sampler=False,  # our samplers shard themselves (see mtl.engine.data)
        deterministic=cfg.deterministic,
        benchmark=torch.cuda.is_available() and not cfg.deterministic,
        log_every_n_steps=cfg.log_every_n_steps,
    )


def run_training(cfg: argparse.Namespace, extra_callbacks: Sequence[pl.Callback] = ()) -> Path:
    """Train (or continue) one run; returns the run directory. ``extra_callbacks``: e.g. a tuner's pruning hook."""
    log_dir, ckpt = prepare_run_dir(cfg)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True)
    datamodule = MiniScapesDataModule(cfg)
    resume_state = None
    if ckpt is not None:
        checkpoint = read_checkpoint(ckpt)
        hparams = checkpoint["hyper_parameters"]
        depth_mean, depth_std = hparams["depth_mean"], hparams["depth_std"]
        resume_state = checkpoint["mtl"]
        datamodule.pending_resume = (resume_state["epoch"], resume_state["batches_done"])
        del checkpoint
    else:
        depth_mean, depth_std = depth_statistics(cfg)
    csv_logger = CSVMetrics(log_dir)
    if resume_state is not None:
        csv_logger.truncate(resume_state["csv_rows"])
    purge_step = None if resume_state is None else resume_state["global_step"]
    trainer = build_trainer(cfg, log_dir, csv_logger, purge_step, extra_callbacks)
    module = MultiTaskModule(plain_values(cfg), depth_mean, depth_std)
    module.csv_logger = csv_logger
    module.set_steps_per_epoch(datamodule.steps_per_epoch(trainer.world_size))
    if module.steps_per_epoch == 0:
        raise RunSetupError(
            f"--batch_size {cfg.batch_size}: the train split ({len(datamodule.train_dataset)} samples) "
            "gives no full batch per process"
        )
    with warnings.catch_warnings():
        # Our sampler resumes mid-epoch itself (mtl.engine.data); Lightning cannot see that and warns.
        warnings.filterwarnings("ignore", message=".*dataloader is not resumable.*")
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        try:
            trainer.fit(module, datamodule=datamodule, ckpt_path=str(ckpt) if ckpt else None, weights_only=True)
        except SIGTERMException as exc:
            # Lightning's own handler is active until training starts (then LastCheckpoint's takes over):
            # no step was taken since the last checkpoint, so there is nothing to save.
            raise TrainingInterrupted(signal.SIGTERM, ckpt) from exc
    csv_logger.save()
    return log_dir
