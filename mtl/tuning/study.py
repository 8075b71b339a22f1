"""An Optuna study whose trials are `mtl train` runs: sampling, pruning, storage, resume, best trial.

Layout: ``<runs_dir>/<study>/trial_<n>/`` (one run directory per trial), ``optuna.db`` (the default
SQLite storage) and ``best.json``. Several workers (processes or machines) can share one study
through an RDB URL; each runs one single-device trial at a time.

Interrupted trials: a trial stopped by SIGTERM/SIGINT is recorded as FAIL and the tuner stops. While
a trial runs, its worker records a heartbeat in the storage every ``heartbeat_interval`` seconds
(Optuna's RDBStorage heartbeat); a trial whose process died (kill -9, lost machine) stays RUNNING
until its last heartbeat is older than ``grace_period``, then the next trial start of any worker
(or the next `mtl tune` on the study) records it as FAIL and says so in one line. Neither is
retried: new trials get new numbers, and the old run directory is left as it was.

Expected failures of a trial (flags that `mtl train` rejects, a run that cannot start, CUDA out of
memory) are recorded as FAIL with one line of explanation, and the study goes on.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import inspect
import json
import logging
import os
import re
import shlex
import socket
import time
import warnings
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import optuna
import torch
import yaml
from optuna.trial import TrialState
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

from mtl.engine.module import NonFiniteLoss
from mtl.config import FlagsRefused, code_root, experiment_items, parse_config_or_raise
from mtl.engine.train import RunSetupError, run_training
from mtl.flags import flag_key
from mtl.tuning.pruning import GraderPruning
from mtl.tuning.space import SearchSpace, flag_value, load_space
from mtl.weighting import renamed_flags

HEARTBEAT_INTERVAL_S = 30
GRACE_PERIOD_S = 120
SCHEMA_RACE_ATTEMPTS = 5
STUDY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


class TuneError(RuntimeError):
    """A study that cannot start or continue as asked; the message says why."""


class TrialConfigError(ValueError):
    """`mtl train` rejected a trial's flags (e.g. a cross-flag check); the trial fails, the study goes on."""


def default_space_path() -> Path:
    """configs/tune_space.yaml beside the `mtl` package (a source checkout or an editable install)."""
    return code_root().parent / "configs" / "tune_space.yaml"


def study_dir(runs_dir: str | Path, study_name: str) -> Path:
    return Path(runs_dir) / study_name


def default_storage(runs_dir: str | Path, study_name: str) -> str:
    return f"sqlite:///{(study_dir(runs_dir, study_name) / 'optuna.db').resolve()}"


def masked(url: str) -> str:
    """A storage URL fit to print or write to a file: without its password."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def open_storage(
    url: str, heartbeat_interval: int | None = None, grace_period: int | None = None
) -> optuna.storages.RDBStorage:
    """An RDB storage with heartbeats (defaults: ``HEARTBEAT_INTERVAL_S``, ``GRACE_PERIOD_S``)."""
    heartbeat_interval = heartbeat_interval or HEARTBEAT_INTERVAL_S
    grace_period = grace_period or GRACE_PERIOD_S
    if grace_period <= heartbeat_interval:
        raise TuneError(
            f"--grace-period {grace_period} must be longer than --heartbeat-interval {heartbeat_interval}, "
            "or a live worker's trial would be failed between two heartbeats"
        )
    # Optuna 4.9 renamed the callback run for a trial failed this way (the old name warns from then on).
    callback = "heartbeat_stale_trial_callback"
    if callback not in inspect.signature(optuna.storages.RDBStorage).parameters:
        callback = "failed_trial_callback"
    attempt = 1
    while True:
        try:
            with _known_experimental():
                return optuna.storages.RDBStorage(
                    url, heartbeat_interval=heartbeat_interval, grace_period=grace_period, **{callback: report_stale_trial}
                )
        except (IntegrityError, OperationalError, ProgrammingError) as exc:
            # Workers started together on an empty database all create Optuna's tables; the losers of that
            # race see "already exists" and find the tables complete a moment later.
            if attempt == SCHEMA_RACE_ATTEMPTS or "already exists" not in str(exc):
                raise TuneError(f"--storage {masked(url)}: cannot open it ({type(exc).__name__}: {exc})") from exc
            time.sleep(0.5 * attempt)
            attempt += 1
        except Exception as exc:  # the driver decides: bad URL, missing driver module, unreachable server, …
            raise TuneError(f"--storage {masked(url)}: cannot open it ({type(exc).__name__}: {exc})") from exc


def report_stale_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    """Optuna's ``heartbeat_stale_trial_callback``: one line for a trial whose worker stopped sending heartbeats."""
    where = " ".join(f"{key} {trial.user_attrs[key]}" for key in ("host", "pid") if key in trial.user_attrs)
    print(
        f"trial {trial.number} ({where or 'unknown worker'}) stopped sending heartbeats; recorded as FAIL",
        flush=True,
    )


