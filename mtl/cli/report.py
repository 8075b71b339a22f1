"""`mtl report RUNS_DIR --out report.html`: one self-contained HTML page comparing the runs under a folder."""

from __future__ import annotations

import argparse
import sys

from mtl.reporting import SORT_HELP


def register(subparsers: argparse._SubParsersAction) -> None:
    from mtl.cli.results import add_delta_arguments

    parser = subparsers.add_parser(
        "report",
        help="self-contained HTML page comparing the runs under a folder",
        description="Write one HTML file (no network needed: inline CSS, embedded images, no scripts) with the "
        "results table of `mtl results` (Δm included), how Δm was computed and which baselines are missing, "
        "per-epoch curves of the scores and train/val losses, each task's metrics at each run's best epoch "
        "(per-class scores shaded), the latest observed validation predictions from TensorBoard with the tasks' "
        "legends, and each run's configuration.",
    )
    parser.add_argument("runs_dir", metavar="RUNS_DIR", help="folder searched recursively for run directories")
    parser.add_argument("--out", required=True, help="HTML file to write")
    parser.add_argument("--sort", default=None, metavar="KEY", help=SORT_HELP)
    add_delta_arguments(parser)
    parser.set_defaults(func=_report)


def _report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mtl.cli.results import deltas_or_explain, load_runs_or_explain
    from mtl.reporting.delta import forms_for, mode_for
    from mtl.reporting.page import render_report

    loaded = load_runs_or_explain("report", args.runs_dir)
    if loaded is None:
        return 2
    runs, problems = loaded
    deltas = deltas_or_explain("report", runs, args)
    if deltas is None:
        return 2
    try:
        forms = [form.name for form in forms_for(args.delta_form, [run.eval_protocol for run in runs])]
        mode = mode_for(args.delta_metrics, [run.eval_protocol for run in runs])
        page = render_report(runs, args.runs_dir, args.sort, problems, deltas, mode, forms)
    except ValueError as exc:
        print(f"mtl report: {exc}", file=sys.stderr)
        return 2
    try:
        Path(args.out).write_text(page, encoding="utf-8")
    except OSError as exc:
        print(f"mtl report: --out {args.out}: cannot write ({exc})", file=sys.stderr)
        return 2
    print(f"{len(runs)} runs → {args.out} ({len(page.encode()) / 1e6:.1f} MB)")
    return 0
