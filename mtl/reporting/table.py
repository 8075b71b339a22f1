"""The results table: one row per run, with the hyper-parameters that differ between the runs listed.

Columns are generic over datasets and tasks: the dataset's headline score (MiniScapes: the grader), each
task's summary metric (``metrics_summary/<task>``, named and labelled by the task class: mIoU, SI-logRMSE,
…), Δm against single-task baselines (when any run has one), parameters and training time.
Formats: markdown (pipe table), LaTeX (booktabs tabular) and CSV (stdlib csv; raw numbers, for scripts).
Epochs are 0-based, as in metrics.csv and the training log.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mtl.config import NON_EXPERIMENT_KEYS
from mtl.hardware import machine_label
from mtl.reporting import FORMATS
from mtl.reporting.delta import DELTA_FORMS, Delta, DeltaForm, compute_deltas
from mtl.reporting.published import PaperColumn, PaperTable
from mtl.reporting.runs import Run, headlines, score_tag, summary_tag, task_order, task_summary

# Run-management flags, not compared between runs. num_epochs is one only because it may grow on resume;
# it does change the experiment, so it is compared. --precision has a column of its own: the precision the run
# actually used (``auto`` is resolved on each machine).
NOT_COMPARED = (NON_EXPERIMENT_KEYS - {"num_epochs"}) | {"precision", "eval_protocol"}
DEFAULT_FORMS = (DELTA_FORMS["maninis"],)
# Kinds of columns: how a value is written, and which columns are scores (sortable, best in bold).
SCORE_KINDS = ("score", "summary", "delta")


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    numeric: bool = False
    kind: str = "text"  # text, int, score, summary, delta, params, time
    higher_is_better: bool | None = None
    latex: str | None = None  # the header in LaTeX when the label needs math mode
    tag: str | None = None  # the metrics.csv column of a score or summary


def config_text(value: Any) -> str:
    """A config.yaml value as one cell, lists written like on the command line (3,6,9)."""
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def differing_keys(runs: list[Run]) -> list[str]:
    """Experiment hyper-parameters whose value is not the same in every run that records them (a run records the
    flags of the plug-ins it uses only: a weighting's flag is no difference from a run with another weighting);
    model_name has its own column."""
    keys = sorted({key for run in runs for key in run.config} - NOT_COMPARED - {"model_name"})
    return [key for key in keys if len({config_text(run.config[key]) for run in runs if key in run.config}) > 1]


def used_precision(run: Run) -> str | None:
    """The precision the run trained in (hardware.yaml), else the one its flags name unless that is ``auto``."""
    if run.hardware and run.hardware.get("precision"):
        return str(run.hardware["precision"])
    requested = run.config.get("precision")
    return str(requested) if requested not in (None, "auto") else None


def score_columns(runs: list[Run]) -> list[Column]:
    """The headline score of each dataset among the runs (MiniScapes: grader)."""
    return [Column(h, h, True, "score", True, tag=score_tag(h)) for h in headlines(runs)]


def summary_columns(runs: list[Run], taken: set[str]) -> list[Column]:
    """One column per task: its summary metric, keyed and labelled by the task class (``miou``/"mIoU")."""
    cols = []
    for task in task_order(runs):
        key, label, higher = task_summary(task)
        key = key if key not in taken else f"{task}_{key}"
        taken.add(key)
        cols.append(Column(key, label, True, "summary", higher, tag=summary_tag(task)))
    return cols


def delta_key(form: DeltaForm) -> str:
    """The CSV column and --sort key of a Δm form (delta_maninis, delta_mtan, delta_libmtl)."""
    return f"delta_{form.name}"


def columns(
    hyper_parameters: list[str], runs: list[Run] | None = None, forms: Sequence[DeltaForm] = ()
) -> list[Column]:
    """The table's columns; ``forms``: the Δm forms shown (none when no run has a baseline)."""
    runs = runs or []
    head = [Column("name", "name"), Column("model_name", "model"), *(Column(key, key) for key in hyper_parameters)]
    # Always shown, so that runs from different machines or precisions are never compared unknowingly.
    head += [Column("eval_protocol", "protocol"), Column("precision", "precision"), Column("hardware", "hardware")]
    head += [Column("best_epoch", "best epoch", True, "int"), Column("epochs", "epochs", True, "int")]
    scores = score_columns(runs)
    delta = [Column(delta_key(f), f.label, True, "delta", f.higher_is_better, latex=f.latex) for f in forms]
    taken = {c.key for c in head + scores + delta} | {"params", "train_time_s"}
    tail = [Column("params", "params", True, "params"), Column("train_time_s", "train time", True, "time")]
    return head + scores + summary_columns(runs, taken) + delta + tail


def shows_delta(deltas: Mapping[str, Delta]) -> bool:
    """The Δm column is shown once some multi-task run has a baseline for at least one of its tasks."""
    return any(delta.baselines for delta in deltas.values())


def build_table(
    runs: list[Run],
    sort: str | None = None,
    deltas: Mapping[str, Delta] | None = None,
    forms: Sequence[DeltaForm] = DEFAULT_FORMS,
) -> tuple[list[Column], list[dict[str, Any]]]:
    """(columns, rows) with raw values (None = empty), sorted by ``sort`` (a score column's key or ``name``;
    default: the first score column, e.g. grader); runs without that score go last. ``deltas``: Δm by run
    name (default: against the single-task runs among ``runs``), shown in each of ``forms``."""
    deltas = compute_deltas(runs) if deltas is None else deltas
    keys = differing_keys(runs)
    cols = columns(keys, runs, forms if shows_delta(deltas) else ())
    sortable = [c.key for c in cols if c.kind in SCORE_KINDS] + ["name"]
    sort = sort or sortable[0]
    if sort not in sortable:
        raise ValueError(f"--sort: expected one of {sortable} (the scores of these runs), got {sort!r}")
    rows = []
    for run in runs:
        best = run.best or {}
        row: dict[str, Any] = {
            "name": run.name,
            "model_name": run.config.get("model_name"),
            **{key: config_text(run.config[key]) if key in run.config else None for key in keys},
            "eval_protocol": run.eval_protocol,
            "precision": used_precision(run),
            "hardware": machine_label(run.hardware) if run.hardware else None,
            "best_epoch": int(best["epoch"]) if best else None,
            "epochs": len(run.validation),
        }
        for col in cols:
            if col.tag is not None:
                row[col.key] = best.get(col.tag)
        delta = deltas.get(run.name)
        for form in forms:
            row[delta_key(form)] = delta.value(form) if delta is not None else None
        row["params"] = run.params
        row["train_time_s"] = run.train_time_s
        rows.append(row)
    by = next(c for c in cols if c.key == sort) if sort != "name" else None
    return cols, sort_rows(rows, sort, by.higher_is_better is not False if by else True)


def sort_rows(rows: list[dict[str, Any]], by: str, descending: bool = True) -> list[dict[str, Any]]:
    if by == "name":
        return sorted(rows, key=lambda r: r["name"])
    has_score = lambda r: r[by] is not None and not math.isnan(r[by])  # noqa: E731
    scored = [r for r in rows if has_score(r)]
    unscored = sorted((r for r in rows if not has_score(r)), key=lambda r: r["name"])
    sign = -1.0 if descending else 1.0
    return sorted(scored, key=lambda r: (sign * r[by], r["name"])) + unscored


def duration_text(seconds: float) -> str:
    whole = int(round(seconds))
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def cell_text(col: Column, value: Any) -> str:
    """A value as people read it (scores to 2 decimals, Δm signed, parameters with thousands separators, time h:mm:ss)."""
    if value is None:
        return ""
    if col.kind in ("score", "summary"):
        return f"{value:.2f}"
    if col.kind == "delta":
        return f"{value:+.2f}"
    if col.kind == "params":
        return f"{value:,}"
    if col.kind == "time":
        return duration_text(value)
    return str(value)


def _csv_value(col: Column, value: Any) -> Any:
    if value is None:
        return ""
    return round(value, 1) if col.kind == "time" else value


def to_csv(cols: list[Column], rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([c.key for c in cols])
    writer.writerows([[_csv_value(c, row[c.key]) for c in cols] for row in rows])
    return buffer.getvalue()


def _markdown_cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def to_markdown(cols: list[Column], rows: list[dict[str, Any]]) -> str:
    lines = [
        "| " + " | ".join(_markdown_cell(c.label) for c in cols) + " |",
        "|" + "|".join("---:" if c.numeric else ":---" for c in cols) + "|",
    ]
    for row in rows:
        lines.append("| " + " | ".join(_markdown_cell(cell_text(c, row[c.key])) for c in cols) + " |")
    return "\n".join(lines) + "\n"


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text.replace("\n", " "))


def to_latex(cols: list[Column], rows: list[dict[str, Any]]) -> str:
    lines = [
        r"% needs \usepackage{booktabs}",
        r"\begin{tabular}{" + "".join("r" if c.numeric else "l" for c in cols) + "}",
        r"\toprule",
        " & ".join(c.latex or latex_escape(c.label) for c in cols) + r" \\",
        r"\midrule",
        *(" & ".join(latex_escape(cell_text(c, row[c.key])) for c in cols) + r" \\" for row in rows),
        r"\bottomrule",
        r"\end{tabular}",
    ]
    return "\n".join(lines) + "\n"


WRITERS: dict[str, Callable[[list[Column], list[dict[str, Any]]], str]] = {
    "markdown": to_markdown,
    "latex": to_latex,
    "csv": to_csv,
}


def results_table(
    runs: list[Run],
    fmt: str = "markdown",
    sort: str | None = None,
    deltas: Mapping[str, Delta] | None = None,
    forms: Sequence[DeltaForm] = DEFAULT_FORMS,
) -> str:
    """The whole table as text in ``fmt`` (markdown, latex or csv)."""
    if fmt not in WRITERS:
        raise ValueError(f"--format: expected one of {list(FORMATS)}, got {fmt!r}")
    return WRITERS[fmt](*build_table(runs, sort, deltas, forms))


def paper_table(
    runs: list[Run], table: PaperTable, fmt: str, deltas: Mapping[str, Delta], forms: Sequence[DeltaForm]
) -> str:
    """The runs of ``table``'s dataset in the column layout of the papers that print it (mtl.reporting.published):
    a row per run with the metrics at its best epoch (errors to 4 decimals, the rest to 2), then each Δm form."""
    if fmt not in ("latex", "markdown"):
        raise ValueError(f"--paper_table writes --format latex or markdown, not {fmt}")
    chosen = [run for run in runs if run.dataset == table.dataset]
    if not chosen:
        raise ValueError(f"--paper_table: no run of the {table.dataset} dataset among these runs")

    def cell(column: PaperColumn, run: Run) -> str:
        value = (run.best or {}).get(column.tag)
        if value is None or not math.isfinite(value):
            return ""
        return f"{value:.4f}" if not column.higher_is_better and column.tag.endswith(("/mae", "/rel")) else f"{value:.2f}"

    def delta_cell(run: Run, form: DeltaForm) -> str:
        value = deltas[run.name].value(form) if run.name in deltas else None
        return "" if value is None else f"{value:+.2f}"

    rows = [[run.name, *(cell(c, run) for c in table.columns), *(delta_cell(run, f) for f in forms)] for run in chosen]
    if fmt == "markdown":
        header = ["run", *(f"{c.label} {'↑' if c.higher_is_better else '↓'}" for c in table.columns), *(f.label for f in forms)]
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join([":---"] + ["---:"] * (len(header) - 1)) + "|"]
        return "\n".join([*lines, *("| " + " | ".join(_markdown_cell(v) for v in row) + " |" for row in rows)]) + "\n"
    arrow = lambda higher: r"$\uparrow$" if higher else r"$\downarrow$"  # noqa: E731
    spans = " & ".join(rf"\multicolumn{{{len(cols)}}}{{c}}{{{name}}}" for name, cols in table.groups)
    rules, start = [], 2
    for _, cols in table.groups:
        rules.append(rf"\cmidrule(lr){{{start}-{start + len(cols) - 1}}}")
        start += len(cols)
    lines = [
        r"% needs \usepackage{booktabs}",
        r"\begin{tabular}{l" + "r" * (len(table.columns) + len(forms)) + "}",
        r"\toprule",
        " & " + spans + " & " * len(forms) + r" \\",
        "".join(rules),
        "Method & " + " & ".join(f"{c.label} {arrow(c.higher_is_better)}" for c in table.columns)
        + "".join(f" & {f.latex}" for f in forms) + r" \\",
        r"\midrule",
        *(" & ".join([latex_escape(row[0]), *row[1:]]) + r" \\" for row in rows),
        r"\bottomrule",
        r"\end{tabular}",
    ]
    return "\n".join(lines) + "\n"
