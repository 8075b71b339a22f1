"""`mtl results RUNS_DIR`: one table row per run (best epoch's scores, Δm, differing hyper-parameters, size, time)."""

from __future__ import annotations

import argparse
import sys

from mtl.reporting import DELTA_MODES, FORMATS, SORT_HELP


def delta_forms(value: str) -> tuple[str, ...]:
    from mtl.reporting.delta import delta_form

    if value == "auto":
        return ("auto",)
    try:
        return tuple(delta_form(name).name for name in value.split(",") if name)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--delta_form: ")) from None


def add_delta_arguments(parser: argparse.ArgumentParser) -> None:
    """--baseline, --delta_metrics and --delta_form, shared with `mtl report`."""
    parser.add_argument(
        "--baseline", action="append", default=[], metavar="TASK=RUN_DIR|published:NAME",
        help="the single-task run to compare TASK with in Δm (repeatable), or published:nyuv2 / published:cityscapes "
        "for the single-task figures that Nash-MTL and FAMO compare with (docs/PROTOCOLS.md); default: the "
        "single-task run of the same dataset under RUNS_DIR whose configuration is closest to each multi-task run's",
    )
    parser.add_argument(
        "--delta_form", type=delta_forms, default=("auto",), metavar="FORM[,FORM…]|auto",
        help="Δm as printed by: maninis (Δ_MTL%% ↑, metric-averaged; Maninis et al., MTI-Net), mtan (Δm%% ↓, the same "
        "with the sign of CAGrad, Nash-MTL and FAMO tables), libmtl (Δp%% ↑, averaged within each task, then over "
        "tasks); several give several columns; auto (default): the form that goes with the runs' evaluation "
        "protocol (course: maninis, mtan: mtan, libmtl: libmtl, mtl_pytorch: maninis)",
    )
    parser.add_argument(
        "--delta_metrics", choices=DELTA_MODES, default="auto",
        help="metrics of Δm: each task's declared ones (declared: semseg mIoU and pixel accuracy, depth abs and rel "
        "error, normals angles), each task's summary metric (summary: the course setting, mIoU and SI-logRMSE), or "
        "the one metric per task of the Δ_MTL of ASTMT, MTI-Net and MTL-PyTorch (primary: mIoU, depth RMSE, normals "
        "mean angle, saliency mIoU, edges odsF); auto (default): primary for runs under --eval_protocol mtl_pytorch, "
        "declared otherwise",
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "results",
        help="table of the runs under a folder (markdown, LaTeX or CSV)",
        description="Find every run directory (config.yaml + metrics.csv) under RUNS_DIR and list, per run: "
        "model, the hyper-parameters that differ between the runs, the best validation epoch (0-based; first "
        "maximum of the dataset's checkpoint rank, like best.ckpt: the grader on MiniScapes) with its headline "
        "score and each task's summary metric, Δm against single-task baselines (once some run has one), the "
        "number of validated epochs, trained parameters (BatchNorm statistics excluded) and training time (from "
        "TensorBoard event timestamps, summed over resumed sessions). Runs that stopped before any validation "
        "have empty scores.",
    )
    parser.add_argument("runs_dir", metavar="RUNS_DIR", help="folder searched recursively for run directories")
    parser.add_argument("--format", choices=FORMATS, default="markdown", help="table format (default markdown)")
    parser.add_argument("--sort", default=None, metavar="KEY", help=SORT_HELP)
    parser.add_argument("--out", default=None, help="write the table to this file instead of standard output")
    parser.add_argument(
        "--paper_table", choices=("nyuv2", "cityscapes"), default=None,
        help="the column layout of the NYUv2 (9 metrics) or Cityscapes (4 metrics) tables of MTAN, Nash-MTL, FAMO "
        "and LibMTL, with the runs of that dataset and the Δm forms of --delta_form (with --format latex or markdown)",
    )
    add_delta_arguments(parser)
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


def load_baselines(command: str, specs: list[str]) -> dict | None:
    """``--baseline TASK=RUN_DIR`` values → {task: Run}; None (after a message on stderr) when one is unusable."""
    from mtl.reporting.runs import RunFormatError, load_run
    from mtl.tasks import TASKS

    from mtl.reporting.published import PUBLISHED_BASELINES

    baselines = {}
    for spec in specs:
        if spec.startswith("published:"):
            published = PUBLISHED_BASELINES.get(spec.removeprefix("published:"))
            if published is None:
                names = ", ".join(f"published:{n}" for n in PUBLISHED_BASELINES)
                print(f"mtl {command}: --baseline {spec}: no such published baseline; known: {names}", file=sys.stderr)
                return None
            baselines.update(published.baselines())
            continue
        task, sep, path = spec.partition("=")
        problem = None
        if not sep or not task or not path:
            problem = "expected TASK=RUN_DIR"
        elif task not in TASKS:
            problem = f"unknown task {task!r}; known: {', '.join(TASKS)}"
        elif task in baselines:
            problem = f"a second baseline for {task}"
        if problem is None:
            try:
                run = load_run(path)
            except (RunFormatError, FileNotFoundError, OSError) as exc:
                problem = f"cannot read the run ({exc})"
            else:
                run.name = path
                if run.tasks != (task,):
                    problem = f"the run trained {','.join(run.tasks)}; a baseline is a single-task run of {task}"
                elif run.best is None:
                    problem = "the run has no validation yet"
                else:
                    baselines[task] = run
        if problem is not None:
            print(f"mtl {command}: --baseline {spec}: {problem}", file=sys.stderr)
            return None
    return baselines


def deltas_or_explain(command: str, runs: list, args: argparse.Namespace) -> dict | None:
    """Δm of the runs with the baselines of the flags; None (after a message) when a --baseline is unusable."""
    from mtl.reporting.delta import compute_deltas

    explicit = load_baselines(command, args.baseline)
    if explicit is None:
        return None
    return compute_deltas(runs, explicit, args.delta_metrics)


def _results(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mtl.reporting.delta import forms_for
    from mtl.reporting.published import PAPER_TABLES
    from mtl.reporting.table import paper_table, results_table, shows_delta

    loaded = load_runs_or_explain("results", args.runs_dir)
    if loaded is None:
        return 2
    runs, _ = loaded
    deltas = deltas_or_explain("results", runs, args)
    if deltas is None:
        return 2
    forms = forms_for(args.delta_form, [run.eval_protocol for run in runs])
    try:
        if args.paper_table:
            text = paper_table(runs, PAPER_TABLES[args.paper_table], args.format, deltas, forms)
        else:
            text = results_table(runs, args.format, args.sort, deltas, forms)
    except ValueError as exc:
        print(f"mtl results: {exc}", file=sys.stderr)
        return 2
    if shows_delta(deltas):
        for name, delta in deltas.items():
            if delta.reason:
                print(f"mtl results: Δm of {name} left empty: {delta.reason}", file=sys.stderr)
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
