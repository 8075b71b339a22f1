"""Finding run directories and reading what each one logged.

A run directory is any folder holding both ``config.yaml`` and ``metrics.csv``. Its dataset and tasks are
in ``config.yaml`` (``dataset``, default miniscapes; ``tasks``, else the tasks whose summaries were logged,
else the dataset's default tasks). Its validation rows (those with a ``metrics_summary/…`` value) give one
entry per validated epoch; the best epoch is the first one with the highest ``checkpoint_rank`` of the
run's dataset (MiniScapes: the grader, ties broken by total), the same rule as the trainer's ``best.ckpt``
(a later exact tie does not replace it).
"""

from __future__ import annotations

import argparse
import csv
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mtl.datasets import DATASETS, DatasetInfo, DatasetLayout
from mtl.inference.checkpoint import read_checkpoint
from mtl.reporting.events import training_time
from mtl.tasks import TASKS

SUMMARY = "metrics_summary/"
DEFAULT_DATASET = "miniscapes"  # `mtl train --dataset`'s default: what a config without the key trained on
# BatchNorm buffers are saved in the state_dict but are not trained parameters.
_BUFFER_SUFFIXES = (".running_mean", ".running_var", ".num_batches_tracked")


def summary_tag(task: str) -> str:
    """The TensorBoard tag of a task's summary metric (e.g. mIoU for semseg)."""
    return f"{SUMMARY}{task}"


def score_tag(score: str) -> str:
    """The tag of a dataset score (``grader``, ``total``)."""
    return f"{SUMMARY}{score}"


def task_summary(task: str) -> tuple[str, str, bool | None]:
    """(key, label, higher is better) of a task's summary metric, from the task class (``miou``, "mIoU", True);
    an unknown task (a plug-in not installed here) is shown by its name, direction unknown."""
    cls = TASKS[task] if task in TASKS else None
    if cls is None:
        return task, task, None
    return cls.summary_name, cls.summary_label, bool(cls.higher_is_better)


def task_order(runs: list[Run]) -> list[str]:
    """Every task of the runs, in their datasets' order (MiniScapes: semseg, depth, normals), then as met."""
    present = {task for run in runs for task in run.tasks}
    order: list[str] = []
    for run in runs:
        info = run.info
        for task in (*(info.tasks if info is not None else ()), *run.tasks):
            if task in present and task not in order:
                order.append(task)
    return order


def headlines(runs: list[Run]) -> list[str]:
    """The headline score of each dataset among the runs, in order (MiniScapes: grader)."""
    return list(dict.fromkeys(run.headline for run in runs))


class _Scores(dict):
    """Scores of one validation row for ``checkpoint_rank``; a score the row lacks counts as 0 (e.g. no total)."""

    def __missing__(self, key: str) -> float:
        return 0.0


class RunFormatError(ValueError):
    """A run directory file that cannot be read; the message names the file."""


@dataclass
class Run:
    path: Path
    name: str
    config: dict[str, Any]
    validation: list[dict[str, float]]  # one per validated epoch, in logging order; always has "epoch"
    train_losses: list[dict[str, float]]  # per validated epoch: mean of the training losses logged in it
    params: int | None = None
    train_time_s: float | None = None
    hardware: dict[str, Any] | None = None  # hardware.yaml: the machine and the precision actually used
    warnings: list[str] = field(default_factory=list)

    @property
    def dataset(self) -> str:
        return str(self.config.get("dataset") or DEFAULT_DATASET)

    @property
    def layout(self) -> type[DatasetLayout]:
        """The run's dataset layout class (its scores and classes); the base layout for an unknown dataset."""
        return DATASETS[self.dataset] if self.dataset in DATASETS else DatasetLayout

    @property
    def info(self) -> DatasetInfo | None:
        """The dataset's facts for this run (its classes may depend on its flags: ``info_for``); None for a dataset
        that is not installed here."""
        layout = self.layout
        if not hasattr(layout, "info"):
            return None
        try:
            return layout.info_for(argparse.Namespace(**self.config))
        except Exception:  # an older layout without info_for, or flags it does not find: the layout's own facts
            return layout.info

    @property
    def eval_protocol(self) -> str:
        """How the run's validation metrics were computed (mtl.metrics.protocol); runs recorded before protocols
        were named computed them the course's way."""
        return str(self.config.get("eval_protocol") or "course")

    @property
    def headline(self) -> str:
        """The dataset's headline score (MiniScapes: grader; otherwise total)."""
        return self.layout.headline

    @property
    def tasks(self) -> tuple[str, ...]:
        """The tasks the run trained: config.yaml's ``tasks``; else those whose summary was logged; else the
        dataset's default tasks."""
        tasks = self.config.get("tasks")
        if isinstance(tasks, str):
            tasks = [t for t in tasks.split(",") if t]
        if tasks:
            return tuple(str(t) for t in tasks)
        logged = {key[len(SUMMARY):] for row in self.validation for key in row if key.startswith(SUMMARY)}
        info = self.info
        order = dict.fromkeys([*(info.tasks if info is not None else ()), *TASKS])
        known = tuple(t for t in order if t in logged)
        if known:
            return known
        return tuple(info.default_tasks) if info is not None else ()

    def rank(self, row: dict[str, float]) -> float:
        """The dataset's checkpoint rank of a validation row (higher is better)."""
        scores = _Scores({key[len(SUMMARY):]: value for key, value in row.items() if key.startswith(SUMMARY)})
        return float(self.layout.checkpoint_rank(scores))

    @property
    def best(self) -> dict[str, float] | None:
        """The validation row of the best epoch (first maximum of the dataset's checkpoint rank), or None before
        any validation."""
        headline = score_tag(self.headline)
        scored = [row for row in self.validation if math.isfinite(row.get(headline, math.nan))]
        if not scored:
            return None
        ranks = [self.rank(row) for row in scored]
        return scored[ranks.index(max(ranks))]


