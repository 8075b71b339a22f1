"""The markdown table of the course ladder (scripts/ladder.sh, docs/LADDER.md) from its runs folder.

    python scripts/ladder_table.py RUNS [--out ladder.md]

RUNS holds one folder per step (``1_template``, ``2_adam``, … as ladder.sh names them) with one run directory
per seed below it (``seed0``, ``seed1``); any folder layout that `mtl results RUNS` reads works, the step being
the first folder below RUNS. Per step: the validation grader, mIoU, SI-logRMSE and total (mIoU − SI-logRMSE) of
each seed's best epoch (the epoch `mtl results` and ``best.ckpt`` pick: highest grader, ties broken by the
total), each as "mean (seed values)"; the change of the mean grader and of the mean total against the step
above (the total is not clipped at 0 like the grader's two terms, so it still shows a change on short runs
whose grader is 0); the change the three published solutions of ANCHORS.md measured for the same step and
their grader; and the mean training time per run (TensorBoard event times, as `mtl results` reads them; "—"
when a run has no event files).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from pathlib import Path

# Published grader and its change against the previous published step, solutions A / B / C of ANCHORS.md
# ("The ablation ladder, as three independent solutions measured it"). Their batch-16 step follows a batch-8
# step, and their dilation step follows the ImageNet step, which this ladder cannot run (no weights offline):
# the published change of those two steps is against the step before in *their* ladder.
PUBLISHED: dict[str, tuple[str, tuple[float, float, float], tuple[float, float, float] | None]] = {
    "template": ("template default (SGD 0.01, batch 4)", (39.84, 40.05, 43.53), None),
    "adam": ("Adam 1e-4", (43.48, 43.42, 43.15), (3.64, 3.37, -0.38)),
    "batch16": ("batch 16, epochs ×4 (same steps)", (47.99, 48.3, 48.20), (4.51, 4.88, 5.05)),
    "imagenet": ("ImageNet-pretrained encoder", (49.42, 47.39, 47.67), (1.43, -0.91, -0.53)),
    "dilation": ("+ dilation (F, F, T)", (60.50, 58.25, 58.48), (11.08, 10.86, 10.81)),
    "aspp_decoder": ("+ ASPP and DeepLabV3+ decoder", (64.54, 64.34, 67.39), (4.04, 6.09, 8.91)),
    "branched": ("branched", (65.42, 66.64, 69.39), (0.88, 2.30, 2.00)),
    "distillation": ("distillation", (67.97, 68.07, 67.88), (2.55, 1.43, -1.51)),
}
NOT_RUN = {"imagenet": "not run: needs resnet34-b627a593.pth, which cannot be downloaded here"}
METRICS = (
    ("grader", "metrics_summary/grader"),
    ("miou", "metrics_summary/semseg"),
    ("si", "metrics_summary/depth"),
    ("total", "metrics_summary/total"),
)


def step_key(folder: str) -> str:
    """``3_batch16`` → ``batch16``; a folder without a number prefix is its own key."""
    head, _, tail = folder.partition("_")
    return tail if head.isdigit() and tail else folder


def step_order(folder: str) -> tuple[float, str]:
    head = folder.partition("_")[0]
    return (float(head) if head.isdigit() else math.inf, folder)


def collect(runs_dir: Path) -> tuple[dict[str, list[dict]], list[str]]:
    """Step folder → one record per run (seed, best-epoch metrics, training time); and the problems met."""
    from mtl.reporting.runs import load_runs

    runs, problems = load_runs(runs_dir)
    steps: dict[str, list[dict]] = {}
    for run in runs:
        folder = run.name.split("/")[0] if "/" in run.name else run.name
        best = run.best
        record = {"name": run.name, "seed": run.config.get("seed", "?"), "time_s": run.train_time_s}
        for key, tag in METRICS:
            record[key] = best.get(tag, math.nan) if best else math.nan
        if best is None:
            problems.append(f"{run.name}: no validation yet")
        problems += [f"{run.name}: {w}" for w in run.warnings if "parameter count" not in w]
        steps.setdefault(folder, []).append(record)
    for records in steps.values():
        records.sort(key=lambda r: str(r["seed"]))
    return dict(sorted(steps.items(), key=lambda item: step_order(item[0]))), problems


def _mean(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return statistics.fmean(finite) if finite else math.nan


def _num(value: float, signed: bool = False) -> str:
    if value is None or not math.isfinite(value):
        return "—"
    value = round(value, 2) + 0.0  # no "-0.00"
    return f"{value:+.2f}" if signed else f"{value:.2f}"


def _cell(values: list[float]) -> str:
    """``41.20 (40.80, 41.60)``: the mean and each seed's value."""
    mean = _mean(values)
    if len(values) == 1:
        return _num(mean)
    return f"{_num(mean)} ({', '.join(_num(v) for v in values)})"


def _published(key: str) -> tuple[str, str]:
    if key not in PUBLISHED:
        return "—", "—"
    _, graders, deltas = PUBLISHED[key]
    return (" / ".join(f"{g:.2f}" for g in graders), " / ".join(f"{d:+.2f}" for d in deltas) if deltas else "—")


def _minutes(records: list[dict]) -> str:
    times = [r["time_s"] for r in records if r["time_s"] is not None]
    if not times:
        return "—"
    return f"{statistics.fmean(times) / 60:.1f} min"


def table(runs_dir: Path) -> tuple[str, list[str]]:
    steps, problems = collect(runs_dir)
    lines = [
        "| step | grader | mIoU | SI-logRMSE | total | Δ grader / Δ total vs step above "
        "| published Δ grader A / B / C | published grader A / B / C | training time per run |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    previous = (math.nan, math.nan)
    keys = [step_key(folder) for folder in steps]
    for folder, records in steps.items():
        key = step_key(folder)
        if key == "dilation" and "imagenet" not in keys and "batch16" in keys:  # where the skipped step goes
            graders, deltas = _published("imagenet")
            lines.append(f"| {PUBLISHED['imagenet'][0]} | {NOT_RUN['imagenet']} | | | | | {deltas} | {graders} | |")
        values = {name: [r[name] for r in records] for name, _ in METRICS}
        means = (_mean(values["grader"]), _mean(values["total"]))
        label = f"{folder}" + (f" — {PUBLISHED[key][0]}" if key in PUBLISHED else "")
        graders, deltas = _published(key)
        change = f"{_num(means[0] - previous[0], signed=True)} / {_num(means[1] - previous[1], signed=True)}"
        lines.append(
            f"| {label} | {_cell(values['grader'])} | {_cell(values['miou'])} | {_cell(values['si'])} "
            f"| {_cell(values['total'])} | {change} | {deltas} | {graders} | {_minutes(records)} |"
        )
        previous = means
    if not steps:
        problems.append(f"{runs_dir}: no run directories (config.yaml + metrics.csv) found")
    return "\n".join(lines) + "\n", problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", type=Path, help="the ladder's runs folder (ladder.sh: $LADDER_DIR/runs)")
    parser.add_argument("--out", type=Path, default=None, help="also write the table to this file")
    args = parser.parse_args(argv)
    try:
        text, problems = table(args.runs)
    except FileNotFoundError as exc:
        print(f"ladder_table: error: {exc}", file=sys.stderr)
        return 1
    for problem in problems:
        print(f"ladder_table: warning: {problem}", file=sys.stderr)
    print(text, end="")
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
