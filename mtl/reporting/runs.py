"""Finding run directories and reading what each one logged.

A run directory is any folder holding both ``config.yaml`` and ``metrics.csv``. Its validation rows
(those with ``metrics_summary/grader`` set) give one entry per validated epoch; the best epoch is the
first one with the highest ``mtl.metrics.checkpoint_rank`` (grader, ties broken by total), the same rule
as the trainer's ``best.ckpt`` (a later exact tie does not replace it).
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mtl.inference.checkpoint import read_checkpoint
from mtl.metrics import checkpoint_rank
from mtl.reporting.events import training_time

GRADER = "metrics_summary/grader"
TOTAL = "metrics_summary/total"
MIOU = "metrics_summary/semseg"
SI_LOG_RMSE = "metrics_summary/depth"
# BatchNorm buffers are saved in the state_dict but are not trained parameters.
_BUFFER_SUFFIXES = (".running_mean", ".running_var", ".num_batches_tracked")


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
    warnings: list[str] = field(default_factory=list)

    @property
    def best(self) -> dict[str, float] | None:
        """The validation row of the best epoch (first maximum of checkpoint_rank), or None before any validation."""
        scored = [row for row in self.validation if math.isfinite(row.get(GRADER, math.nan))]
        if not scored:
            return None
        rank = lambda row: checkpoint_rank(row[GRADER], row.get(TOTAL, 0.0))  # noqa: E731
        top = max(rank(row) for row in scored)
        return next(row for row in scored if rank(row) == top)


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


def read_config(path: Path) -> dict[str, Any]:
    try:
        config = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise RunFormatError(f"{path}: cannot read the run's configuration ({exc})") from exc
    if not isinstance(config, dict):
        raise RunFormatError(f"{path}: expected a mapping of flag names to values")
    return config


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
    """(validation rows, per-epoch mean training losses). Training rows logged after the last validation
    belong to an epoch that never finished and are left out."""
    validation, train_losses, pending = [], [], []
    for row in rows:
        if GRADER in row:
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