def find_runs(root: str | Path) -> list[Path]:
    """Run directories under ``root`` (``root`` itself included), sorted; a run's own subfolders are not searched."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"runs folder not found: {root}")
    found = []
    for folder, subfolders, files in os.walk(root):
        if "config.yaml" in files and "metrics.csv" in files:
            found.append(Path(folder))
            subfolders.clear()
        else:
            subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
    return sorted(found)


def run_name(path: Path, root: Path) -> str:
    """The folder name, with its parents below ``root`` when runs are nested (keeps names unique)."""
    relative = path.relative_to(root).as_posix()
    return path.resolve().name if relative == "." else relative


def load_run(path: str | Path, root: str | Path | None = None) -> Run:
    """Read one run directory. Raises RunFormatError for an unreadable config.yaml or metrics.csv;
    problems with optional parts (checkpoints, events) become ``warnings`` and leave the field None."""
    path = Path(path)
    run = Run(
        path=path,
        name=run_name(path, Path(root) if root is not None else path),
        config=read_config(path / "config.yaml"),
        validation=[],
        train_losses=[],
    )
    run.validation, run.train_losses = split_metrics(read_metrics(path / "metrics.csv"), path / "metrics.csv")
    try:
        run.params = count_parameters(path)
    except (FileNotFoundError, ValueError) as exc:
        run.warnings.append(str(exc))
    try:
        run.train_time_s = training_time(path)
    except ValueError as exc:
        run.warnings.append(str(exc))
    try:
        run.hardware = read_hardware(path / "hardware.yaml")
    except RunFormatError as exc:
        run.warnings.append(str(exc))
    return run


def load_runs(root: str | Path) -> tuple[list[Run], list[str]]:
    """Every readable run under ``root`` and one message per run that could not be read."""
    runs, errors = [], []
    for path in find_runs(root):
        try:
            runs.append(load_run(path, root))
        except RunFormatError as exc:
            errors.append(str(exc))
    return runs, errors


def read_config(path: Path, what: str = "the run's configuration", keys: str = "flag names") -> dict[str, Any]:
    try:
        config = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise RunFormatError(f"{path}: cannot read {what} ({exc})") from exc
    if not isinstance(config, dict):
        raise RunFormatError(f"{path}: expected a mapping of {keys} to values")
    return config


def read_hardware(path: Path) -> dict[str, Any] | None:
    """The machine a run trained on and the precision it used (None for a run without the file, e.g. older runs)."""
    if not path.is_file():
        return None
    return read_config(path, "the run's hardware record", "names")


def read_metrics(path: Path) -> list[dict[str, float]]:
    """metrics.csv rows with their set cells as floats (empty cells left out)."""
    rows = []
    try:
        with path.open(newline="") as f:
            for line, row in enumerate(csv.DictReader(f), start=2):
                try:
                    rows.append({k: float(v) for k, v in row.items() if k is not None and v not in ("", None)})
                except (TypeError, ValueError) as exc:
                    raise RunFormatError(f"{path}, line {line}: not a number ({exc})") from exc
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise RunFormatError(f"{path}: cannot read ({exc})") from exc
    return rows


def split_metrics(
    rows: list[dict[str, float]], source: Path
) -> tuple[list[dict[str, float]], list[dict[str, float]]]:
    """(validation rows, per-epoch mean training losses). A validation row is one with a ``metrics_summary/…``
    value. Training rows logged after the last validation belong to an epoch that never finished and are left out."""
    validation, train_losses, pending = [], [], []
    for row in rows:
        if any(key.startswith(SUMMARY) for key in row):
            if "epoch" not in row:
                raise RunFormatError(f"{source}: the validation row at step {row.get('step', math.nan):g} has no epoch")
            validation.append(row)
            keys = sorted({k for r in pending for k in r if k.startswith("loss_train/")})
            means = {k: sum(r[k] for r in pending if k in r) / sum(k in r for r in pending) for k in keys}
            train_losses.append({"epoch": row["epoch"], **means})
            pending = []
        elif any(k.startswith("loss_train/") for k in row):
            pending.append(row)
    return validation, train_losses


def count_parameters(path: Path) -> int:
    """Trained parameters of the network (``model.`` tensors of the best, else the last checkpoint),
    BatchNorm running statistics and counters excluded."""
    for name in ("best.ckpt", "last.ckpt"):
        ckpt = path / "checkpoints" / name
        if ckpt.is_file():
            state = read_checkpoint(ckpt)["state_dict"]
            return sum(
                t.numel() for k, t in state.items() if k.startswith("predictor.model.") and not k.endswith(_BUFFER_SUFFIXES)
            )
    raise FileNotFoundError(f"{path / 'checkpoints'}: no best.ckpt or last.ckpt; parameter count left empty")
