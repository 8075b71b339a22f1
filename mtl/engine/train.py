"""`mtl train`: set up the run directory, build the Trainer, fit.

The flags map onto typed objects here, once: the dataset layout, the tasks (with what they measured on
the training data), the model inside a Predictor, the weighting method, the optimiser and the schedule, and
the options of the loaders, the loggers and the Trainer; nothing below sees the flag namespace.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shutil
import signal
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
import yaml
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.plugins.environments import ClusterEnvironment, SLURMEnvironment, TorchElasticEnvironment
from pytorch_lightning.plugins.precision import MixedPrecision
from pytorch_lightning.utilities.exceptions import SIGTERMException

from mtl.config import plain_values
from mtl.datasets import build_dataset
from mtl.engine import rundir
from mtl.engine.callbacks import AtomicCheckpointIO, CSVMetrics, LastCheckpoint, ResumeState, TrainingInterrupted
from mtl.engine.data import AugmentationOptions, DataOptions, TrainingData
from mtl.engine.loggers import LoggingOptions, finish, make_loggers
from mtl.engine.module import MultiTaskModule, NonFiniteLoss
from mtl.engine.pictures import Pictures
from mtl.inference.checkpoint import CheckpointError, read_checkpoint
from mtl.inference.predictor import Predictor
from mtl.errors import RunSetupError
from mtl.hardware import Choice, autocast_dtype, choose, machine_label
from mtl.optimization import OptimizerOptions, ScheduleOptions
from mtl.tasks import TASKS
from mtl.weighting import build_weighting

RUN_DIR_ENV = "MTL_RUN_DIR"  # tells DDP worker processes (re-launched by Lightning) which run they join


class NothingToDo(RuntimeError):
    """`--resume` of a run that already finished every epoch it was asked for."""


def external_launcher() -> ClusterEnvironment | None:
    """The environment of a job whose processes torchrun or srun started (each runs `mtl train`, Lightning starts
    none), detected as the Trainer will detect it (torchrun first: it may run inside a SLURM job); else None."""
    if TorchElasticEnvironment.detect():
        return TorchElasticEnvironment()
    if SLURMEnvironment.detect():
        try:
            return SLURMEnvironment()
        except RuntimeError as exc:  # e.g. --ntasks without --ntasks-per-node
            raise RunSetupError(str(exc)) from exc
    return None


def is_launcher_process() -> bool:
    """True in the one process of a job that sets up the run directory and packs the submission: global rank 0.
    Under torchrun or srun, the rank their environment gives (as the Trainer will read it; ``rank_zero_only.rank``
    is fixed at import); the processes Lightning's own launcher starts have a LOCAL_RANK."""
    external = external_launcher()
    if external is not None:
        return external.global_rank() == 0
    return os.environ.get("LOCAL_RANK", "0") == "0" and os.environ.get("NODE_RANK", "0") == "0"


def check_launch(cfg: argparse.Namespace) -> None:
    """Several machines need a launcher on each (torchrun or srun); the processes it starts cannot inherit the run
    directory from rank 0, and a default name holds the start time: they must be given it. One-line errors."""
    external = external_launcher()
    if external is None:
        if cfg.num_nodes > 1:
            raise RunSetupError(
                f"--num_nodes {cfg.num_nodes}: start mtl train on every machine with torchrun or srun "
                "(docs/TRAINING.md, Many machines)"
            )
        return
    processes = external.world_size()
    if processes > 1 and cfg.log_dir is None and cfg.resume is None:
        raise RunSetupError(
            "--log_dir is required under torchrun or srun: every process must name the same run directory, "
            "on a filesystem all machines share"
        )
    if cfg.strategy == "ddp_spawn":
        raise RunSetupError("--strategy ddp_spawn starts processes of its own; under torchrun or srun use ddp")
    if cfg.devices != "auto" and int(cfg.devices) * cfg.num_nodes != processes:
        raise RunSetupError(
            f"--devices {cfg.devices} × --num_nodes {cfg.num_nodes} must equal the {processes} processes of the job "
            "(--devices: processes per machine, --num_nodes: machines)"
        )


def remove_stale_temporaries(log_dir: Path) -> None:
    """Half-written files of a killed process (a checkpoint being saved can be hundreds of MB)."""
    for tmp in [*log_dir.glob("*.tmp"), *(log_dir / "checkpoints").glob("*.tmp")]:
        tmp.unlink(missing_ok=True)