def make_pruner(kind: str, startup_trials: int = 5, warmup_epochs: int = 1) -> optuna.pruners.BasePruner:
    if kind == "none":
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(n_startup_trials=startup_trials, n_warmup_steps=warmup_epochs)


def train_config(argv: list[str], error: type[Exception]) -> argparse.Namespace:
    """`mtl train`'s own parsing and validation; its message (which names the flag) becomes ``error``."""
    try:
        return parse_config_or_raise(argv)
    except FlagsRefused as exc:
        raise error(f"`mtl train` rejects the flags: {exc}") from None


def best_val_grader(metrics_csv: Path) -> float | None:
    """The best ``metrics_summary/grader`` among a run's validation rows (None before the first one)."""
    if not metrics_csv.is_file():
        return None
    with metrics_csv.open(newline="") as f:
        values = [float(r["metrics_summary/grader"]) for r in csv.DictReader(f) if r.get("metrics_summary/grader")]
    return max(values, default=None)


# A trial that fails with one of these failed because of its flags or the machine, not because of a bug:
# it is recorded as FAIL with one line, and the study goes on.
EXPECTED_FAILURES = (TrialConfigError, RunSetupError, torch.cuda.OutOfMemoryError)


class Objective:
    """One trial: sample flags, train a run with them over the base flags, return its best val grader."""

    def __init__(self, space: SearchSpace, base_flags: list[str], root: Path, submission: bool) -> None:
        self.space = space
        self.base_flags = base_flags
        self.root = root
        self.submission = submission
        self.explained: set[int] = set()  # trials whose expected failure was printed in one line

    def __call__(self, trial: optuna.Trial) -> float:
        overrides = {flag: flag_value(value) for flag, value in self.space.sample(trial).items()}
        run_dir = self.root / f"trial_{trial.number}"
        argv = [*self.base_flags, *_tokens(overrides), "--log_dir", str(run_dir), "--name", f"trial_{trial.number}"]
        if not self.submission:
            argv += ["--prepare_submission", "no"]
        trial.set_user_attr("run_dir", os.path.abspath(run_dir))
        trial.set_user_attr("host", socket.gethostname())
        trial.set_user_attr("pid", os.getpid())
        trial.set_user_attr("overrides", overrides)
        trial.set_user_attr("train_argv", argv)
        print(f"trial {trial.number}: {shlex.join(_tokens(overrides))}", flush=True)
        try:
            cfg = train_config(argv, TrialConfigError)
            run_training(cfg, extra_callbacks=[GraderPruning(trial)])
        except EXPECTED_FAILURES as exc:
            reason = " ".join(str(exc).split()) or type(exc).__name__
            trial.set_user_attr("failed", reason)
            self.explained.add(trial.number)
            print(f"trial {trial.number} failed: {reason}", flush=True)
            raise  # Optuna records FAIL; _OneLineFailures keeps its traceback off the terminal
        except NonFiniteLoss as exc:
            # A diverged run is a result, not a crash: it scores the best grader it reached (0 if none),
            # which steers the sampler away from such settings. A FAIL would be ignored by TPE.
            trial.set_user_attr("stopped", str(exc))
            print(f"trial {trial.number}: {exc}", flush=True)
            return best_val_grader(run_dir / "metrics.csv") or 0.0
        finally:
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        if cfg.prepare_submission:
            _submission(run_dir, cfg)
        value = best_val_grader(run_dir / "metrics.csv")
        if value is None:
            raise RuntimeError(f"{run_dir / 'metrics.csv'} holds no validation row with metrics_summary/grader")
        return value


