"""The results table: one row per run, with the hyper-parameters that differ between the runs listed.

Formats: markdown (pipe table), LaTeX (booktabs tabular) and CSV (stdlib csv; raw numbers, for scripts).
Epochs are 0-based, as in metrics.csv and the training log.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mtl.config import NON_EXPERIMENT_KEYS
from mtl.reporting import FORMATS, SORT_KEYS
from mtl.reporting.runs import GRADER, MIOU, SI_LOG_RMSE, Run

_DESCENDING = {"grader", "miou"}
# Run-management flags, not compared between runs. num_epochs is one only because it may grow on resume;
# it does change the experiment, so it is compared.
NOT_COMPARED = NON_EXPERIMENT_KEYS - {"num_epochs"}


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    numeric: bool = False


def config_text(value: Any) -> str:
    """A config.yaml value as one cell, lists written like on the command line (3,6,9)."""
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def differing_keys(runs: list[Run]) -> list[str]:
    """Experiment hyper-parameters whose value is not the same in every run (a missing key counts as different);
    model_name has its own column."""
    keys = sorted({key for run in runs for key in run.config} - NOT_COMPARED - {"model_name"})
    return [
        key
        for key in keys
        if len({config_text(run.config[key]) if key in run.config else None for run in runs}) > 1
    ]


def columns(hyper_parameters: list[str]) -> list[Column]:
    return [
        Column("name", "name"),
        Column("model_name", "model"),
        *(Column(key, key) for key in hyper_parameters),
        Column("best_epoch", "best epoch", True),
        Column("epochs", "epochs", True),
        Column("grader", "grader", True),
        Column("miou", "mIoU", True),
        Column("si_log_rmse", "SI-logRMSE", True),
        Column("params", "params", True),
        Column("train_time_s", "train time", True),
    ]


def build_table(runs: list[Run], sort: str = "grader") -> tuple[list[Column], list[dict[str, Any]]]:
    """(columns, rows) with raw values (None = empty), sorted by ``sort``; runs without that score go last."""
    if sort not in SORT_KEYS:
        raise ValueError(f"--sort: expected one of {list(SORT_KEYS)}, got {sort!r}")
    keys = differing_keys(runs)
    rows = []
    for run in runs:
        best = run.best or {}
        row = {
            "name": run.name,
            "model_name": run.config.get("model_name"),
            **{key: config_text(run.config[key]) if key in run.config else None for key in keys},
            "best_epoch": int(best["epoch"]) if best else None,
            "epochs": len(run.validation),
            "grader": best.get(GRADER),
            "miou": best.get(MIOU),
            "si_log_rmse": best.get(SI_LOG_RMSE),
            "params": run.params,
            "train_time_s": run.train_time_s,
        }
        rows.append(row)
    return columns(keys), sort_rows(rows, sort)


def sort_rows(rows: list[dict[str, Any]], by: str) -> list[dict[str, Any]]:
    if by == "name":
        return sorted(rows, key=lambda r: r["name"])
    has_score = lambda r: r[by] is not None and not math.isnan(r[by])  # noqa: E731
    scored = [r for r in rows if has_score(r)]
    unscored = sorted((r for r in rows if not has_score(r)), key=lambda r: r["name"])
    sign = -1.0 if by in _DESCENDING else 1.0
    return sorted(scored, key=lambda r: (sign * r[by], r["name"])) + unscored


def duration_text(seconds: float) -> str:
    whole = int(round(seconds))
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def cell_text(key: str, value: Any) -> str:
    """A value as people read it (scores to 2 decimals, parameters with thousands separators, time h:mm:ss)."""
    if value is None:
        return ""
    if key in ("grader", "miou", "si_log_rmse"):
        return f"{value:.2f}"
    if key == "params":
        return f"{value:,}"
    if key == "train_time_s":
        return duration_text(value)
    return str(value)


def _csv_value(key: str, value: Any) -> Any:
    if value is None:
        return ""
    return round(value, 1) if key == "train_time_s" else value


def to_csv(cols: list[Column], rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([c.key for c in cols])
    writer.writerows([[_csv_value(c.key, row[c.key]) for c in cols] for row in rows])
    return buffer.getvalue()


def _markdown_cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def to_markdown(cols: list[Column], rows: list[dict[str, Any]]) -> str:
    lines = [
        "| " + " | ".join(_markdown_cell(c.label) for c in cols) + " |",
        "|" + "|".join("---:" if c.numeric else ":---" for c in cols) + "|",
    ]
    for row in rows:
        lines.append("| " + " | ".join(_markdown_cell(cell_text(c.key, row[c.key])) for c in cols) + " |")
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
        " & ".join(latex_escape(c.label) for c in cols) + r" \\",
        r"\midrule",
        *(" & ".join(latex_escape(cell_text(c.key, row[c.key])) for c in cols) + r" \\" for row in rows),
        r"\bottomrule",
        r"\end{tabular}",
    ]
    return "\n".join(lines) + "\n"


WRITERS: dict[str, Callable[[list[Column], list[dict[str, Any]]], str]] = {
    "markdown": to_markdown,
    "latex": to_latex,
    "csv": to_csv,
}


def results_table(runs: list[Run], fmt: str = "markdown", sort: str = "grader") -> str:
    """The whole table as text in ``fmt`` (markdown, latex or csv)."""
    if fmt not in WRITERS:
        raise ValueError(f"--format: expected one of {list(FORMATS)}, got {fmt!r}")
    return WRITERS[fmt](*build_table(runs, sort))
