"""`mtl train`: train a model (see `mtl train --help`; flags follow the course's names)."""

from __future__ import annotations

import argparse
import sys

from mtl.errors import one_line


def register(subparsers: argparse._SubParsersAction) -> None:
    """Listed for `mtl --help`; `mtl train …` itself is parsed by mtl.config.parse_config (a YAML preset under the flags)."""
    subparsers.add_parser(
        "train", add_help=False, help="train a model; predicts the test split and packs submission.zip at the end"
    ).set_defaults(func=_train, parse=_parse)


def _parse(argv: list[str]) -> argparse.Namespace:
    from mtl.config import parse_config

    return parse_config(argv)


def _train(cfg: argparse.Namespace) -> int:
    from mtl.data.formats import DataFormatError
    from mtl.engine.callbacks import TrainingInterrupted
    from mtl.engine.module import NonFiniteLoss
    from mtl.engine.rundir import ResumeRefused
    from mtl.grading.submission import make_submission
    from mtl.engine.train import NothingToDo, RunSetupError, is_launcher_process, run_training
    from mtl.inference.checkpoint import CheckpointError

    try:
        log_dir = run_training(cfg)
    except TrainingInterrupted as exc:
        print(f"\nmtl train: {exc}; continue with: mtl train --resume {cfg.log_dir}", file=sys.stderr)
        return 128 + exc.signum
    except NothingToDo as exc:
        print(f"mtl train: nothing to do: {exc}")
        return 0
    except NonFiniteLoss as exc:
        print(f"mtl train: {exc}", file=sys.stderr)
        return 1
    except DataFormatError as exc:
        print(f"mtl train: {one_line(exc)}; `mtl data check` lists every bad file", file=sys.stderr)
        return 2
    except (RunSetupError, ResumeRefused, FileExistsError, FileNotFoundError, CheckpointError) as exc:
        print(f"mtl train: {exc}", file=sys.stderr)
        return 2
    if not is_launcher_process():
        return 0
    if cfg.prepare_submission:
        from mtl.datasets import build_dataset

        if "test" not in build_dataset(cfg).splits():
            print(f"no test split under {cfg.dataset_root}; skipping submission.zip")
        else:
            path = make_submission(log_dir, cfg.dataset_root, cfg.batch_size_validation)
            print(f"submission: {path}")
    print(f"run directory: {log_dir}")
    return 0
