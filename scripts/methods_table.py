"""The markdown table of the weighting comparison (scripts/methods.sh, docs/METHODS.md) from its runs folder.

    python scripts/methods_table.py RUNS [--out methods.md]

RUNS holds one run directory per method and seed, named ``<method>_seed<k>``, and the single-task baselines
``single_<task>_seed<k>`` (as methods.sh names them). Per method: each task metric that enters Δm at the
run's best epoch and Δm against the single-task runs of the same seed (`mtl results` picks them), as the mean
over the seeds (Δm also with each seed's value), and the training time per epoch of the fastest seed. Rows are sorted by mean Δm.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
from collections import defaultdict
from pathlib import Path

from mtl.reporting.delta import DELTA_FORMS, DeltaMetric, compute_deltas, delta_metrics
from mtl.reporting.runs import Run, load_runs, summary_tag
from mtl.tasks import TASKS


def group(name: str) -> str:
    """``pcgrad_seed1`` → ``pcgrad``."""
    return re.sub(r"_seed\d+$", "", name)


def cell(values: list[float], digits: int = 2, each: bool = False) -> str:
    if not values:
        return "—"
    mean = f"{statistics.fmean(values):.{digits}f}"
    return f"{mean} ({', '.join(f'{v:.{digits}f}' for v in values)})" if each and len(values) > 1 else mean


def table(runs_dir: Path) -> str:
    runs, errors = load_runs(runs_dir)
    for error in errors:
        print(f"methods_table: {error}", file=sys.stderr)
    deltas = compute_deltas(runs)
    tasks = max((run.tasks for run in runs), key=len)
    metrics = [m for task in tasks for m in delta_metrics(task)]
    groups: dict[str, list[Run]] = defaultdict(list)
    for run in runs:
        groups[group(run.name)].append(run)

    def values(members: list[Run], tag: str) -> list[float]:
        return [run.best[tag] for run in members if run.best and tag in run.best]

    def per_epoch(members: list[Run]) -> str:
        # The fastest seed: other work on the machine only ever slows a run down.
        times = [run.train_time_s / len(run.validation) for run in members if run.train_time_s and run.validation]
        return f"{min(times):.0f}" if times else "—"

    def label(metric: DeltaMetric) -> str:
        name = TASKS[metric.task].summary_label if metric.tag == summary_tag(metric.task) else metric.tag.split("/")[-1]
        return f"{metric.task} {name} {'↑' if metric.higher_is_better else '↓'}"

    header = ["method", "on", *(label(m) for m in metrics), "Δ_MTL % ↑ (seeds)", "s / epoch (fastest seed)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * 2 + "---:|" * (len(header) - 2)]
    single = sorted(name for name, members in groups.items() if len(members[0].tasks) == 1)
    for name in single:
        members = groups[name]
        row = [name, "—", *(cell(values(members, m.tag)) if m.task in members[0].tasks else "" for m in metrics),
               "0 (baseline)", per_epoch(members)]
        lines.append("| " + " | ".join(row) + " |")
    methods = [name for name in groups if name not in single]
    form = DELTA_FORMS["maninis"]
    delta_of = {name: [deltas[r.name].value(form) for r in groups[name] if deltas.get(r.name) and deltas[r.name].value(form)
                       is not None] for name in methods}
    for name in sorted(methods, key=lambda n: -statistics.fmean(delta_of[n]) if delta_of[n] else 0.0):
        members = groups[name]
        on = str(members[0].config.get("weighting_on", "")) if members[0].config.get("loss_weighting") else ""
        row = [name, on, *(cell(values(members, m.tag)) for m in metrics), cell(delta_of[name], each=True),
               per_epoch(members)]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", type=Path)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    text = table(args.runs)
    if args.out:
        args.out.write_text(text)
    print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