def tune(
    study_name: str,
    train_flags: Sequence[str],
    *,
    n_trials: int | None = None,
    timeout: float | None = None,
    storage: str | None = None,
    runs_dir: str | Path = "runs",
    space: SearchSpace | None = None,
    seed: int = 0,
    pruner: optuna.pruners.BasePruner | None = None,
    allow_changed: bool = False,
    heartbeat_interval: int | None = None,
    grace_period: int | None = None,
) -> optuna.Study:
    """Run ``n_trials`` more trials (and/or until ``timeout`` seconds) of a new or existing study.

    The TPE sampler is seeded with ``seed`` + the number of trials already in the study, so that a
    resumed study does not replay the first trials' samples; workers sharing a study at the same
    time should pass different seeds.
    """
    if not STUDY_NAME.fullmatch(study_name):
        raise TuneError(f"--study {study_name!r}: use letters, digits, '_', '-' and '.' (it names a folder)")
    if n_trials is None and timeout is None:
        raise TuneError("give --n-trials and/or --timeout")
    base_flags = list(train_flags)
    space = space or load_space(default_space_path())
    root = study_dir(runs_dir, study_name)
    base = _check_base_flags(base_flags, root)
    space = _fit_to_train_split(space, base)
    root.mkdir(parents=True, exist_ok=True)
    url = storage or default_storage(runs_dir, study_name)
    study = optuna.create_study(
        study_name=study_name,
        storage=open_storage(url, heartbeat_interval, grace_period),
        pruner=pruner or make_pruner("median"),
        direction="maximize",
        load_if_exists=True,
    )
    _check_same_experiment(study, base, space, allow_changed)
    with _known_experimental():
        optuna.storages.fail_stale_trials(study)
    study.sampler = optuna.samplers.TPESampler(seed=seed + len(study.get_trials(deepcopy=False)))
    objective = Objective(space, base_flags, root, submission=_user_sets("prepare_submission", base_flags, base))
    optuna_log = logging.getLogger("optuna.study._optimize")
    one_line = _OneLineFailures(objective.explained)
    optuna_log.addFilter(one_line)
    try:
        study.optimize(
            objective,
            n_trials=n_trials,
            timeout=timeout,
            catch=EXPECTED_FAILURES,
            callbacks=[lambda s, _: write_best(s, base_flags, root)],
            gc_after_trial=True,
        )
    finally:
        optuna_log.removeFilter(one_line)
        write_best(study, base_flags, root)
    return study


class _OneLineFailures(logging.Filter):
    """Drops Optuna's report of a failed trial (a warning with the traceback, then the trial's value) when
    the objective already explained that expected failure in one line; other failures keep their traceback."""

    _FAILED = re.compile(r"Trial (\d+) failed ")

    def __init__(self, explained: set[int]) -> None:
        super().__init__()
        self.explained = explained

    def filter(self, record: logging.LogRecord) -> bool:
        match = self._FAILED.match(str(record.msg))
        return not (match and int(match.group(1)) in self.explained)


def _fit_to_train_split(space: SearchSpace, cfg: argparse.Namespace) -> SearchSpace:
    """Leave out searched batch sizes that give no full batch of the train split (the engine drops the last
    partial batch, so such a trial could only fail), saying so in one line; refuse when none is left."""
    from mtl.datasets import build_dataset

    samples = build_dataset(cfg).split_size("train")
    if not any(p.flag == "batch_size" for p in space.params):
        if cfg.batch_size > samples:
            raise TuneError(
                f"--batch_size {cfg.batch_size}: the train split of {cfg.dataset_root} has {samples} samples, "
                "so no trial would get a full batch"
            )
        return space
    fitted, note = space.limit_batch_size(samples)
    if note:
        print(f"search space: {note}", flush=True)
    return fitted


def best_info(study: optuna.Study, base_flags: list[str]) -> dict[str, Any] | None:
    """The best trial, its params and the `mtl train` command that reproduces it; None without a COMPLETE trial."""
    trials = study.get_trials(deepcopy=False)
    if not any(t.state == TrialState.COMPLETE for t in trials):
        return None
    best = study.best_trial
    flags = [*base_flags, *_tokens(best.user_attrs.get("overrides", {}))]
    return {
        "study": study.study_name,
        "trial": best.number,
        "value": best.value,
        "params": best.params,
        "overrides": best.user_attrs.get("overrides", {}),
        "run_dir": best.user_attrs.get("run_dir"),
        "host": best.user_attrs.get("host"),
        "train_flags": flags,
        "command": shlex.join(["mtl", "train", *flags]),
        "trials": dict(Counter(t.state.name for t in trials)),
    }


