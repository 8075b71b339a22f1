"""`mtl test --log_dir DIR`: predict the test split of a finished run again and re-pack submission.zip."""

from __future__ import annotations

import argparse
import sys

from mtl.flags import positive_int


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("test", help="predict the test split with a run's best checkpoint")
    parser.add_argument("--log_dir", required=True, help="run directory")
    parser.add_argument("--dataset_root", default=None, help="default: the run's own dataset_root")
    parser.add_argument(
        "--batch_size_validation", type=positive_int, default=None, help="default: the run's own batch_size_validation"
    )
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 … (default: cuda if available)")
    parser.set_defaults(func=_test)


def _test(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mtl.engine.rundir import recorded_config
    from mtl.errors import one_line
    from mtl.grading.submission import make_submission

    log_dir = Path(args.log_dir)
    config = recorded_config(log_dir)
    if not config:
        print(f"mtl test: {log_dir} is not a run directory (no config.yaml)", file=sys.stderr)
        return 2
    root = args.dataset_root or config["dataset_root"]
    batch = args.batch_size_validation if args.batch_size_validation is not None else config.get("batch_size_validation", 8)
    try:
        path = make_submission(log_dir, Path(root), batch, args.device)
    except (FileNotFoundError, ValueError) as exc:
        print(f"mtl test: {one_line(exc)}", file=sys.stderr)
        return 2
    print(f"submission: {path}")
    return 0
