"""`mtl report`: one self-contained HTML page comparing runs.

Self-contained means it opens offline and can be mailed as one file: CSS is inline, charts are SVG and
pictures PNG, both embedded as base64 ``data:`` URIs, and there is no script. Every text that comes from
a run (names, config values, warnings) goes through ``html.escape``.

Generic over tasks and datasets: the summary columns and curves come from each task class (its summary
metric and label), the per-task tables from each task's ``metrics_task_<task>/…`` tags at the best epoch,
the legends from the task modules' ``picture`` and the dataset's classes, Δm from ``Task.delta_metrics``.
"""

from __future__ import annotations

import base64
import html
import io
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from mtl.reporting.delta import DELTA_FORMS, Delta, compute_deltas, delta_metrics
from mtl.reporting.events import latest_image
from mtl.reporting.plots import arrow, curves_svg, run_colors
from mtl.reporting.runs import Run, headlines, score_tag, task_order, task_summary
from mtl.reporting.table import NOT_COMPARED, SCORE_KINDS, Column, build_table, cell_text, config_text, differing_keys, shows_delta
from mtl.tasks import TASKS

OBSERVED_TAG = "valid/observed_samples"
# Direction of a task metric that its task does not declare (Task.metric_directions, Task.delta_metrics, the
# summary), from its name: accuracies and the δ < 1.25^k / within-angle percentages are higher-better, errors lower.
_HIGHER_WORDS = ("accuracy", "delta", "within", "iou", "precision", "recall", "f1", "psnr", "ssim")
_LOWER_WORDS = ("err", "mae", "mse", "rmse", "rel", "angle", "loss", "distance")

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #222; margin: 0; }
main { max-width: 1360px; margin: 0 auto; padding: 16px 24px 48px; }
h1 { font-size: 24px; margin: 8px 0 2px; }
h2 { font-size: 18px; margin: 32px 0 8px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
h3 { font-size: 15px; margin: 16px 0 6px; }
p.meta, p.note, figcaption { color: #555; font-size: 13px; }
code { background: #f3f3f3; padding: 0 3px; border-radius: 3px; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #ddd; padding: 3px 8px; white-space: nowrap; }
td.wrap { white-space: normal; min-width: 320px; }
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


def results_section(
    runs: list[Run], rows: list[dict[str, Any]], cols: list[Column], colors: dict[str, str]
) -> str:
    """The results table; the best value of each score column (headline, task summaries, Δm) among the runs is bold."""
    best = {}
    for col in cols:
        if col.kind not in SCORE_KINDS or col.higher_is_better is None:
            continue
        values = [r[col.key] for r in rows if _finite(r[col.key])]
        if values:
            best[col.key] = max(values) if col.higher_is_better else min(values)
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
            cells.append(f'<td class="{" ".join(classes)}">{esc(cell_text(c, row[c.key]))}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    scores = headlines(runs)
    rule = " or ".join(scores) + (", ties broken by total" if any(h != "total" for h in scores) else "")
    return (
        '<h2 id="results">Results</h2>'
        f"<p class=\"note\">Scores of each run's best validation epoch (0-based; the first epoch with the highest "
        f"{esc(rule)}: the one kept in best.ckpt). Columns between <i>model</i> and <i>best epoch</i> are the "
        "hyper-parameters that differ between these runs. <i>params</i>: trained parameters of the network "
        "(BatchNorm statistics excluded); <i>train time</i>: from TensorBoard event timestamps, summed over "
        "resumed sessions.</p>"
        f'<div class="scroll"><table id="results-table"><thead><tr>{head}</tr></thead>'
        f'<tbody>{"".join(body)}</tbody></table></div>' + _clipped_note(runs)
    )


def _clipped_note(runs: list[Run]) -> str:
    """A headline score clipped at 0 (the MiniScapes grader): for a run at 0 at every epoch only the total ranks epochs."""
    notes = []
    for score in headlines(runs):
        if score == "total":
            continue
        tag = score_tag(score)
        names = [r.name for r in runs if r.headline == score and r.validation and all(row.get(tag) == 0 for row in r.validation)]
        if names:
            notes.append(
                f'<p class="note warn">{esc(score.capitalize())} 0 at every epoch ({esc(", ".join(names))}): it is '
                "clipped at 0 until the task scores pass its thresholds, so the best epoch is the one with the highest "
                "total.</p>"
            )
    return "".join(notes)


def _metric_label(tag: str) -> str:
    return tag.rsplit("/", 1)[-1]


def _delta_label(metric: Any) -> str:
    """A Δm metric by name: the task's summary label for its summary tag (mIoU), else the tag's last part."""
    return task_summary(metric.task)[1] if metric.tag == f"metrics_summary/{metric.task}" else _metric_label(metric.tag)


def delta_section(runs: list[Run], deltas: Mapping[str, Delta], mode: str, colors: dict[str, str]) -> str:
    """How Δm was computed: the metrics of each task, and per multi-task run its baselines or what is missing."""
    multi = [run for run in runs if run.name in deltas]
    if not multi:
        return ""
    title = '<h2 id="delta">Δm against single-task baselines</h2>'
    tasks = task_order(multi)
    described = []
    for task in tasks:
        try:
            metrics = delta_metrics(task, mode)
        except ValueError as exc:
            described.append(f"{esc(task)}: {esc(exc)}")
            continue
        names = ", ".join(f"{esc(_delta_label(m))}{arrow(m.higher_is_better)}" for m in metrics)
        described.append(f"{esc(task)}: {names}")
    intro = (
        '<p class="note">Δ<sub>MTL</sub> = (100/K)·Σ<sub>k</sub> ±(M<sub>m,k</sub> − M<sub>b,k</sub>)/M<sub>b,k</sub> '
        "over the K metrics below (+ where higher is better, − where lower is; higher is better; Maninis et al. "
        "2019 — the Δm% ↓ of Nash-MTL and FAMO tables is its negative, LibMTL's Δp averages within each task first: "
        "<code>mtl results --delta_form</code>), each at the best epoch of the multi-task run "
        "(m) and of the single-task baseline (b) of its task: a single-task run of the same dataset, the one "
        "closest in configuration, or the one named with <code>--baseline TASK=RUN_DIR</code>. Metrics: "
        + "; ".join(described)
        + ".</p>"
    )
    if not shows_delta(deltas):
        return (
            title + intro + '<p class="note warn">No single-task baseline among these runs (needed: '
            + esc(", ".join(f"{t} on {d}" for d, t in dict.fromkeys((r.dataset, t) for r in multi for t in r.tasks)))
            + "). Train them with <code>mtl baselines -- &lt;the runs' train flags&gt;</code> or name them with "
            "<code>--baseline TASK=RUN_DIR</code>.</p>"
        )
    body = []
    form = DELTA_FORMS["maninis"]
    for run in multi:
        delta = deltas[run.name]
        value = "" if delta.value(form) is None else f"{delta.value(form):+.2f}"
        used = ", ".join(f"{task} ← {baseline.name}" for task, baseline in delta.baselines.items())
        terms = ", ".join(f"{_delta_label(m)} {t:+.2f}" for m, _, _, t in delta.terms)
        reason = f'<span class="warn">{esc(delta.reason)}</span>' if delta.reason else esc(terms)
        body.append(
            f'<tr><td>{run_label(run, colors)}</td><td class="num">{value}</td><td class="wrap">{esc(used)}</td>'
            f'<td class="wrap">{reason}</td></tr>'
        )
    return (
        title + intro + f'<div class="scroll"><table><thead><tr><th>run</th><th>{esc(form.label)}</th><th>baselines</th>'
        "<th>terms (%) or what is missing</th></tr></thead><tbody>" + "".join(body) + "</tbody></table></div>"
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


def metric_direction(task: str, tag: str) -> bool | None:
    """Whether a higher value of a task's metric is better: as the task declares it (``metric_directions``, an
    optional mapping tag → bool; ``delta_metrics``; its summary), else from the metric's name, else unknown."""
    cls = TASKS[task] if task in TASKS else None
    declared = dict(getattr(cls, "metric_directions", None) or {})
    declared.update({t: h for t, h in getattr(cls, "delta_metrics", ()) if t not in declared})
    if tag in declared:
        return bool(declared[tag])
    name = _metric_label(tag).lower()
    if cls is not None and name == cls.summary_name:
        return bool(cls.higher_is_better)
    if any(word in name for word in _HIGHER_WORDS):
        return True
    if any(word in name for word in _LOWER_WORDS):
        return False
    return None


def _class_names(task: str, runs: list[Run]) -> list[tuple[str, tuple[int, int, int]]]:
    """(class name, colour) of ``task`` in the datasets of ``runs`` (the ``class_names`` and ``class_colors`` of
    its facts, ``DatasetInfo.task_info``), in order, without repeats."""
    seen: dict[str, tuple[int, int, int]] = {}
    for run in runs:
        info = run.info
        facts = info.task_info.get(task) if info is not None else None
        for name, color in zip(getattr(facts, "class_names", ()), getattr(facts, "class_colors", ())):
            seen.setdefault(name, tuple(color))
    return list(seen.items())


def _class_tag(task: str, name: str) -> str:
    return f"metrics_task_{task}/{name.replace(' ', '_')}"


def class_table(task: str, runs: list[Run], colors: dict[str, str]) -> str:
    """Per-class scores (percent) of ``task``, classes × runs, shaded white (0) to green (100), its summary below;
    empty when the task logs no per-class metric."""
    classes = _class_names(task, runs)
    if not any(_class_tag(task, name) in run.best for run in runs for name, _ in classes):
        return ""
    _, label, _ = task_summary(task)
    head = "<th>class</th>" + "".join(f"<th>{run_label(run, colors)}</th>" for run in runs)
    body = []
    for name, color in classes:
        cells = [f"<td>{swatch('#%02x%02x%02x' % color)}{esc(name)}</td>"]
        for run in runs:
            value = run.best.get(_class_tag(task, name))
            if not _finite(value):
                cells.append(f'<td class="num">{"" if value is None else value}</td>')
            else:
                cells.append(f'<td class="num" style="background:{_iou_color(value)}">{value:.1f}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    summary = [run.best.get(f"metrics_summary/{task}") for run in runs]
    body.append(
        f"<tr><th>{esc(label)}</th>"
        + "".join(f'<th class="num">{"" if v is None else f"{v:.2f}"}</th>' for v in summary)
        + "</tr>"
    )
    return (
        f'<h3 id="classes-{esc(task)}">Per-class {esc(task)} scores</h3>'
        f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'
    )


def metric_table(task: str, runs: list[Run], colors: dict[str, str]) -> str:
    """Every other ``metrics_task_<task>/…`` value at the best epoch: metrics × runs, ↑/↓ and the best run in bold
    where the direction is known. Order: the summary metric, the Δm metrics, then alphabetical."""
    prefix = f"metrics_task_{task}/"
    per_class = {_class_tag(task, name) for name, _ in _class_names(task, runs)}
    tags = sorted({k for run in runs for k in run.best if k.startswith(prefix) and k not in per_class})
    if not tags:
        return ""
    cls = TASKS[task] if task in TASKS else None
    first = [prefix + cls.summary_name] if cls is not None else []
    first += [t for t, _ in getattr(cls, "delta_metrics", ())]
    tags = [t for t in dict.fromkeys(first) if t in tags] + [t for t in tags if t not in first]
    head = "<th>metric</th>" + "".join(f"<th>{run_label(run, colors)}</th>" for run in runs)
    body = []
    for tag in tags:
        higher = metric_direction(task, tag)
        values = [run.best.get(tag) for run in runs]
        known = [v for v in values if _finite(v)]
        top = (max(known) if higher else min(known)) if known and higher is not None else None
        cells = [f"<td>{esc(_metric_label(tag))}{arrow(higher)}</td>"]
        for value in values:
            text = "" if value is None else f"{value:.3f}"
            cells.append(f'<td class="num{" best" if value is not None and value == top else ""}">{text}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (
        f'<h3 id="metrics-{esc(task)}">{esc(task)} metrics</h3>'
        f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'
    )


def task_sections(runs: list[Run], colors: dict[str, str]) -> str:
    """Per task (side by side): its per-class table and its metric table at the best epoch."""
    sections = []
    for task in task_order(runs):
        with_task = [run for run in runs if task in run.tasks and run.best is not None]
        if with_task:
            content = class_table(task, with_task, colors) + metric_table(task, with_task, colors)
            if content:
                sections.append(f"<section>{content}</section>")
    if not sections:
        return ""
    return (
        '<h2 id="tasks">Task metrics at the best epoch</h2>'
        '<p class="note">Validation values at each run\'s best epoch, as logged: per-class scores in percent (IoU '
        "for a segmentation; cells shaded from white, 0, to green, 100; the task's summary below), depth errors in "
        "metres where they have a unit, angles in degrees. ↑/↓: the better direction; the best run per metric is "
        f'bold.</p><div class="side">{"".join(sections)}</div>'
    )


def _png(picture: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(picture).save(buffer, format="PNG")
    return buffer.getvalue()


def _hex(rgb: Sequence[int]) -> str:
    return "#%02x%02x%02x" % tuple(int(c) for c in rgb[:3])


def task_legend(task: str, runs: list[Run]) -> str:
    """The legend of a task's pictures, drawn by the task module itself: for a task with one output channel per
    class of its facts (``class_names``), the class colours and its ignore colour; for a task with one float
    channel, its colour map over its facts' ``value_range`` (log scale, in their ``unit``) and its invalid colour.
    Empty for other tasks."""
    import torch

    info = next((run.info for run in runs if task in run.tasks), None)
    if info is None or task not in TASKS:
        return ""
    try:
        instance = TASKS[task](info)
        facts = instance.task_info  # a task that needs facts the dataset does not give raises: no legend
        channels = instance.output().channels
        names = tuple(getattr(facts, "class_names", ()))
        if names and channels == len(names):
            ignore = instance.picture(torch.full((1, 1), facts.ignore_index, dtype=torch.int64))[0, 0]
            items = "".join(
                f"<span>{swatch(_hex(color))}{esc(name)}</span>" for name, color in zip(names, facts.class_colors)
            )
            return f'<div class="legend">{items}<span>{swatch(_hex(ignore))}{esc(task)}: ignore</span></div>'
        if channels == 1 and str(instance.target_dtype).startswith("float") and hasattr(facts, "value_range"):
            lo, hi = facts.value_range
            ramp = torch.from_numpy(np.geomspace(lo, hi, 160)[None, :].astype(np.float32))
            row = instance.picture(ramp)
            invalid = instance.picture(torch.full((1, 1), math.nan))[0, 0]
            bar = data_uri("image/png", _png(np.repeat(row, 12, axis=0)))
            unit = str(getattr(facts, "unit", "m"))
            short = f" {unit}" if unit == "m" else ""  # metres on the ends; another unit said once, in words
            scale = "log scale" if unit == "m" else f"log scale; {unit}"
            return (
                f'<div class="legend"><span>{esc(task)}: {lo:g}{short} <img alt="{esc(task)} colour scale" width="160" '
                f'height="12" src="{bar}"> {hi:g}{short} ({esc(scale)}); {swatch(_hex(invalid))}invalid</span></div>'
            )
    except Exception:  # a plug-in's picture that does not take these values: no legend, the pictures still show
        return ""
    return ""


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
        panels = ["RGB", *(f"{kind} {task}" for task in run.tasks for kind in ("GT", "predicted"))]
        figures.append(
            f"<figure><figcaption>{run_label(run, colors)} — last validation ({esc(when)}); columns: "
            f"{esc(' | '.join(panels))}</figcaption>"
            f'<img alt="{esc(run.name)} observed validation samples" {_display_size(picture.width, picture.height)} '
            f'src="{data_uri("image/png", picture.png)}"></figure>'
        )
    legends = "".join(task_legend(task, runs) for task in task_order(runs))
    notes_html = "".join(f'<p class="note warn">{esc(note)}</p>' for note in notes)
    return (
        '<h2 id="predictions">Predictions on the observed validation samples</h2>'
        + legends
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


def render_report(
    runs: list[Run],
    runs_dir: str | Path,
    sort: str | None = None,
    problems: Sequence[str] = (),
    deltas: Mapping[str, Delta] | None = None,
    delta_mode: str = "declared",
    delta_forms: Sequence[str] = ("maninis",),
) -> str:
    """The whole page as a string. ``problems``: messages about runs that could not be read, shown at the end;
    ``deltas``: Δm by run name (default: against the single-task runs among ``runs``, with ``delta_mode``), shown
    in each of ``delta_forms`` (mtl.reporting.delta.DELTA_FORMS)."""
    deltas = compute_deltas(runs, mode=delta_mode) if deltas is None else deltas
    cols, rows = build_table(runs, sort, deltas, [DELTA_FORMS[name] for name in delta_forms])
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
        + delta_section(ordered, deltas, delta_mode, colors)
        + curves_section(ordered, colors)
        + task_sections(ordered, colors)
        + predictions_section(ordered, colors)
        + config_section(ordered, colors)
        + warnings_html
        + "</main></body></html>\n"
    )