def write_best(study: optuna.Study, base_flags: list[str], root: Path) -> dict[str, Any] | None:
    """``best_info`` written to ``<root>/best.json`` (atomically: a reader never sees half a file)."""
    info = best_info(study, base_flags)
    if info is None:
        return None
    tmp = root / f"best.json.{os.getpid()}.tmp"  # one per worker: several may finish at once
    tmp.write_text(json.dumps(info, indent=2) + "\n")
    os.replace(tmp, root / "best.json")
    return info


@contextlib.contextmanager
def _known_experimental() -> Iterator[None]:
    """Optuna flags its heartbeat API as experimental; we rely on it knowingly, so the warning is noise."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield


def _tokens(overrides: dict[str, str]) -> list[str]:
    return [token for flag, value in overrides.items() for token in (f"--{flag}", value)]


def _user_sets(flag: str, argv: list[str], cfg: argparse.Namespace) -> bool:
    """Whether the user set ``flag`` (on the command line or in a --config preset, in either spelling), not just its
    default."""
    if any(t.startswith("--") and flag_key(t.partition("=")[0]) == flag for t in argv):
        return True
    return bool(cfg.config) and flag in {flag_key(str(k)) for k in yaml.safe_load(Path(cfg.config).read_text()) or {}}


def _check_base_flags(base_flags: list[str], root: Path) -> argparse.Namespace:
    """The flags after `--` must make a valid single-device `mtl train` run that leaves its run dir to the tuner."""
    cfg = train_config(base_flags, TuneError)
    for key in ("log_dir", "name", "resume"):
        if getattr(cfg, key) is not None:
            raise TuneError(f"--{key} is set by the tuner (each trial runs in <runs-dir>/<study>/trial_<n>); remove it")
    if cfg.devices != "1" or cfg.num_nodes != 1 or cfg.strategy != "auto":
        raise TuneError(
            "a trial runs on one device: drop --devices/--num_nodes/--strategy and start one `mtl tune` worker per device "
            "on a shared --storage instead"
        )
    return train_config([*base_flags, "--log_dir", str(root / "trial_0")], TuneError)


def _check_same_experiment(study: optuna.Study, cfg: argparse.Namespace, space: SearchSpace, allow_changed: bool) -> None:
    """Trials of one study must be comparable: refuse other base flags or another space, as `mtl train` refuses
    to resume a run whose command line changed (``allow_changed`` continues anyway, with a warning)."""
    searched = {p.flag for p in space.params}
    train = {k: v for k, v in experiment_items(cfg).items() if k not in searched}
    train["num_epochs"] = str(cfg.num_epochs)
    current = json.loads(json.dumps({"train": train, "space": space.as_dict()}))
    recorded = study.user_attrs.get("experiment")
    if recorded is None:
        study.set_user_attr("experiment", current)
        return
    changes = []
    renamed = renamed_flags()  # a study begun before a flag was renamed recorded its former name
    for part, prefix in (("train", "--"), ("space", "space: ")):
        old, new = {renamed.get(k, k): v for k, v in recorded.get(part, {}).items()}, current[part]
        changes += [
            f"{prefix}{k}: {old.get(k)} → {new.get(k)}" for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)
        ]
    if changes and not allow_changed:
        listing = "\n  ".join(changes[:20])
        raise TuneError(
            f"study {study.study_name!r} began with other train flags or another search space:\n  {listing}\n"
            "pass --allow-changed to continue it anyway, or choose a new --study"
        )
    for change in changes:
        print(f"warning: continuing study {study.study_name!r} despite change: {change}")


def _submission(run_dir: Path, cfg: argparse.Namespace) -> None:
    from mtl.datasets import build_dataset
    from mtl.grading.submission import make_submission

    if "test" not in build_dataset(cfg).splits():
        print(f"no test split under {cfg.dataset_root}; skipping submission.zip")
        return
    print(f"submission: {make_submission(run_dir, cfg.dataset_root, cfg.batch_size_validation)}")
