"""`mtl report`: one self-contained HTML page comparing runs.

Self-contained means it opens offline and can be mailed as one file: CSS is inline, charts are SVG and
pictures PNG, both embedded as base64 ``data:`` URIs, and there is no script. Every text that comes from
a run (names, config values, warnings) goes through ``html.escape``.
"""

from __future__ import annotations

import base64
import html
import io
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from mtl.data.classes import CLASS_COLORS, CLASS_NAMES
from mtl.data.formats import ZMAX, ZMIN
from mtl.metrics import DEPTH_METRIC_NAMES
from mtl.reporting.events import latest_image
from mtl.reporting.plots import curves_svg, run_colors
from mtl.reporting.runs import GRADER, MIOU, SI_LOG_RMSE, Run
from mtl.reporting.table import NOT_COMPARED, Column, build_table, cell_text, config_text, differing_keys

OBSERVED_TAG = "valid/observed_samples"
_BEST_IS_MAX = {"grader": True, "miou": True, "si_log_rmse": False}
# Depth metrics where higher is better (the δ < 1.25^k accuracies); every other one is an error.
_DEPTH_HIGHER_BETTER = {"delta1", "delta2", "delta3"}

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #222; margin: 0; }
main { max-width: 1360px; margin: 0 auto; padding: 16px 24px 48px; }
h1 { font-size: 24px; margin: 8px 0 2px; }
h2 { font-size: 18px; margin: 32px 0 8px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
p.meta, p.note, figcaption { color: #555; font-size: 13px; }
code { background: #f3f3f3; padding: 0 3px; border-radius: 3px; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #ddd; padding: 3px 8px; white-space: nowrap; }
th { background: #f5f5f5; font-weight: 600; }
td.num, th.num { text-align: right; }
.side { display: flex; flex-wrap: wrap; gap: 0 40px; align-items: flex-start; }
td.best { font-weight: 700; }
.swatch { display: inline-block; width: 11px; height: 11px; margin-right: 5px; vertical-align: -1px;
          border: 1px solid rgba(0, 0, 0, .35); }
img.chart { width: 100%; height: auto; }
figure { margin: 12px 0 22px; }
figure img { max-width: 100%; height: auto; border: 1px solid #ddd; }
figure img.small { image-rendering: pixelated; }
.legend { display: flex; flex-wrap: wrap; gap: 4px 14px; font-size: 12px; color: #444; margin: 6px 0; }
.legend img { vertical-align: middle; border: 1px solid #999; }
.warn, p.note.warn { color: #8a4b00; }
details { margin: 4px 0; }
summary { cursor: pointer; }
"""


def data_uri(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def swatch(color: str) -> str:
    return f'<span class="swatch" style="background:{esc(color)}"></span>'


def run_label(run: Run, colors: dict[str, str]) -> str:
    return swatch(colors[run.name]) + esc(run.name)


def results_section(runs: list[Run], rows: list[dict[str, Any]], cols: list[Column], colors: dict[str, str]) -> str:
    """The results table; the best grader, mIoU and SI-logRMSE among the runs are bold."""
    best = {}
    for key, is_max in _BEST_IS_MAX.items():
        values = [r[key] for r in rows if _finite(r[key])]
        if values:
            best[key] = max(values) if is_max else min(values)
    by_name = {run.name: run for run in runs}
    head = "".join(f"<th>{esc(c.label)}</th>" for c in cols)
    body = []
    for row in rows:
        cells = []
        for c in cols:
            if c.key == "name":
                cells.append(f"<td>{run_label(by_name[row['name']], colors)}</td>")
                continue
            classes = (["num"] if c.numeric else []) + (["best"] if c.key in best and row[c.key] == best[c.key] else [])
            cells.append(f'<td class="{" ".join(classes)}">{esc(cell_text(c.key, row[c.key]))}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (
        '<h2 id="results">Results</h2>'
        '<p class="note">Scores of each run\'s best validation epoch (0-based; the first epoch with the highest '
        "grader, ties broken by total: the one kept in best.ckpt). Columns between <i>model</i> and <i>best epoch</i> are the "
        "hyper-parameters that differ between these runs. <i>params</i>: trained parameters of the network "
        "(BatchNorm statistics excluded); <i>train time</i>: from TensorBoard event timestamps, summed over "
        "resumed sessions.</p>"
        f'<div class="scroll"><table id="results-table"><thead><tr>{head}</tr></thead>'
        f'<tbody>{"".join(body)}</tbody></table></div>' + _clipped_note(runs)
    )


def _clipped_note(runs: list[Run]) -> str:
    """The grader is clipped at 0: for a run that never passed mIoU 50 or SI-logRMSE 50 only the total ranks epochs."""
    names = [run.name for run in runs if run.validation and all(row.get(GRADER) == 0 for row in run.validation)]
    if not names:
        return ""
    return (
        f'<p class="note warn">Grader 0 at every epoch ({esc(", ".join(names))}): it is clipped at 0 below mIoU 50 '
        "and above SI-logRMSE 50, so the best epoch is the one with the highest total (mIoU − SI-logRMSE).</p>"
    )


def curves_section(runs: list[Run], colors: dict[str, str]) -> str:
    svg = curves_svg(runs, [colors[run.name] for run in runs])
    if svg is None:
        return '<h2 id="curves">Training curves</h2><p class="note">No run has finished a validation yet.</p>'
    return (
        '<h2 id="curves">Training curves</h2>'
        '<p class="note">Validation scores per epoch (★ = best epoch); losses per epoch, training as the mean of '
        "the values logged during the epoch (solid), validation over the whole split (dashed).</p>"
        f'<img class="chart" alt="training curves" src="{data_uri("image/svg+xml", svg)}">'
    )


def _iou_color(iou: float) -> str:
    """White at 0 % to green at 100 % (linear), dark enough text stays readable on it."""
    t = min(max(iou / 100.0, 0.0), 1.0)
    r, g, b = (round(255 + t * (end - 255)) for end in (65, 171, 93))
    return f"#{r:02x}{g:02x}{b:02x}"


def class_iou_section(runs: list[Run], colors: dict[str, str]) -> str:
    with_semseg = [run for run in runs if run.best is not None and MIOU in run.best]
    title = '<h2 id="classes">Per-class IoU at the best epoch</h2>'
    if not with_semseg:
        return title + '<p class="note">No run has semseg scores.</p>'
    head = "<th>class</th>" + "".join(f"<th>{run_label(run, colors)}</th>" for run in with_semseg)
    body = []
    for name, color in zip(CLASS_NAMES, CLASS_COLORS):
        cells = [f"<td>{swatch('#%02x%02x%02x' % color)}{esc(name)}</td>"]
        for run in with_semseg:
            iou = run.best.get(f"metrics_task_semseg/{name.replace(' ', '_')}")
            if not _finite(iou):
                cells.append(f'<td class="num">{"" if iou is None else iou}</td>')
            else:
                cells.append(f'<td class="num" style="background:{_iou_color(iou)}">{iou:.1f}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    body.append(
        "<tr><th>mIoU</th>" + "".join(f'<th class="num">{run.best[MIOU]:.2f}</th>' for run in with_semseg) + "</tr>"
    )
    return (
        title + '<p class="note">IoU in percent; cell colour from white (0) to green (100).</p>'
        f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'
    )


def depth_section(runs: list[Run], colors: dict[str, str]) -> str:
    with_depth = [run for run in runs if run.best is not None and SI_LOG_RMSE in run.best]
    if not with_depth:
        return ""
    head = "<th>metric</th>" + "".join(f"<th>{run_label(run, colors)}</th>" for run in with_depth)
    body = []
    for metric in DEPTH_METRIC_NAMES:
        values = [run.best.get(f"metrics_task_depth/{metric}") for run in with_depth]
        known = [v for v in values if _finite(v)]
        top = (max(known) if metric in _DEPTH_HIGHER_BETTER else min(known)) if known else None
        arrow = "↑" if metric in _DEPTH_HIGHER_BETTER else "↓"
        cells = [f"<td>{esc(metric)} {arrow}</td>"]
        for value in values:
            text = "" if value is None else f"{value:.3f}"
            cells.append(f'<td class="num{" best" if value is not None and value == top else ""}">{text}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (
        '<h2 id="depth">Depth metrics at the best epoch</h2>'
        '<p class="note">Averages over validation images, in metres where they have a unit; the best run per '
        "metric is bold.</p>"
        f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'
    )


def _depth_scale_png() -> bytes:
    """A small near-to-far colour bar, drawn with the same colour map as the logged depth pictures."""
    import torch

    from mtl.datasets import DATASETS
    from mtl.tasks import TASKS

    depth = TASKS["depth"](DATASETS["miniscapes"].info)
    row = depth.picture(torch.from_numpy(np.geomspace(ZMIN, ZMAX, 160)[None, :].astype(np.float32)))
    buffer = io.BytesIO()
    Image.fromarray(np.repeat(row, 12, axis=0)).save(buffer, format="PNG")
    return buffer.getvalue()


def _display_size(width: int, height: int, target: int = 640) -> str:
    """Attributes that show small pictures (tiny validation images) enlarged by a whole factor, pixels kept sharp."""
    factor = max(1, target // width)
    small = ' class="small"' if factor > 1 else ""
    return f'width="{width * factor}" height="{height * factor}"{small}'


def predictions_section(runs: list[Run], colors: dict[str, str]) -> str:
    figures, notes = [], []
    for run in runs:
        try:
            picture = latest_image(run.path, OBSERVED_TAG)
        except ValueError as exc:
            notes.append(str(exc))
            continue
        if picture is None:
            notes.append(f"{run.name}: no {OBSERVED_TAG} picture logged")
            continue
        epochs = [int(row["epoch"]) for row in run.validation if int(row.get("step", -1)) == picture.step]
        when = f"epoch {epochs[-1]}, step {picture.step}" if epochs else f"step {picture.step}"
        tasks = run.config.get("tasks", ["semseg", "depth"])
        panels = ["RGB"]
        panels += ["GT semseg", "predicted semseg"] if "semseg" in tasks else []
        panels += ["GT depth", "predicted depth"] if "depth" in tasks else []
        figures.append(
            f"<figure><figcaption>{run_label(run, colors)} — last validation ({esc(when)}); columns: "
            f"{esc(' | '.join(panels))}</figcaption>"
            f'<img alt="{esc(run.name)} observed validation samples" {_display_size(picture.width, picture.height)} '
            f'src="{data_uri("image/png", picture.png)}"></figure>'
        )
    class_legend = "".join(
        f"<span>{swatch('#%02x%02x%02x' % color)}{esc(name)}</span>" for name, color in zip(CLASS_NAMES, CLASS_COLORS)
    )
    depth_legend = (
        f'<span>depth: 4 m <img alt="depth colour scale" width="160" height="12" '
        f'src="{data_uri("image/png", _depth_scale_png())}"> 300 m (log scale); black = invalid; '
        "white semseg = ignore</span>"
    )
    notes_html = "".join(f'<p class="note warn">{esc(note)}</p>' for note in notes)
    return (
        '<h2 id="predictions">Predictions on the observed validation samples</h2>'
        f'<div class="legend">{class_legend}</div><div class="legend">{depth_legend}</div>'
        + "".join(figures)
        + notes_html
    )


def config_section(runs: list[Run], colors: dict[str, str]) -> str:
    differing = set(differing_keys(runs))
    blocks = []
    for run in runs:
        rows = "".join(
            f"<tr><td>{'<b>' + esc(key) + '</b>' if key in differing else esc(key)}</td>"
            f"<td>{esc(config_text(value))}</td></tr>"
            for key, value in sorted(run.config.items())
            if key not in NOT_COMPARED
        )
        blocks.append(
            f"<details><summary>{run_label(run, colors)} <code>{esc(run.path)}</code></summary>"
            f"<table><tbody>{rows}</tbody></table></details>"
        )
    return (
        '<h2 id="config">Configurations</h2>'
        '<p class="note">Experiment hyper-parameters of each run (from config.yaml); bold keys differ between '
        "runs.</p>" + "".join(blocks)
    )


def render_report(runs: list[Run], runs_dir: str | Path, sort: str = "grader", problems: Sequence[str] = ()) -> str:
    """The whole page as a string. ``problems``: messages about runs that could not be read, shown at the end."""
    cols, rows = build_table(runs, sort)
    by_name = {run.name: run for run in runs}
    ordered = [by_name[row["name"]] for row in rows]
    colors = dict(zip((run.name for run in ordered), run_colors(len(ordered))))
    warnings = list(problems) + [w for run in ordered for w in run.warnings]
    warnings_html = (
        '<h2 id="warnings">Warnings</h2>' + "".join(f'<p class="warn">{esc(w)}</p>' for w in warnings)
        if warnings
        else ""
    )
    generated = time.strftime("%Y-%m-%d %H:%M")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>mtl report: {esc(Path(runs_dir).name)}</title><style>{CSS}</style></head><body><main>"
        f"<h1>mtl report</h1><p class=\"meta\">{len(runs)} run{'s' if len(runs) != 1 else ''} under "
        f"<code>{esc(runs_dir)}</code>; generated {esc(generated)}.</p>"
        + results_section(ordered, rows, cols, colors)
        + curves_section(ordered, colors)
        + f'<div class="side"><section>{class_iou_section(ordered, colors)}</section>'
        + f"<section>{depth_section(ordered, colors)}</section></div>"
        + predictions_section(ordered, colors)
        + config_section(ordered, colors)
        + warnings_html
        + "</main></body></html>\n"
    )

