"""Δm: a multi-task run against single-task baselines of the same dataset, in the three forms papers print
(SPEC §10). Each metric k gives a relative change signed so that an improvement is positive,

    t_k = 100 · (−1)^{l_k} · (M_m,k − M_b,k) / M_b,k        (l_k = 1 where lower is better),

and the forms average them differently (``DELTA_FORMS``):

- ``maninis`` — Δ_MTL% ↑ = mean of t_k over the K metrics (Maninis et al. 2019; MTI-Net and MTL-PyTorch print it;
  higher is better). mtl printed this figure, unnamed, before the forms were named.
- ``mtan`` — Δm% ↓ = −mean of t_k (CAGrad, Nash-MTL and FAMO tables on the MTAN data copies; their ``delta_fn``:
  lower is better, an improvement is negative).
- ``libmtl`` — Δp% ↑ = mean over tasks of the mean of t_k within each task (LibMTL's ``count_improvement``, which
  returns a fraction; here in percent). It differs from ``maninis`` when tasks have different numbers of metrics
  (NYUv2: 2 + 2 + 5), not on Cityscapes (2 + 2).

Each task declares its metrics (``Task.delta_metrics``: TensorBoard tag, higher is better); ``mode="summary"``
uses each task's summary metric instead (the course setting: mIoU and SI-logRMSE), ``mode="primary"`` the one
metric per task of the Δ_MTL that ASTMT, MTI-Net and MTL-PyTorch print (``Task.delta_primary``: semseg and human
parts mIoU, depth RMSE, normals mean angle, saliency mIoU, edges odsF; MTL-PyTorch's
``calculate_multi_task_performance``), and ``mode="auto"`` the mode of the runs' evaluation protocol
(``MODE_OF_PROTOCOL``: ``mtl_pytorch`` → ``primary``, the others → ``declared``). Values are read at each run's best
epoch.

Baselines. A single-task run (one task in its config.yaml) of the same dataset is a baseline for that task.
Explicit ones (``--baseline TASK=RUN_DIR``) win over the runs found, for the runs of their dataset. When
several runs could serve, the one whose configuration is closest to the multi-task run's is taken: fewest
differing experiment flags (``dataset_root`` included; the tasks, the loss weights and the weighting method
left out, as they must differ), ties by name. Nothing here names a task: metrics come from the task classes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mtl.config import NON_EXPERIMENT_KEYS
from mtl.reporting import DELTA_MODES as MODES
from mtl.reporting.runs import Run, summary_tag
from mtl.tasks import TASKS

# Flags that necessarily differ between a multi-task run and its single-task baselines, or name the run.
_NOT_MATCHED = frozenset({"tasks", "loss_weighting", "name", "log_dir"})


@dataclass(frozen=True)
class DeltaMetric:
    task: str
    tag: str
    higher_is_better: bool


Term = tuple[DeltaMetric, float, float, float]  # (metric, M_m, M_b, t: the change in %, positive = better)


@dataclass(frozen=True)
class DeltaForm:
    """One published way of averaging the terms into a single figure."""

    name: str
    label: str  # the column header, with its direction
    latex: str
    higher_is_better: bool
    per_task: bool  # average within each task first, then over tasks (LibMTL)
    source: str

    def value(self, terms: Sequence[Term]) -> float:
        if self.per_task:
            by_task: dict[str, list[float]] = {}
            for metric, _, _, t in terms:
                by_task.setdefault(metric.task, []).append(t)
            mean = sum(sum(ts) / len(ts) for ts in by_task.values()) / len(by_task)
        else:
            mean = sum(t for *_, t in terms) / len(terms)
        return mean if self.higher_is_better else -mean


DELTA_FORMS: dict[str, DeltaForm] = {
    "maninis": DeltaForm("maninis", "Δ_MTL% ↑", r"$\Delta_{\mathrm{MTL}}\%\uparrow$", True, False,
                         "Maninis et al. 2019 (ASTMT), MTI-Net, MTL-PyTorch"),
    "mtan": DeltaForm("mtan", "Δm% ↓", r"$\Delta m\%\downarrow$", False, False,
                      "CAGrad, Nash-MTL and FAMO tables (their delta_fn)"),
    "libmtl": DeltaForm("libmtl", "Δp% ↑", r"$\Delta_{p}\%\uparrow$", True, True, "LibMTL (count_improvement)"),
}


# The form of the tables each evaluation protocol's numbers go into (``--delta_form auto``).
FORM_OF_PROTOCOL = {"course": "maninis", "mtan": "mtan", "libmtl": "libmtl", "mtl_pytorch": "maninis"}
# The metrics of those tables' Δ (``--delta_metrics auto``); a protocol not named here: ``declared``.
MODE_OF_PROTOCOL = {"mtl_pytorch": "primary"}


def mode_for(mode: str, protocols: Sequence[str]) -> str:
    """``--delta_metrics`` resolved: ``auto`` → the mode of the runs' protocols (``MODE_OF_PROTOCOL``) when they all
    have the same, else ``declared``; any other mode as given."""
    if mode != "auto":
        return mode
    modes = {MODE_OF_PROTOCOL.get(p, "declared") for p in protocols}
    return modes.pop() if len(modes) == 1 else "declared"


def forms_for(names: Sequence[str], protocols: Sequence[str]) -> list[DeltaForm]:
    """The forms ``--delta_form`` names; ``auto``: the form of each protocol among the runs', in that order."""
    chosen = [FORM_OF_PROTOCOL.get(p, "maninis") for p in protocols] if list(names) == ["auto"] else list(names)
    return [delta_form(name) for name in dict.fromkeys(chosen)] or [DELTA_FORMS["maninis"]]


