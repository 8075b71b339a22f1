"""`mtl report RUNS_DIR --out report.html`: one self-contained HTML page comparing the runs under a folder."""

from __future__ import annotations

import argparse
import sys

from mtl.reporting import SORT_KEYS


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report",
        help="self-contained HTML page comparing the runs under a folder",
        description="Write one HTML file (no network needed: inline CSS, embedded images, no scripts) with the "
        "results table of `mtl results`, per-epoch curves of grader, mIoU, SI-logRMSE and train/val losses, "
        "per-class IoU and depth metrics of each run's best epoch, the latest observed validation predictions "
        "from TensorBoard, and each run's configuration.",
    )
    parser.add_argument("runs_dir", metavar="RUNS_DIR", help="folder searched recursively for run directories")
    parser.add_argument("--out", required=True, help="HTML file to write")
    parser.add_argument("--sort", choices=SORT_KEYS, default="grader", help="order of the runs (default grader)")
    parser.set_defaults(func=_report)


def _report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mtl.cli.results import load_runs_or_explain
    from mtl.reporting.page import render_report

    loaded = load_runs_or_explain("report", args.runs_dir)
    if loaded is None:
        return 2
    runs, problems = loaded
    page = render_report(runs, args.runs_dir, args.sort, problems)
    try:
        Path(args.out).write_text(page, encoding="utf-8")
    except OSError as exc:
        print(f"mtl report: --out {args.out}: cannot write ({exc})", file=sys.stderr)
        return 2
    print(f"{len(runs)} runs → {args.out} ({len(page.encode()) / 1e6:.1f} MB)")
    return 0
