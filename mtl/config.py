"""`mtl train` configuration: the course's flag names and defaults, a YAML preset, and validation.

Precedence: built-in defaults < ``--config FILE.yaml`` < flags on the command line. Every value is
checked before any work starts, and an error names the flag. The flags of tasks, datasets and weighting
methods come from their plug-ins. Values recorded in a run (config.yaml, checkpoints) go through the
same flag types when read back (``recorded_flags``), so a hand-edited or hostile file cannot smuggle in
a value the command line would refuse; a recorded flag this version no longer has is ignored with a warning
naming it. A run records the general flags and those of the plug-ins it uses only (its dataset, tasks and
weighting: ``plain_values``, ``experiment_items``), and the modules outside mtl that define its plug-ins
(``plugin_modules``).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shlex
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from mtl.datasets import DATASETS
from mtl.hardware import PRECISIONS, auto_bool
from mtl.flags import (
    Parser,
    bool_flag,
    current_names,
    float_list,
    int_list,
    name_list,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
)
from mtl.metrics.protocol import PROTOCOLS
from mtl.models import add_model_arguments
from mtl.optimization import OPTIMIZERS, SCHEDULE_UNITS, SCHEDULES, OptimizerOptions, ScheduleOptions
from mtl.plugins import Registry, is_outside
from mtl.tasks import TASKS
from mtl.weighting import WEIGHTINGS, renamed_flags

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
        "logger",
        "wandb_project",
        "wandb_mode",
        "accelerator",
        "compile",
        "channels_last",
        "deterministic",
        "num_epochs",  # may only grow on resume; checked separately
    }
)


LOGGERS = ("tensorboard", "wandb")


def logger_list(value: str) -> tuple[str, ...]:
    names = name_list(value)
    unknown = [n for n in names if n not in LOGGERS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown logger {unknown[0]!r}; choose among {', '.join(LOGGERS)}")
    return names


def build_parser() -> Parser:
    parser = Parser(
        prog="mtl train",
        description="Train a multi-task model. Flags override values from --config.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    run = parser.add_argument_group("run")
    run.add_argument("--config", default=None, help="YAML file of flag values (flags on the command line win)")
    run.add_argument("--log_dir", default=None, help="run directory (default runs/<name>)")
    run.add_argument("--name", default=None, help="run name (default: timestamp + model name)")
    run.add_argument("--seed", type=int, default=0, help="seed of weights, sample order and augmentation")
    run.add_argument("--resume", default=None, help="run directory or checkpoint to continue from")
    bool_flag(run, "--allow_changed_code", False, "resume even if code or command line changed since the run began")
    run.add_argument(
        "--checkpoint_every_n_steps", type=non_negative_int, default=500, help="periodic last.ckpt (0 = epoch ends only)"
    )
    bool_flag(
        run, "--prepare_submission", True, "predict the test split with the best checkpoint and pack submission.zip"
    )
    bool_flag(run, "--progress_bar", True, "show a progress bar")
    run.add_argument("--log_every_n_steps", type=positive_int, default=10, help="training losses logged every N steps")
    run.add_argument(
        "--logger", type=logger_list, default="tensorboard",
        help="where scalars and pictures go besides metrics.csv: tensorboard, wandb or tensorboard,wandb",
    )
    run.add_argument("--wandb_project", default="mtl", help="Weights & Biases project (with --logger wandb)")
    run.add_argument(
        "--wandb_mode", choices=("offline", "online"), default="offline",
        help="offline: written under the run directory, uploaded later with `wandb sync`; online needs an account "
        "(without credentials the run stays offline)",
    )

    data = parser.add_argument_group("data")
    data.add_argument("--dataset", default="miniscapes", choices=DATASETS, metavar="NAME", help="dataset layout: %(choices)s")
    data.add_argument("--dataset_root", default=None, help="the dataset's folder (required)")
    data.add_argument(
        "--tasks", type=name_list, default=None,
        help="comma-separated tasks among %s (default: the dataset's own, e.g. semseg,depth)" % ", ".join(TASKS),
    )
    data.add_argument(
        "--eval_protocol", default=None, choices=PROTOCOLS,
        help="how validation metrics are averaged and clamped, as the code behind published tables does: course "
        "(MiniScapes grader), mtan (MTAN, Nash-MTL, FAMO) or libmtl (default: the dataset's own: course for "
        "miniscapes, cityscapes and the generated world, mtan for the .npy copies; docs/PROTOCOLS.md)",
    )
    data.add_argument(
        "--workers", type=non_negative_int, default=16, help="training data-loader processes (capped at CPU count)"
    )
    data.add_argument("--workers_validation", type=non_negative_int, default=4, help="validation data-loader processes")
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
    bool_flag(aug, "--aug_geom_reflect", False, "random horizontal flip")
    aug.add_argument(
        "--aug_photometric",
        type=float_list,
        default=(0.0, 0.0, 0.0, 0.0),
        help="brightness,contrast,saturation,hue jitter strengths (0 = off)",
    )

    add_model_arguments(parser)

    loss = parser.add_argument_group("loss")
    loss.add_argument(
        "--loss_weighting", default="fixed", choices=WEIGHTINGS, metavar="NAME",
        help="how task losses (or their gradients) are combined: %(choices)s (see docs/METHODS.md)",
    )
    loss.add_argument(
        "--weighting_on", default="auto", choices=["auto", "parameters", "representation"],
        help="gradient methods: per-task gradients of the shared parameters, or of the shared representation "
        "(one backward pass through the heads per task; MGDA-UB); auto: the method's paper",
    )
    for name, task in TASKS.items():
        loss.add_argument(
            f"--loss_weight_{name}", type=non_negative_float, default=task.default_weight, help=f"weight of the {name} loss"
        )
    for kind, registry in (("task", TASKS), ("dataset", DATASETS), ("weighting", WEIGHTINGS)):
        for name, plugin in registry.items():
            plugin.add_arguments(parser.add_argument_group(f"{kind} {name}"))
    for old, new in renamed_flags().items():
        parser.rename(f"--{old}", f"--{new}")

    opt = parser.add_argument_group("optimisation")
    optimizer, schedule = OptimizerOptions(), ScheduleOptions()
    opt.add_argument("--num_epochs", type=positive_int, default=schedule.num_epochs, help="epochs (may grow when resuming)")
    opt.add_argument("--optimizer", default=optimizer.name, choices=tuple(OPTIMIZERS), help="optimiser")
    opt.add_argument("--optimizer_lr", type=positive_float, default=optimizer.lr, help="initial learning rate")
    opt.add_argument(
        "--optimizer_momentum", type=non_negative_float, default=optimizer.momentum,
        help=f"momentum of {', '.join(name for name, kind in OPTIMIZERS.items() if kind.momentum)}",
    )
    opt.add_argument("--optimizer_weight_decay", type=non_negative_float, default=optimizer.weight_decay, help="weight decay")
    opt.add_argument("--lr_scheduler", default=schedule.kind, choices=SCHEDULES, help="learning-rate schedule")
    opt.add_argument("--lr_scheduler_power", type=non_negative_float, default=schedule.power, help="poly exponent")
    opt.add_argument(
        "--lr_scheduler_step_unit", default=schedule.unit, choices=SCHEDULE_UNITS,
        help="poly per epoch (the course) or per step",
    )
    opt.add_argument(
        "--lr_warmup", type=non_negative_int, default=schedule.warmup, help="linear warm-up length in scheduler units"
    )
    opt.add_argument(
        "--accumulate_grad_batches", type=positive_int, default=1,
        help="batches per optimiser step (per-task gradients are accumulated over them before a method combines them)",
    )

    vis = parser.add_argument_group("visualisation")
    vis.add_argument(
        "--num_steps_visualization_first", type=non_negative_int, default=100, help="step of the first train/batch_crops image"
    )
    vis.add_argument(
        "--num_steps_visualization_interval", type=non_negative_int, default=1000,
        help="steps between train/batch_crops images (0: none after the first)",
    )
    vis.add_argument(
        "--visualize_num_samples_in_batch", type=non_negative_int, default=8, help="crops shown per train/batch_crops image"
    )
    vis.add_argument(
        "--observe_train_ids", type=int_list, default=(0, 100), help="train samples shown after each validation"
    )
    vis.add_argument(
        "--observe_valid_ids", type=int_list, default=(0, 100), help="validation samples shown after each validation"
    )

    hw = parser.add_argument_group("hardware")
    hw.add_argument("--accelerator", default="auto", choices=["auto", "cpu", "gpu", "cuda"], help="device type")
    hw.add_argument("--devices", default="1", help="number of devices (or 'auto')")
    hw.add_argument(
        "--num_nodes", type=positive_int, default=1,
        help="machines of a job launched with torchrun or srun, each running --devices processes (docs/TRAINING.md)",
    )
    hw.add_argument(
        "--strategy", default="auto", choices=["auto", "ddp", "ddp_spawn"], help="ddp: one process per device"
    )
    hw.add_argument(
        "--precision", default="auto", choices=PRECISIONS,
        help="numeric precision; auto: bf16-mixed where the hardware has bf16 matrix units (CPUs with AMX or "
        "AVX512-BF16, GPUs of compute capability ≥ 8), 16-mixed with a gradient scaler on older GPUs, 32 elsewhere; "
        "the environment variable MTL_HARDWARE=avx2|avx512_bf16|amx|cuda_sm80|… chooses for other hardware than "
        "the detected one (recorded in hardware.yaml)",
    )
    hw.add_argument(
        "--channels_last", type=auto_bool, nargs="?", const=True, default="auto", metavar="BOOL|auto",
        help="channels-last memory format; auto: on for GPUs and for bf16 on CPUs",
    )
    bool_flag(hw, "--compile", False, "torch.compile the model")
    bool_flag(hw, "--deterministic", False, "deterministic algorithms (slower; for exact reproduction)")
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
        parser.set_defaults(**load_yaml_preset(parser, preset, recorded=preset != pre.config))
    cfg = parser.parse_args(argv)
    validate(parser, cfg)
    return cfg


class FlagsRefused(ValueError):
    """`mtl train` refuses the flags; the message is its one error line (which names the flag)."""


def parse_config_or_raise(argv: list[str]) -> argparse.Namespace:
    """``parse_config`` for commands that train runs in-process (tuning, baselines): a refusal raises
    FlagsRefused instead of exiting."""
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            cfg = parse_config(argv)
    except SystemExit:
        lines = stderr.getvalue().strip().splitlines()
        raise FlagsRefused(lines[-1].removeprefix("mtl train: error: ") if lines else shlex.join(argv)) from None
    sys.stderr.write(stderr.getvalue())  # notes (e.g. a flag's former name) still reach the user
    return cfg


def load_yaml_preset(parser: argparse.ArgumentParser, path: str, recorded: bool = False) -> dict[str, Any]:
    """Values from a YAML preset, converted by each flag's own type so that the file and the command line agree.
    ``recorded``: the file is a run's own config.yaml (resume), where a flag removed since is a warning, not an
    error (a user's preset with an unknown key is refused: it is a typo more often than not)."""
    try:
        values = yaml.safe_load(Path(path).read_text()) or {}
    except FileNotFoundError:
        parser.error(f"--config: file not found: {path}")
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        parser.error(f"--config: {path} is not valid YAML ({str(exc).splitlines()[0]})")
    if not isinstance(values, dict):
        parser.error(f"--config: {path} must hold a mapping of flag names to values")
    try:
        values = current_names(values, renamed_flags(), f"--config {path}")
        unknown = (lambda key: warn_ignored(path, key)) if recorded else None
        return convert_values(parser, values, ignore=("help", "config", "resume"), unknown=unknown)
    except ValueError as exc:
        parser.error(f"--config: {path}: {exc}")


def convert_values(
    parser: argparse.ArgumentParser,
    values: Mapping[str, Any],
    ignore: tuple[str, ...] = (),
    unknown: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Recorded flag values → parsed ones, each through its flag's type and choices; ValueError names the flag.
    A key that is no flag of ``parser`` (or is in ``ignore``) is refused, or, with ``unknown``, passed to it and
    left out."""
    actions = {a.dest: a for a in parser._actions}
    out: dict[str, Any] = {}
    for key, value in values.items():
        key = str(key).lstrip("-")
        if key in ignore or (key not in actions and unknown is None):
            raise ValueError(f"sets unknown flag {key!r}")
        if key not in actions:
            unknown(key)
            continue
        action = actions[key]
        if isinstance(value, (list, tuple)):
            value = ",".join(str(v) for v in value)
        if action.type is not None and value is not None:
            try:
                value = action.type(str(value))
            except (argparse.ArgumentTypeError, ValueError) as exc:
                raise ValueError(f"--{key}: {exc}") from exc
        if action.choices is not None and value is not None and value not in action.choices:
            raise ValueError(f"--{key} must be one of {list(action.choices)}, got {value!r}")
        out[key] = value
    return out


def warn_ignored(source: str, key: str) -> None:
    """A recorded key this version of mtl does not know (a flag or option removed since): a warning, not a refusal."""
    print(f"warning: {source}: ignoring {key!r}, which this version of mtl does not know", file=sys.stderr)


def recorded_flags(values: Mapping[str, Any], source: str = "recorded flags") -> argparse.Namespace:
    """The flags of a run from its recorded values (defaults for flags added since, a warning naming each flag
    removed since); ValueError names a flag whose value is unusable. ``source`` names the file in warnings."""
    if not isinstance(values, Mapping):
        raise ValueError("recorded flags are not a mapping")
    parser = build_parser()
    flags = parser.parse_args([])
    values = current_names(values, renamed_flags(), source)  # a run recorded before a flag was renamed
    for key, value in convert_values(parser, values, unknown=lambda key: warn_ignored(source, key)).items():
        setattr(flags, key, value)
    if flags.tasks is None:
        raise ValueError("no --tasks recorded")
    return flags


def plugin_parser(plugin: Any) -> Parser:
    """A parser of the flags one plug-in declares (its ``add_arguments``): how its recorded values are read back
    without `mtl train`'s parser."""
    parser = Parser(prog=f"mtl {plugin.name}", add_help=False)
    plugin.add_arguments(parser.add_argument_group(plugin.name))
    return parser


def plugin_flags(plugin: Any) -> list[str]:
    """The flags (namespace keys) one plug-in declares."""
    return [action.dest for action in plugin_parser(plugin)._actions]


def plugin_arguments(plugin: Any, values: object, source: str, key: str) -> argparse.Namespace:
    """A plug-in's flags from its recorded values (``key`` in ``source``): defaults for flags added since, a warning
    naming each flag removed since; ValueError naming the flag of an unusable value."""
    if not isinstance(values, Mapping):
        raise ValueError(f"{key}: expected a mapping of flag values, got {values!r}")
    parser = plugin_parser(plugin)
    arguments = parser.parse_args([])
    try:
        converted = convert_values(parser, values, unknown=lambda flag: warn_ignored(source, f"{key}.{flag}"))
    except ValueError as exc:
        raise ValueError(f"{key}: {exc}") from exc
    for flag, value in converted.items():
        setattr(arguments, flag, value)
    return arguments


def validate(parser: argparse.ArgumentParser, cfg: argparse.Namespace) -> None:
    if cfg.dataset_root is None and cfg.resume is None:
        parser.error("--dataset_root is required")
    if cfg.aug_geom_scale_min > cfg.aug_geom_scale_max:
        parser.error("--aug_geom_scale_min must not exceed --aug_geom_scale_max")
    if cfg.aug_geom_tilt_max_deg > 45:
        parser.error("--aug_geom_tilt_max_deg must be at most 45")
    if len(cfg.aug_photometric) != 4 or min(cfg.aug_photometric) < 0:
        parser.error("--aug_photometric takes four non-negative numbers: brightness,contrast,saturation,hue")
    if cfg.devices != "auto":
        try:
            positive_int(cfg.devices)
        except argparse.ArgumentTypeError:
            parser.error(f"--devices: expected a positive integer or 'auto', got {cfg.devices!r}")
    if cfg.resume is not None and not Path(cfg.resume).exists():
        parser.error(f"--resume: {cfg.resume} does not exist")
    for key in ("log_dir", "dataset_root"):
        value = getattr(cfg, key)
        if value is not None and _inside(Path(value), code_root()):
            parser.error(f"--{key}: {value} lies inside the code folder {code_root()}; put runs and data elsewhere")
    _check_dataset_and_tasks(parser, cfg)
    try:  # the method's own checks (e.g. --weighting_on, --accumulate_grad_batches), before any work starts
        WEIGHTINGS[cfg.loss_weighting].from_flags(cfg, cfg.tasks).check_accumulation(cfg.accumulate_grad_batches)
    except ValueError as exc:
        parser.error(str(exc))


def _check_dataset_and_tasks(parser: argparse.ArgumentParser, cfg: argparse.Namespace) -> None:
    """Tasks default to the dataset's own and are put in its order; the train split must hold their ground truth."""
    info = DATASETS[cfg.dataset].info
    tasks = info.default_tasks if cfg.tasks is None else tuple(cfg.tasks)
    unknown = [t for t in tasks if t not in info.tasks]
    if unknown:
        parser.error(f"--tasks: {cfg.dataset} has no task {unknown[0]!r}; choose among {','.join(info.tasks)}")
    cfg.tasks = tuple(t for t in info.tasks if t in tasks)
    cfg.eval_protocol = cfg.eval_protocol or DATASETS[cfg.dataset].eval_protocol
    if cfg.dataset_root is None:
        return
    layout = DATASETS[cfg.dataset].from_flags(cfg)
    if "train" not in layout.splits():
        parser.error(f"--dataset_root: {cfg.dataset_root} has no train/ folder (expected the {cfg.dataset} layout)")
    lacking = [t for t in cfg.tasks if t not in layout.tasks_in("train")]
    if lacking:
        parser.error(f"--tasks: the train split of {cfg.dataset_root} has no {lacking[0]} ground truth")


def code_root() -> Path:
    """The folder holding the `mtl` package: what source.zip snapshots."""
    return Path(__file__).resolve().parent


def _inside(path: Path, folder: Path) -> bool:
    try:
        Path(os.path.abspath(path)).relative_to(folder)
        return True
    except ValueError:
        return False


# The plug-ins whose flags a run's flag values choose: (registry, the flag naming the chosen one or ones).
CHOOSING_FLAGS: tuple[tuple[Registry, str], ...] = (
    (TASKS, "tasks"),
    (DATASETS, "dataset"),
    (WEIGHTINGS, "loss_weighting"),
)


def unused_flags(values: Mapping[str, Any]) -> set[str]:
    """The flags of the task, dataset and weighting plug-ins a run does not use (``--tasks``, ``--dataset`` and
    ``--loss_weighting`` choose the others): a run records none of them."""
    unused: set[str] = set()
    for registry, key in CHOOSING_FLAGS:
        chosen = values.get(key)
        if chosen is None:
            continue
        chosen = {chosen} if isinstance(chosen, str) else set(chosen)
        for name, plugin in registry.items():
            if name not in chosen:
                unused.update(plugin_flags(plugin))
                if registry is TASKS:
                    unused.add(f"loss_weight_{name}")
    return unused


def plugin_modules(values: Mapping[str, Any]) -> list[str]:
    """The modules outside mtl that define the plug-ins a run uses (dataset, tasks, weighting, model, encoder):
    what another process imports to rebuild the run, and whose source goes into source.zip."""
    from mtl.models import ENCODERS, MODELS

    chosen = [
        *((TASKS, name) for name in values.get("tasks") or ()),
        (DATASETS, values.get("dataset")),
        (WEIGHTINGS, values.get("loss_weighting")),
        (MODELS, values.get("model_name")),
        (ENCODERS, values.get("model_encoder_name")),
    ]
    modules = {registry.module_of(name) for registry, name in chosen if name is not None}
    return sorted(module for module in modules if is_outside(module))


def experiment_items(cfg: argparse.Namespace) -> dict[str, str]:
    """The hyper-parameters that define the experiment, as written to cmd.txt (one `key: value` per line): the
    flags of the plug-ins in use, no run-management flag."""
    skipped = NON_EXPERIMENT_KEYS | unused_flags(vars(cfg))
    items = {}
    for key, value in sorted(vars(cfg).items()):
        if key in skipped:
            continue
        if isinstance(value, tuple):
            value = ",".join(str(v) for v in value)
        items[key] = str(value)
    return items


def plain_values(cfg: argparse.Namespace) -> dict[str, Any]:
    """The flag values of a run, general flags and those of the plug-ins in use, with tuples as lists: YAML- and
    checkpoint-friendly (weights_only loading)."""
    unused = unused_flags(vars(cfg))
    return {k: list(v) if isinstance(v, tuple) else v for k, v in vars(cfg).items() if k not in unused}
