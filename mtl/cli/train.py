"""`mtl train`: train a model (see `mtl train --help`; flags follow the course's names)."""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    from mtl.engine.config import build_parser

    subparsers.add_parser(
        "train",
        parents=[build_parser()],
        add_help=False,
        help="train a model; predicts the test split and packs submission.zip at the end",
        description="Train a multi-task (semseg + depth) model. Flags override values from --config.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    ).set_defaults(func=_train)


def _train(args: argparse.Namespace) -> int:
    from mtl.data.formats import DataFormatError
    from mtl.engine.callbacks import NonFiniteLoss, TrainingInterrupted
    from mtl.engine.config import parse_config
    from mtl.engine.rundir import ResumeRefused
    from mtl.engine.submission import make_submission
    from mtl.engine.train import RunSetupError, is_launcher_process, run_training

    cfg = parse_config(args.command_argv)
    try:
        log_dir = run_training(cfg)
    except TrainingInterrupted as exc:
        print(f"mtl train: {exc}; continue with: mtl train --resume {cfg.log_dir}", file=sys.stderr)
        return 128 + exc.signum
    except NonFiniteLoss as exc:
        print(f"mtl train: {exc}", file=sys.stderr)
        return 1
    except (RunSetupError, ResumeRefused, FileExistsError, FileNotFoundError, DataFormatError) as exc:
        print(f"mtl train: {exc}", file=sys.stderr)
        return 2
    if not is_launcher_process():
        return 0
    if cfg.prepare_submission:
        from mtl.data.miniscapes import split_size

        try:
            split_size(cfg.dataset_root, "test")
        except FileNotFoundError:
            print(f"no test split under {cfg.dataset_root}; skipping submission.zip")
        else:
            path = make_submission(log_dir, cfg.dataset_root, cfg.batch_size_validation)
            print(f"submission: {path}")
    print(f"run directory: {log_dir}")
    return 0