def delta_form(name: str) -> DeltaForm:
    if name not in DELTA_FORMS:
        raise ValueError(f"--delta_form: expected one of {', '.join(DELTA_FORMS)}, got {name!r}")
    return DELTA_FORMS[name]


@dataclass
class Delta:
    """Δm of one multi-task run, or why it is empty."""

    terms: list[Term] = field(default_factory=list)
    baselines: dict[str, Any] = field(default_factory=dict)  # task → the run (or published figures) used as baseline
    missing: list[str] = field(default_factory=list)  # tasks without a baseline
    problems: list[str] = field(default_factory=list)  # other reasons for an empty value

    def value(self, form: DeltaForm) -> float | None:
        return form.value(self.terms) if self.terms and not self.missing and not self.problems else None

    @property
    def reason(self) -> str:
        """Why the value is empty, in one line ('' when there is a value)."""
        if self.terms and not self.missing and not self.problems:
            return ""
        parts = []
        if self.missing:
            parts.append("no single-task baseline for " + ", ".join(self.missing))
        return "; ".join(parts + self.problems)


def delta_metrics(task: str, mode: str = "declared") -> tuple[DeltaMetric, ...]:
    """The metrics of ``task`` that enter Δm: its declared ones, its ``delta_primary`` (mode ``primary``), or (mode
    ``summary``, or none declared) its summary metric. ``auto`` must be resolved first (``mode_for``)."""
    if mode not in MODES or mode == "auto":
        raise ValueError(f"--delta_metrics: expected one of {[m for m in MODES if m != 'auto']}, got {mode!r}")
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}: its Δm metrics are not known")
    cls = TASKS[task]
    if mode == "primary" and cls.delta_primary is not None:
        tag, higher = cls.delta_primary
        return (DeltaMetric(task, tag, bool(higher)),)
    declared = tuple(cls.delta_metrics) if mode == "declared" else ()
    if not declared:
        return (DeltaMetric(task, summary_tag(task), bool(cls.higher_is_better)),)
    return tuple(DeltaMetric(task, tag, bool(higher)) for tag, higher in declared)


