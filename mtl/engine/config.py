"""`mtl train` configuration: the course's flag names and defaults, a YAML preset, and validation.

Precedence: built-in defaults < ``--config FILE.yaml`` < flags on the command line. Every value is
checked before any work starts, and an error names the flag.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import yaml

from mtl.cli.args import (
    float_list,
    int_list,
    non_negative_float,
    positive_float,
    positive_int,
    str2bool,
    task_list,
)
from mtl.data.classes import NUM_CLASSES, TASKS
from mtl.losses import DEPTH_LOSSES, DEPTH_UNITS, WEIGHTINGS
from mtl.models import add_model_arguments

TASK_CHANNELS = {"semseg": NUM_CLASSES, "depth": 1}

# Flags that do not change the experiment: kept out of cmd.txt and free to change on resume
# (the course's "invariant keys", extended with this toolkit's own run-management flags).
NON_EXPERIMENT_KEYS = frozenset(
    {
        "log_dir",
        "dataset_root",
        "resume",
        "allow_changed_code",
        "config",
        "workers",
        "workers_validation",
        "batch_size_validation",
        "num_steps_visualization_first",
        "num_steps_visualization_interval",
        "visualize_num_samples_in_batch",
        "observe_train_ids",
        "observe_valid_ids",
        "prepare_submission",
        "checkpoint_every_n_steps",
        "progress_bar",
        "log_every_n_steps",
        "name",
        "accelerator",
        "compile",
        "channels_last",
        "deterministic",
        "num_epochs",  # may only grow on resume; checked separately
    }
)


def _bool_flag(group: argparse._ArgumentGroup, name: str, default: bool, help: str) -> None:
    group.add_argument(name, type=str2bool, nargs="?", const=True, default=default, metavar="BOOL", help=help)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mtl train",
        description="Train a multi-task (semseg + depth) model. Flags override values from --config.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    run = parser.add_argument_group("run")
    run.add_argument("--config", default=None, help="YAML file of flag values (flags on the command line win)")
    run.add_argument("--log_dir", default=None, help="run directory (default runs/<name>)")
    run.add_argument("--name", default=None, help="run name (default: timestamp + model name)")
    run.add_argument("--seed", type=int, default=0, help="seed of weights, sample order and augmentation")
    run.add_argument("--resume", default=None, help="run directory or checkpoint to continue from")
    _bool_flag(run, "--allow_changed_code", False, "resume even if code or command line changed since the run began")
    run.add_argument(
        "--checkpoint_every_n_steps", type=int, default=500, help="periodic last.ckpt (0 = epoch ends only)"
    )
    _bool_flag(
        run, "--prepare_submission", True, "predict the test split with the best checkpoint and pack submission.zip"
    )
    _bool_flag(run, "--progress_bar", True, "show a progress bar")
    run.add_argument("--log_every_n_steps", type=positive_int, default=10, help="training losses logged every N steps")

    data = parser.add_argument_group("data")
    data.add_argument("--dataset", default="miniscapes", choices=["miniscapes"], help="dataset layout")
    data.add_argument("--dataset_root", default=None, help="folder holding train/ val/ test/ (required)")
    data.add_argument("--tasks", type=task_list, default=TASKS, help="semseg, depth or semseg,depth")
    data.add_argument(
        "--depth_stats",
        default="auto",
        help="depth mean,std in metres for normalisation: 'auto' (from the train split), 'miniscapes' (27.0727,29.1264) or 'MEAN,STD'",
    )
    data.add_argument("--workers", type=int, default=16, help="training data-loader processes (capped at CPU count)")
    data.add_argument("--workers_validation", type=int, default=4, help="validation data-loader processes")
    data.add_argument("--batch_size", type=positive_int, default=4, help="training batch per process")
    data.add_argument("--batch_size_validation", type=positive_int, default=8, help="validation and test batch")

    aug = parser.add_argument_group("augmentation")
    aug.add_argument("--aug_input_crop_size", type=positive_int, default=256, help="side of the square training crop")
    aug.add_argument(
        "--aug_geom_scale_min", type=positive_float, default=1.0, help="smallest source region, × crop size"
    )
    aug.add_argument(
        "--aug_geom_scale_max", type=positive_float, default=1.0, help="largest source region, × crop size"
    )
    aug.add_argument(
        "--aug_geom_tilt_max_deg", type=non_negative_float, default=0.0, help="random rotation up to ± this (≤ 45)"
    )
    aug.add_argument(
        "--aug_geom_wiggle_max_ratio",
        type=non_negative_float,
        default=0.0,
        help="corner jitter, × half the size (< 0.5)",
    )
    _bool_flag(aug, "--aug_geom_reflect", False, "random horizontal flip")
    aug.add_argument(
        "--aug_photometric",
        type=float_list,
        default=(0.0, 0.0, 0.0, 0.0),
        help="brightness,contrast,saturation,hue jitter strengths (0 = off)",
    )

    add_model_arguments(parser)

    loss = parser.add_argument_group("loss")
    loss.add_argument("--loss_weight_semseg", type=non_negative_float, default=0.5, help="weight of the semseg loss")
    loss.add_argument("--loss_weight_depth", type=non_negative_float, default=0.5, help="weight of the depth loss")
    loss.add_argument(
        "--loss_weighting", default="fixed", choices=sorted(WEIGHTINGS), help="how task losses are combined"
    )
    loss.add_argument("--loss_depth", default="l2", choices=sorted(DEPTH_LOSSES), help="depth loss (l2: the course)")
    loss.add_argument(
        "--depth_unit",
        default="normalized",
        choices=sorted(DEPTH_UNITS),
        help="unit the network predicts depth in; metrics always use metres",
    )

    opt = parser.add_argument_group("optimisation")
    opt.add_argument("--num_epochs", type=positive_int, default=16, help="epochs (may grow when resuming)")
    opt.add_argument("--optimizer", default="sgd", choices=["sgd", "adam", "adamw"], help="optimiser")
    opt.add_argument("--optimizer_lr", type=positive_float, default=0.01, help="initial learning rate")
    opt.add_argument("--optimizer_momentum", type=non_negative_float, default=0.9, help="SGD momentum")
    opt.add_argument("--optimizer_weight_decay", type=non_negative_float, default=1e-4, help="weight decay")
    opt.add_argument("--lr_scheduler", default="poly", choices=["poly", "constant"], help="learning-rate schedule")
    opt.add_argument("--lr_scheduler_power", type=non_negative_float, default=0.9, help="poly exponent")
    opt.add_argument(
        "--lr_scheduler_step_unit",
        default="epoch",
        choices=["epoch", "step"],
        help="poly per epoch (the course) or per step",
    )
    opt.add_argument("--lr_warmup", type=int, default=0, help="linear warm-up length in scheduler units")

    vis = parser.add_argument_group("visualisation")
    vis.add_argument(
        "--num_steps_visualization_first", type=int, default=100, help="step of the first train/batch_crops image"
    )
    vis.add_argument(
        "--num_steps_visualization_interval", type=int, default=1000, help="steps between train/batch_crops images"
    )
    vis.add_argument(
        "--visualize_num_samples_in_batch", type=int, default=8, help="crops shown per train/batch_crops image"
    )
    vis.add_argument(
        "--observe_train_ids", type=int_list, default=(0, 100), help="train samples shown after each validation"
    )
    vis.add_argument(
        "--observe_valid_ids", type=int_list, default=(0, 100), help="validation samples shown after each validation"
    )

    hw = parser.add_argument_group("hardware")
    hw.add_argument("--accelerator", default="auto", choices=["auto", "cpu", "gpu", "cuda", "mps"], help="device type")
    hw.add_argument("--devices", default="1", help="number of devices (or 'auto')")
    hw.add_argument(
        "--strategy", default="auto", choices=["auto", "ddp", "ddp_spawn"], help="ddp: one process per device"
    )
    hw.add_argument("--precision", default="32", choices=["32", "bf16-mixed", "16-mixed"], help="numeric precision")
    _bool_flag(hw, "--channels_last", False, "channels-last memory format (faster convolutions on GPUs)")
    _bool_flag(hw, "--compile", False, "torch.compile the model")
    _bool_flag(hw, "--deterministic", False, "deterministic algorithms (slower; for exact reproduction)")
    return parser


def parse_config(argv: list[str]) -> argparse.Namespace:
    """Parse flags over an optional YAML preset, then validate. Exits with a message naming the flag."""
    parser = build_parser()
    pre, _ = parser.parse_known_args(argv)
    preset = pre.config
    if preset is None and pre.resume is not None:
        # `mtl train --resume RUN_DIR` alone continues with the run's own recorded flags.
        run_dir = Path(pre.resume) if Path(pre.resume).is_dir() else Path(pre.resume).parent.parent
        preset = str(run_dir / "config.yaml") if (run_dir / "config.yaml").is_file() else None
    if preset:
        parser.set_defaults(**load_yaml_preset(parser, preset))
    cfg = parser.parse_args(argv)
    validate(parser, cfg)
    return cfg


def load_yaml_preset(parser: argparse.ArgumentParser, path: str) -> dict[str, Any]:
    """Values from a YAML preset, converted by each flag's own type so that the file and the command line agree."""
    try:
        values = yaml.safe_load(Path(path).read_text()) or {}
    except FileNotFoundError:
        parser.error(f"--config: file not found: {path}")
    except yaml.YAMLError as exc:
        parser.error(f"--config: {path} is not valid YAML ({exc})")
    if not isinstance(values, dict):
        parser.error(f"--config: {path} must hold a mapping of flag names to values")
    actions = {a.dest: a for a in parser._actions}
    out: dict[str, Any] = {}
    for key, value in values.items():
        key = key.lstrip("-")
        if key not in actions or key in ("help", "config", "resume"):
            parser.error(f"--config: {path} sets unknown flag {key!r}")
        action = actions[key]
        if isinstance(value, (list, tuple)):
            value = ",".join(str(v) for v in value)
        if action.type is not None and value is not None:
            try:
                value = action.type(str(value))
            except (argparse.ArgumentTypeError, ValueError) as exc:
                parser.error(f"--config: {path}: --{key}: {exc}")
        if action.choices is not None and value is not None and value not in action.choices:
            parser.error(f"--config: {path}: --{key} must be one of {list(action.choices)}, got {value!r}")
        out[key] = value
    return out


