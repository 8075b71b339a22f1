"""Matplotlib charts for the report, rendered to SVG bytes (crisp at any zoom, text drawn as paths, so the
page needs no fonts or network)."""

from __future__ import annotations

import io
import math

from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from mtl.reporting.runs import Run, headlines, score_tag, summary_tag, task_order, task_summary


def arrow(higher_is_better: bool | None) -> str:
    return {True: " ↑", False: " ↓"}.get(higher_is_better, "")


def score_panels(runs: list[Run]) -> list[tuple[str, str]]:
    """(panel title, metrics.csv column) of the validation scores: each dataset's headline, each task's summary."""
    panels = [(f"{h} (val) ↑", score_tag(h)) for h in headlines(runs)]
    for task in task_order(runs):
        _, label, higher = task_summary(task)
        panels.append((f"{label} (val){arrow(higher)}", summary_tag(task)))
    return panels


def loss_panels(runs: list[Run]) -> list[tuple[str, str]]:
    """(panel title, loss name) of the total loss and each task's loss."""
    return [("total loss ↓", "total"), *((f"{task} loss ↓", task) for task in task_order(runs))]


def run_colors(count: int) -> list[str]:
    """One distinct colour per run: tab10, then tab20 for more than ten runs (cycling beyond that)."""
    cmap = colormaps["tab10" if count <= 10 else "tab20"]
    return ["#%02x%02x%02x" % tuple(int(255 * c) for c in cmap(i % cmap.N)[:3]) for i in range(count)]


def plain_text(text: str) -> str:
    """Text shown literally by matplotlib (a pair of '$' would otherwise start mathtext)."""
    return text.replace("$", r"\$")


def figure_svg(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="svg", metadata={"Date": None})
    return buffer.getvalue()


def _series(rows: list[dict[str, float]], key: str) -> tuple[list[float], list[float]]:
    points = [(row["epoch"], row[key]) for row in rows if key in row and math.isfinite(row[key])]
    return [p[0] for p in points], [p[1] for p in points]


def curves_svg(runs: list[Run], colors: list[str]) -> bytes | None:
    """Per-epoch validation scores (top) and train/val losses (bottom) of every run; the best epoch is starred.
    None when no run has finished a validation."""
    if not any(run.validation for run in runs):
        return None
    scores, losses = score_panels(runs), loss_panels(runs)
    ncols = max(len(scores), len(losses))
    fig = Figure(figsize=(13 / 3 * ncols, 7.2), layout="constrained")
    axes = fig.subplots(2, ncols, squeeze=False)
    for ax, (title, key) in zip(axes[0], scores):
        for run, color in zip(runs, colors):
            x, y = _series(run.validation, key)
            ax.plot(x, y, color=color, marker="o", markersize=3, linewidth=1.5)
            best = run.best
            if best is not None and key in best:
                ax.plot([best["epoch"]], [best[key]], color=color, marker="*", markersize=13, markeredgecolor="black")
        ax.set_title(plain_text(title))
    for ax, (title, task) in zip(axes[1], losses):
        for run, color in zip(runs, colors):
            ax.plot(*_series(run.train_losses, f"loss_train/{task}"), color=color, marker="o", markersize=3)
            ax.plot(*_series(run.validation, f"loss_val/{task}"), color=color, marker="s", markersize=3, linestyle="--")
        ax.set_title(plain_text(title))
    for row, used in ((axes[0], len(scores)), (axes[1], len(losses))):
        for ax in row[used:]:
            ax.set_visible(False)
    for ax in axes.flat:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
    axes[1][0].legend(
        [Line2D([], [], color="gray"), Line2D([], [], color="gray", linestyle="--")],
        ["train (mean over the epoch)", "val"],
        fontsize=8,
    )
    fig.legend(
        [Line2D([], [], color=c, marker="o") for c in colors],
        [plain_text(run.name) for run in runs],
        loc="outside upper center",
        ncols=min(len(runs), 4),
        frameon=False,
    )
    return figure_svg(fig)
