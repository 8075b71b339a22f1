"""`mtl baselines -- <train flags>`: one single-task run per task of the flags, the baselines of Δm.

Each run is `mtl train <train flags> --tasks <task> --log_dir <runs-dir>/<name>/single_<task>`, trained in this
process (the engine's ``parse_config`` and ``run_training``, as `mtl train` and `mtl tune` do). The tasks are
those of ``--tasks`` in the flags, else the dataset's default tasks. A baseline that exists already is
continued (``--resume``) when unfinished and skipped when finished, so running the same command again after
an interruption completes the set. `mtl results`/`mtl report` on ``<runs-dir>`` then find them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mtl.config import FlagsRefused, parse_config_or_raise

# Flags the command sets for each run.
_OWN_FLAGS = ("log_dir", "name", "resume", "tasks")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "baselines",
        help="train one single-task run per task (the baselines of Δm in `mtl results`)",
        description="For each task of the train flags (--tasks, else the dataset's default tasks) train `mtl train "
        "<train flags> --tasks <task>` into <runs-dir>/<name>/single_<task>, one after the other, in this process. "
        "Running the same command again continues unfinished baselines and skips finished ones. Single-task runs "
        "make no submission.zip. `mtl results <runs-dir>` then reports the Δm of the multi-task runs there.",
        epilog="example: mtl baselines --runs-dir runs --name resnet34 -- --dataset_root data --num_epochs 16",
    )
    parser.add_argument("--runs-dir", default="runs", metavar="DIR", help="folder of the runs (default runs)")
    parser.add_argument(
        "--name", default="baselines", metavar="NAME",
        help="subfolder of the baselines: <runs-dir>/<name>/single_<task> (default baselines)",
    )
    parser.add_argument("train_flags", nargs="*", metavar="-- TRAIN_FLAGS", help="`mtl train` flags shared by the runs")
    parser.set_defaults(func=_baselines)




def baseline_dir(runs_dir: str | Path, name: str, task: str) -> Path:
    return Path(runs_dir) / name / f"single_{task}"


def plan(train_flags: list[str], runs_dir: str | Path, name: str) -> list[tuple[str, Path, list[str]]]:
    """(task, run directory, `mtl train` argv) per baseline; FlagsRefused for flags that cannot make them."""
    base = parse_config_or_raise(train_flags)
    given = [flag for flag in _OWN_FLAGS if flag != "tasks" and getattr(base, flag) is not None]
    if given:
        raise FlagsRefused(f"--{given[0]} is set by `mtl baselines` (runs go to <runs-dir>/<name>/single_<task>); remove it")
    if base.devices != "1" or base.num_nodes != 1 or base.strategy != "auto":
        raise FlagsRefused("each baseline trains in this process on one device: drop --devices/--num_nodes/--strategy")
    runs = []
    for task in base.tasks:
        log_dir = baseline_dir(runs_dir, name, task)
        argv = [*train_flags, "--tasks", task, "--log_dir", str(log_dir), "--name", f"single_{task}", "--prepare_submission", "no"]
        parse_config_or_raise(argv)  # the single-task flags must be accepted too (e.g. the train split holds that task)
        runs.append((task, log_dir, argv))
    return runs


def finished(log_dir: Path, num_epochs: int) -> bool:
    """Whether a run directory validated its last epoch (read from metrics.csv: a finished baseline is skipped
    without resuming it, so that code changed since it was trained does not stop the command)."""
    from mtl.reporting.runs import RunFormatError, read_metrics, split_metrics

    path = log_dir / "metrics.csv"
    if not path.is_file():
        return False
    try:
        validation, _ = split_metrics(read_metrics(path), path)
    except RunFormatError:
        return False
    return any(row["epoch"] >= num_epochs - 1 for row in validation)


def _baselines(args: argparse.Namespace) -> int:
    from mtl.data.formats import DataFormatError
    from mtl.engine.callbacks import TrainingInterrupted
    from mtl.engine.module import NonFiniteLoss
    from mtl.engine.rundir import ResumeRefused
    from mtl.engine.train import NothingToDo, RunSetupError, run_training
    from mtl.errors import one_line
    from mtl.inference.checkpoint import CheckpointError

    argv = args.command_argv
    train_flags = argv[argv.index("--") + 1 :] if "--" in argv else list(args.train_flags)
    try:
        runs = plan(train_flags, args.runs_dir, args.name)
    except FlagsRefused as exc:
        print(f"mtl baselines: `mtl train` refuses the flags: {exc}", file=sys.stderr)
        return 2
    failed = []
    for task, log_dir, run_argv in runs:
        resume = (log_dir / "checkpoints" / "last.ckpt").is_file()
        if resume and finished(log_dir, parse_config_or_raise(run_argv).num_epochs):
            print(f"baseline {task}: {log_dir} has finished its epochs", flush=True)
            continue
        print(f"baseline {task}: {'continuing' if resume else 'training'} {log_dir}", flush=True)
        try:
            cfg = parse_config_or_raise([*run_argv, "--resume", str(log_dir)] if resume else run_argv)
            run_training(cfg)
        except NothingToDo:
            print(f"baseline {task}: {log_dir} has finished its epochs", flush=True)
        except TrainingInterrupted as exc:
            print(f"\nmtl baselines: {exc}; run the same command to continue", file=sys.stderr)
            return 128 + exc.signum
        except NonFiniteLoss as exc:
            print(f"mtl baselines: {task}: {exc}", file=sys.stderr)
            failed.append(task)
        except DataFormatError as exc:
            print(f"mtl baselines: {task}: {one_line(exc)}; `mtl data check` lists every bad file", file=sys.stderr)
            return 2
        except (FlagsRefused, RunSetupError, ResumeRefused, FileExistsError, FileNotFoundError, CheckpointError) as exc:
            print(f"mtl baselines: {task}: {exc}", file=sys.stderr)
            return 2
    print(f"baselines: {', '.join(str(d) for _, d, _ in runs)}")
    print(f"Δm of the multi-task runs beside them: mtl results {args.runs_dir}")
    return 1 if failed else 0