def prepare_run_dir(cfg: argparse.Namespace) -> tuple[Path, Path | None, bool]:
    """Create a new run directory, or check that a resumed one may continue.
    Returns (log_dir, checkpoint to resume from, whether this call created the directory)."""
    check_launch(cfg)
    ckpt = None
    if cfg.resume is not None:
        log_dir, ckpt = rundir.resolve_resume(cfg.resume)
        if cfg.log_dir is not None and Path(cfg.log_dir).resolve() != log_dir.resolve():
            raise RunSetupError(f"--log_dir {cfg.log_dir} differs from the resumed run {log_dir}")
    elif not is_launcher_process():
        # Lightning's launcher hands its processes the run directory; torchrun's and srun's have --log_dir.
        log_dir = Path(cfg.log_dir) if cfg.log_dir else Path(os.environ[RUN_DIR_ENV])
    else:
        name = cfg.name or f"{time.strftime('%Y%m%d-%H%M%S')}_{cfg.model_name}"
        log_dir = Path(cfg.log_dir) if cfg.log_dir else Path("runs") / name
    cfg.log_dir = str(log_dir)
    if not is_launcher_process():
        return log_dir, ckpt, False
    created = False
    if ckpt is not None:
        for change in rundir.check_resume(log_dir, cfg):
            print(f"warning: resuming despite change: {change}")
        recorded = rundir.recorded_config(log_dir)
        if cfg.num_epochs < recorded.get("num_epochs", cfg.num_epochs):
            raise RunSetupError(f"--num_epochs may only grow when resuming (run has {recorded['num_epochs']})")
    else:
        if (log_dir / "source.zip").exists() and not (log_dir / "checkpoints" / "last.ckpt").exists():
            # No cleanup runs in a process killed while it waits for the others (a job whose other machine failed).
            raise FileExistsError(
                f"{log_dir} holds a run that stopped before its first step (no checkpoint): delete it to start again, "
                "or choose another --log_dir"
            )
        if (log_dir / "source.zip").exists():
            raise FileExistsError(f"{log_dir} already holds a run; pass --resume {log_dir} or choose another --log_dir")
        created = not log_dir.exists() or not any(log_dir.iterdir())
        (log_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
        rundir.write_source_zip(log_dir, cfg)
    remove_stale_temporaries(log_dir)
    rundir.write_config(log_dir, cfg)
    os.environ[RUN_DIR_ENV] = str(log_dir)
    return log_dir, ckpt, created


def resume_state(ckpt: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the tasks' saved state, the data position) of a checkpoint to continue from; one-line errors."""
    checkpoint = read_checkpoint(ckpt)
    try:
        position = checkpoint["mtl"]
        states = checkpoint["hyper_parameters"]["task_state"]
        int(position["epoch"]), int(position["batches_done"]), int(position["csv_rows"]), int(position["global_step"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{ckpt}: not a checkpoint to resume from (no training state: {exc})") from exc
    return dict(states), dict(position)


@dataclass(frozen=True)
class TrainerOptions:
    devices: int | str  # per machine, or "auto"
    num_nodes: int
    strategy: str
    num_epochs: int
    progress_bar: bool
    deterministic: bool


def data_options(cfg: argparse.Namespace) -> DataOptions:
    augmentation = AugmentationOptions(
        crop_size=cfg.aug_input_crop_size,
        scale_min=cfg.aug_geom_scale_min,
        scale_max=cfg.aug_geom_scale_max,
        tilt_max_deg=cfg.aug_geom_tilt_max_deg,
        wiggle_max_ratio=cfg.aug_geom_wiggle_max_ratio,
        reflect=cfg.aug_geom_reflect,
        photometric=tuple(cfg.aug_photometric),
    )
    return DataOptions(
        cfg.seed, cfg.batch_size, cfg.batch_size_validation, cfg.workers, cfg.workers_validation, augmentation
    )


def logging_options(cfg: argparse.Namespace) -> LoggingOptions:
    return LoggingOptions(tuple(cfg.logger), cfg.name, cfg.wandb_project, cfg.wandb_mode, plain_values(cfg))


def trainer_options(cfg: argparse.Namespace) -> TrainerOptions:
    devices = cfg.devices if cfg.devices == "auto" else int(cfg.devices)
    return TrainerOptions(devices, cfg.num_nodes, cfg.strategy, cfg.num_epochs, cfg.progress_bar, cfg.deterministic)


def build_trainer(
    options: TrainerOptions,
    log_dir: Path,
    loggers: list[Any],
    callbacks: Sequence[pl.Callback],
    choice: Choice,
    scaler: torch.amp.GradScaler | None,
) -> pl.Trainer:
    # best.ckpt holds the weights and the run's flags only: it is what predictions and submissions use.
    best = ModelCheckpoint(
        dirpath=log_dir / "checkpoints",
        filename="best",
        monitor="checkpoint_rank",
        mode="max",
        save_top_k=1,
        save_weights_only=True,
        auto_insert_metric_name=False,
        enable_version_counter=False,
    )
    return pl.Trainer(
        default_root_dir=str(log_dir),
        accelerator=choice.device,
        devices=options.devices,
        num_nodes=options.num_nodes,
        strategy=options.strategy,
        **precision_arguments(choice, [AtomicCheckpointIO()], scaler),
        max_epochs=options.num_epochs,
        logger=loggers,
        callbacks=[*callbacks, best],
        enable_progress_bar=options.progress_bar,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        use_distributed_sampler=False,  # our samplers shard themselves (see mtl.engine.data)
        deterministic=options.deterministic,
        benchmark=choice.device == "cuda" and not options.deterministic,
        log_every_n_steps=1,  # only the progress bar's loss goes through Lightning's logging; see MultiTaskModule
    )


def gradient_scaler(choice: Choice) -> torch.amp.GradScaler | None:
    """The loss scaler of fp16 training (16-mixed), else None. Built here and handed to both the Trainer's precision
    plugin and the MultiTaskModule, whose gradient methods divide its factor out."""
    return torch.amp.GradScaler(choice.device) if choice.grad_scaler else None


def precision_arguments(choice: Choice, plugins: list[Any], scaler: torch.amp.GradScaler | None) -> dict[str, Any]:
    """The Trainer's precision: a flag for fp32, Lightning's MixedPrecision plugin for bf16/fp16 autocast.
    The plugin is built here because Lightning turns the ``16-mixed`` flag into bf16 on a CPU, while a choice of
    16-mixed (an older GPU, or MTL_HARDWARE naming one) must train in fp16 with ``scaler`` wherever it runs."""
    if autocast_dtype(choice.precision) is None:
        return {"precision": choice.precision, "plugins": plugins}
    return {"plugins": [*plugins, MixedPrecision(choice.precision, choice.device, scaler)]}


@contextlib.contextmanager
def quiet_lightning() -> Iterator[None]:
    """Lightning's informational lines (accelerator summary, tips and adverts, "fit stopped") and the warnings
    that say nothing a user can act on are noise in a run's output; other warnings still show."""
    logger = logging.getLogger("pytorch_lightning.utilities.rank_zero")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            # Our sampler resumes mid-epoch itself (mtl.engine.data); Lightning cannot see that and warns.
            warnings.filterwarnings("ignore", message=".*dataloader is not resumable.*")
            warnings.filterwarnings("ignore", message=".*does not have many workers.*")
            # best.ckpt's folder holds last.ckpt too, on purpose; a resumed run's folder is not empty.
            warnings.filterwarnings("ignore", message=".*Checkpoint directory .* exists and is not empty.*")
            # Lightning 2.6 calls a pytree API that torch 2.13 deprecates.
            warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
            # Validation metrics are reduced by the module itself (validation_scalars).
            warnings.filterwarnings("ignore", message=".*sync_dist=True.*")
            warnings.filterwarnings("ignore", message=".*no `val_dataloader`.*")  # benchmarks time training alone
            # Under 16-mixed the gradient scaler skips the optimiser step of a batch with overflowing gradients (the
            # first few while it finds its scale); the schedule still advances, as it should.
            warnings.filterwarnings("ignore", message=r".*lr_scheduler\.step\(\)` before `optimizer\.step\(\)`.*")
            yield
    finally:
        logger.setLevel(level)


def run_training(cfg: argparse.Namespace, extra_callbacks: Sequence[pl.Callback] = ()) -> Path:
    """Train (or continue) one run; returns the run directory. ``extra_callbacks``: e.g. a tuner's pruning hook."""
    choice = choose(cfg.precision, cfg.channels_last, cfg.accelerator)
    if is_launcher_process():  # the first line of a run says what it computes in, and why
        print(f"mtl train: {choice.reason} [{machine_label(choice.record())}]", flush=True)
    log_dir, ckpt, created = prepare_run_dir(cfg)
    try:
        with quiet_lightning():
            return _train(cfg, log_dir, ckpt, choice, extra_callbacks)
    except BaseException:
        # A new run that stopped before its first checkpoint leaves nothing behind to confuse a rerun.
        if created and is_launcher_process() and not (log_dir / "checkpoints" / "last.ckpt").exists():
            shutil.rmtree(log_dir, ignore_errors=True)
        raise


def _train(
    cfg: argparse.Namespace, log_dir: Path, ckpt: Path | None, choice: Choice, extra_callbacks: Sequence[pl.Callback]
) -> Path:
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True)
    layout = build_dataset(cfg)
    height, width = layout.image_size("train")
    if cfg.aug_input_crop_size > max(height, width):
        raise RunSetupError(
            f"--aug_input_crop_size {cfg.aug_input_crop_size} is larger than the {width}×{height} training images: "
            f"a crop would be mostly padding; use at most {max(height, width)}"
        )
    if ckpt is not None:
        states, position = resume_state(ckpt)
    else:
        states = {name: TASKS[name].prepare(cfg, layout) for name in cfg.tasks}
        position = None
    if is_launcher_process():
        (log_dir / "hardware.yaml").write_text(yaml.safe_dump(choice.record(), sort_keys=False))
    predictor = Predictor.from_flags(cfg, states, choice.device)
    datamodule = TrainingData(data_options(cfg), layout, predictor.tasks)
    if position is not None:
        datamodule.pending_resume = (position["epoch"], position["batches_done"])
    csv_logger = CSVMetrics(log_dir)
    if position is not None:
        csv_logger.truncate(position["csv_rows"])
    loggers = make_loggers(logging_options(cfg), log_dir, None if position is None else position["global_step"])
    last = LastCheckpoint(log_dir / "checkpoints", cfg.checkpoint_every_n_steps)
    pictures = Pictures(
        cfg.num_steps_visualization_first,
        cfg.num_steps_visualization_interval,
        cfg.visualize_num_samples_in_batch,
        cfg.observe_train_ids,
        cfg.observe_valid_ids,
    )
    callbacks = [ResumeState(csv_logger, position), last, pictures, *extra_callbacks]
    scaler = gradient_scaler(choice)
    trainer = build_trainer(trainer_options(cfg), log_dir, [*loggers, csv_logger], callbacks, choice, scaler)
    module = MultiTaskModule(
        predictor,
        build_weighting(cfg, cfg.tasks),
        layout,
        OptimizerOptions.from_flags(cfg),
        ScheduleOptions.from_flags(cfg),
        hparams=predictor.hyper_parameters(plain_values(cfg)),
        log_every_n_steps=cfg.log_every_n_steps,
        accumulate_grad_batches=cfg.accumulate_grad_batches,
        grad_scaler=scaler,
    )
    module.set_steps_per_epoch(datamodule.steps_per_epoch(trainer.world_size))
    if module.steps_per_epoch == 0:
        raise RunSetupError(
            f"--batch_size {cfg.batch_size}: the train split ({len(datamodule.train_dataset)} samples) "
            "gives no full batch per process"
        )
    if position is not None and position["global_step"] >= cfg.num_epochs * module.steps_per_epoch:
        raise NothingToDo(
            f"{log_dir} has finished its {cfg.num_epochs} epochs; to train it longer, resume with a larger "
            f"--num_epochs (e.g. mtl train --resume {log_dir} --num_epochs {2 * cfg.num_epochs})"
        )
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=str(ckpt) if ckpt else None, weights_only=True)
    except SIGTERMException as exc:
        # Lightning's own handler is active until training starts (then LastCheckpoint's takes over):
        # no step was taken since the last checkpoint, so there is nothing to save.
        raise TrainingInterrupted(signal.SIGTERM, ckpt) from exc
    except NonFiniteLoss as exc:
        saved = last.saved_step is not None or last.path.exists()
        step = f" (step {last.saved_step})" if last.saved_step is not None else ""
        where = f"the last good checkpoint is {last.path}{step}" if saved else "no checkpoint was written"
        raise NonFiniteLoss(
            f"{exc}; training stopped before this step, {where}; continue with mtl train --resume {log_dir} "
            "(add --allow_changed_code to change flags such as --optimizer_lr)"
        ) from exc
    finally:
        finish(loggers)
    csv_logger.save()
    return log_dir