def delta_terms(
    model: Mapping[str, float], baselines: Mapping[str, Mapping[str, float]], metrics: Sequence[DeltaMetric]
) -> list[Term]:
    """Each metric's term: the relative change in percent of ``model`` (tag → value) against ``baselines``
    (task → tag → value), signed so that an improvement is positive. KeyError names a missing tag;
    ZeroDivisionError a baseline value of 0."""
    terms = []
    for metric in metrics:
        m, b = model[metric.tag], baselines[metric.task][metric.tag]
        if b == 0:
            raise ZeroDivisionError(metric.tag)
        sign = 1.0 if metric.higher_is_better else -1.0
        terms.append((metric, m, b, 100.0 * sign * (m - b) / b))
    return terms


def is_baseline(run: Run) -> bool:
    """A single-task run that reached a validation: it can serve as a baseline."""
    return len(run.tasks) == 1 and run.best is not None


def _text(value: object) -> str:
    return ",".join(str(v) for v in value) if isinstance(value, (list, tuple)) else str(value)


def config_distance(a: Run, b: Run) -> int:
    """Experiment flags (dataset_root and num_epochs included) whose values differ between two runs; a missing
    key differs."""
    ignored = (NON_EXPERIMENT_KEYS - {"dataset_root", "num_epochs"}) | _NOT_MATCHED
    keys = {k for k in (*a.config, *b.config) if k not in ignored and not k.startswith("loss_weight_")}
    return sum(_text(a.config.get(k)) != _text(b.config.get(k)) or (k in a.config) != (k in b.config) for k in keys)


def choose_baseline(run: Run, task: str, candidates: Iterable[Run]) -> Run | None:
    """The single-task run of ``task`` on ``run``'s dataset closest to ``run``'s configuration (ties by name)."""
    fitting = [c for c in candidates if c is not run and c.tasks == (task,) and c.dataset == run.dataset and c.best]
    if not fitting:
        return None
    return min(fitting, key=lambda c: (config_distance(run, c), c.name))


def compute_deltas(
    runs: Sequence[Run], explicit: Mapping[str, Run] | None = None, mode: str = "auto"
) -> dict[str, Delta]:
    """Δm of every multi-task run (by run name), over the metrics of ``mode`` (``auto``: resolved from the runs'
    protocols, ``mode_for``). Baselines: ``explicit`` (task → a run, or published figures, see
    mtl.reporting.published) for runs of its dataset, else the closest single-task run among ``runs``. Runs with
    one task get no entry."""
    explicit = dict(explicit or {})
    mode = mode_for(mode, [run.eval_protocol for run in runs])
    candidates = [run for run in runs if is_baseline(run)]
    out: dict[str, Delta] = {}
    for run in runs:
        if len(run.tasks) < 2:
            continue
        delta = out[run.name] = Delta()
        for task in run.tasks:
            chosen = explicit.get(task)
            if chosen is None or chosen.dataset != run.dataset:
                chosen = choose_baseline(run, task, candidates)
            elif getattr(chosen, "problem", None) and chosen.problem(run.config):  # published figures
                delta.problems.append(chosen.problem(run.config))
            if chosen is None:
                delta.missing.append(task)
            else:
                delta.baselines[task] = chosen
        best = run.best
        if delta.missing or delta.problems:
            continue
        if best is None:
            delta.problems.append("no validation yet")
            continue
        try:
            metrics = [m for task in run.tasks for m in delta_metrics(task, mode)]
        except ValueError as exc:
            delta.problems.append(str(exc))
            continue
        values = {task: dict(baseline.best or {}) for task, baseline in delta.baselines.items()}
        lacking = [f"{m.tag} ({run.name})" for m in metrics if not _finite(best.get(m.tag))]
        lacking += [f"{m.tag} ({delta.baselines[m.task].name})" for m in metrics if not _finite(values[m.task].get(m.tag))]
        if lacking:
            delta.problems.append("not logged at the best epoch: " + ", ".join(lacking))
            continue
        try:
            delta.terms = delta_terms(best, values, metrics)
        except ZeroDivisionError as exc:
            delta.problems.append(f"baseline {exc} is 0: no relative change")
    return out


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)
