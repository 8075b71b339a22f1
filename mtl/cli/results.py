"""`mtl results RUNS_DIR`: one table row per run (best epoch's scores, differing hyper-parameters, size, time)."""

from __future__ import annotations

import argparse
import sys

from mtl.reporting import FORMATS, SORT_KEYS


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "results",
        help="table of the runs under a folder (markdown, LaTeX or CSV)",
        description="Find every run directory (config.yaml + metrics.csv) under RUNS_DIR and list, per run: "
        "model, the hyper-parameters that differ between the runs, the best validation epoch (0-based; first "
        "maximum of the grader, like best.ckpt) with its grader, mIoU and SI-logRMSE, the number of validated "
        "epochs, trained parameters (BatchNorm statistics excluded) and training time (from TensorBoard event "
        "timestamps, summed over resumed sessions). Runs that stopped before any validation have empty scores.",
    )
    parser.add_argument("runs_dir", metavar="RUNS_DIR", help="folder searched recursively for run directories")
    parser.add_argument("--format", choices=FORMATS, default="markdown", help="table format (default markdown)")
    parser.add_argument(
        "--sort", choices=SORT_KEYS, default="grader",
        help="order: grader and miou descending, si_log_rmse ascending, name alphabetical (default grader)",
    )
    parser.add_argument("--out", default=None, help="write the table to this file instead of standard output")
    parser.set_defaults(func=_results)


def load_runs_or_explain(command: str, runs_dir: str) -> tuple[list, list[str]] | None:
    """(readable runs, messages about unreadable ones) under ``runs_dir``, every problem also printed to stderr;
    None when there is nothing to show."""
    from mtl.reporting.runs import load_runs

    try:
        runs, errors = load_runs(runs_dir)
    except FileNotFoundError as exc:
        print(f"mtl {command}: {exc}", file=sys.stderr)
        return None
    for error in errors:
        print(f"mtl {command}: skipped: {error}", file=sys.stderr)
    for run in runs:
        for warning in run.warnings:
            print(f"mtl {command}: warning: {warning}", file=sys.stderr)
    if not runs:
        print(f"mtl {command}: no readable run directory (config.yaml + metrics.csv) under {runs_dir}", file=sys.stderr)
        return None
    return runs, errors


def _results(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mtl.reporting.table import results_table

    loaded = load_runs_or_explain("results", args.runs_dir)
    if loaded is None:
        return 2
    runs, _ = loaded
    text = results_table(runs, args.format, args.sort)
    if args.out is None:
        sys.stdout.write(text)
        return 0
    try:
        Path(args.out).write_text(text)
    except OSError as exc:
        print(f"mtl results: --out {args.out}: cannot write ({exc})", file=sys.stderr)
        return 2
    print(f"{len(runs)} runs → {args.out}")
    return 0