def validate(parser: argparse.ArgumentParser, cfg: argparse.Namespace) -> None:
    if cfg.dataset_root is None and cfg.resume is None:
        parser.error("--dataset_root is required")
    if cfg.dataset_root is not None and not (Path(cfg.dataset_root) / "train").is_dir():
        parser.error(f"--dataset_root: {cfg.dataset_root} has no train/ folder (expected the MiniScapes layout)")
    if cfg.aug_geom_scale_min > cfg.aug_geom_scale_max:
        parser.error("--aug_geom_scale_min must not exceed --aug_geom_scale_max")
    if cfg.aug_geom_tilt_max_deg > 45:
        parser.error("--aug_geom_tilt_max_deg must be at most 45")
    if len(cfg.aug_photometric) != 4 or min(cfg.aug_photometric) < 0:
        parser.error("--aug_photometric takes four non-negative numbers: brightness,contrast,saturation,hue")
    if cfg.workers < 0 or cfg.workers_validation < 0:
        parser.error("--workers and --workers_validation must be ≥ 0")
    if cfg.checkpoint_every_n_steps < 0:
        parser.error("--checkpoint_every_n_steps must be ≥ 0")
    if cfg.lr_warmup < 0:
        parser.error("--lr_warmup must be ≥ 0")
    if cfg.depth_stats not in ("auto", "miniscapes"):
        try:
            mean, std = float_list(cfg.depth_stats)
            assert std > 0
        except (ValueError, AssertionError, argparse.ArgumentTypeError):
            parser.error(
                f"--depth_stats: expected 'auto', 'miniscapes' or 'MEAN,STD' with STD > 0, got {cfg.depth_stats!r}"
            )
    if cfg.devices != "auto":
        try:
            positive_int(cfg.devices)
        except (ValueError, argparse.ArgumentTypeError):
            parser.error(f"--devices: expected a positive integer or 'auto', got {cfg.devices!r}")
    if cfg.resume is not None and not Path(cfg.resume).exists():
        parser.error(f"--resume: {cfg.resume} does not exist")
    for key in ("log_dir", "dataset_root"):
        value = getattr(cfg, key)
        if value is not None and _inside(Path(value), code_root()):
            parser.error(f"--{key}: {value} lies inside the code folder {code_root()}; put runs and data elsewhere")


def code_root() -> Path:
    """The folder holding the `mtl` package: what source.zip snapshots."""
    return Path(__file__).resolve().parents[1]


def _inside(path: Path, folder: Path) -> bool:
    try:
        Path(os.path.abspath(path)).relative_to(folder)
        return True
    except ValueError:
        return False


def experiment_items(cfg: argparse.Namespace) -> dict[str, str]:
    """The hyper-parameters that define the experiment, as written to cmd.txt (one `key: value` per line)."""
    items = {}
    for key, value in sorted(vars(cfg).items()):
        if key in NON_EXPERIMENT_KEYS:
            continue
        if isinstance(value, tuple):
            value = ",".join(str(v) for v in value)
        items[key] = str(value)
    return items


def plain_values(cfg: argparse.Namespace) -> dict[str, Any]:
    """The flag values with tuples as lists: YAML- and checkpoint-friendly (weights_only loading)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in vars(cfg).items()}


def outputs_desc(cfg: argparse.Namespace) -> dict[str, int]:
    return {task: TASK_CHANNELS[task] for task in cfg.tasks}
