"""`mtl tune`: search-space validation, the pruning hook, and end-to-end studies on tiny data (3 one-epoch runs)."""

from __future__ import annotations

import contextlib
import csv
import functools
import io
import json
import shlex
import signal
import time
import zipfile
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest
import torch
import yaml
from conftest import FAST_TRAIN_FLAGS, make_tiny_dataset
from optuna.trial import TrialState

import mtl.tuning.study as study_module
from mtl.cli.main import main
from mtl.engine.module import NonFiniteLoss
from mtl.config import experiment_items, parse_config
from mtl.tuning import GraderPruning, SpaceError, default_space_path, load_space, parse_space, tune
from mtl.tuning.space import override_flags
from mtl.tuning.study import Objective

TRAIN_FLAGS = [
    *FAST_TRAIN_FLAGS,
    "--observe_valid_ids", "0,1",
    "--num_epochs", "1",
]
SPACE = """
optimizer_lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
loss_weight_semseg: {type: float, low: 0.2, high: 0.8}
loss_weight_depth: {complement_of: loss_weight_semseg}
aspp_rates: {type: categorical, choices: [[3, 6, 9], [1, 2, 3]]}
"""


def val_graders(metrics_csv: Path) -> list[float]:
    with metrics_csv.open(newline="") as f:
        return [float(r["metrics_summary/grader"]) for r in csv.DictReader(f) if r.get("metrics_summary/grader")]


def cmd_items(run_dir: Path) -> dict[str, str]:
    with zipfile.ZipFile(run_dir / "source.zip") as zf:
        return dict(line.split(": ", 1) for line in zf.read("cmd.txt").decode().splitlines())


# ----------------------------------------------------------------------------------------- search space
def write_space(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "space.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "text, message",
    [
        ("optimizer_lr: {type: floaty, low: 1, high: 2}", "optimizer_lr: unknown type 'floaty'"),
        ("optimizer_lr: {type: float, low: 0.1, high: 0.01}", "optimizer_lr: low (0.1) must be below high (0.01)"),
        ("learning_rate: {type: float, low: 0.1, high: 0.2}", "learning_rate: not an `mtl train` flag"),
        ("optimizer: {type: categorical, choices: [adam, rmsprop]}", "optimizer: 'rmsprop' is not one of"),
        ("optimizer_lr: {type: float, low: 0.0, high: 0.1}", "optimizer_lr: `mtl train --optimizer_lr 0.0` is rejected"),
        ("optimizer_lr: {type: float, low: 0.0, high: 0.1, log: true}", "optimizer_lr: a log scale needs low > 0"),
        ("optimizer_lr: {type: float, low: 1.0e-4, high: 0.1, lgo: true}", "optimizer_lr: unknown key(s) ['lgo']"),
        ("batch_size: {type: int, low: 2.5, high: 8}", "batch_size: low: expected an integer, got 2.5"),
        ("batch_size: {type: int, low: 2, high: 8, step: 2, log: true}", "cannot combine log: true with a step"),
        ("aspp_rates: {type: categorical, choices: [[3, 6, 9], [3, -6]]}", "`mtl train --aspp_rates 3,-6` is rejected"),
        ("optimizer: {type: categorical, choices: []}", "optimizer: choices must be a non-empty list"),
        ("log_dir: {type: categorical, choices: [a, b]}", "log_dir: set by the tuner"),
        ("optimizer_lr: 0.01", "optimizer_lr: expected a mapping"),
        ("loss_weight_depth: {complement_of: loss_weight_semseg}", "loss_weight_depth: complement_of must name a float"),
        (
            "loss_weight_semseg: {type: float, low: 0.5, high: 1.5}\nloss_weight_depth: {complement_of: loss_weight_semseg}",
            "loss_weight_depth: `mtl train --loss_weight_depth -0.5` is rejected",
        ),
        ("- optimizer_lr", "expected a non-empty mapping"),
        ("optimizer_lr: {type: float, low: [", "is not valid YAML"),
    ],
)
def test_bad_space_file_names_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = write_space(tmp_path, text)
    with pytest.raises(SpaceError) as info:
        load_space(path)
    assert message in str(info.value) and str(path) in str(info.value)


def test_missing_space_file() -> None:
    with pytest.raises(SpaceError, match="--space: file not found: /no/such/space.yaml"):
        load_space("/no/such/space.yaml")


def test_default_space_samples_valid_train_flags(tmp_path: Path) -> None:
    data = make_tiny_dataset(tmp_path / "data", {"train": 1})
    space = load_space(default_space_path())
    assert {"optimizer_lr", "batch_size", "optimizer", "loss_weight_semseg", "loss_weight_depth"} <= {
        p.flag for p in space.params
    }
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    for _ in range(5):
        values = space.sample(study.ask())
        cfg = parse_config(["--dataset_root", str(data), *override_flags(values)])
        assert cfg.optimizer_lr == values["optimizer_lr"] and 1e-5 <= cfg.optimizer_lr <= 1e-2
        assert cfg.loss_weight_semseg + cfg.loss_weight_depth == pytest.approx(1.0, abs=1e-11)
        assert cfg.aspp_rates in {(3, 6, 9), (6, 12, 18)} and cfg.batch_size in {4, 8, 16}


def test_categorical_list_choices_and_numeric_strings() -> None:
    # YAML reads 1e-5 (no dot) as text; the space accepts it as the number it means
    text = (
        "optimizer_lr: {type: float, low: 1e-5, high: 1e-3}\n"
        "dilations: {type: categorical, choices: [[false, false, true], [false, true, true]]}"
    )
    space = parse_space(yaml.safe_load(text), "inline")
    assert space.as_dict() == {
        "optimizer_lr": {"type": "float", "low": 1e-5, "high": 1e-3, "log": False},
        "dilations": {"type": "categorical", "choices": ["false,false,true", "false,true,true"]},
    }


def test_space_keys_in_either_spelling_and_former_names(capsys) -> None:
    text = (
        "optimizer-lr: {type: float, low: 1.0e-5, high: 1.0e-3}\n"
        "--loss_weight_semseg: {type: float, low: 0.2, high: 0.8}\n"
        "loss-weight-depth: {complement_of: loss-weight-semseg}\n"
        "weighting_nash_max_norm: {type: float, low: 0.5, high: 2.0}"
    )
    space = parse_space(yaml.safe_load(text), "inline")
    assert [p.flag for p in space.params] == [
        "optimizer_lr", "loss_weight_semseg", "loss_weight_depth", "weighting_nash_mtl_max_norm"
    ]
    assert space.params[2].complement_of == "loss_weight_semseg"
    assert capsys.readouterr().err == "inline: note: weighting_nash_max_norm is deprecated; use weighting_nash_mtl_max_norm\n"
    with pytest.raises(SpaceError, match="inline: sets flag 'batch_size' twice"):
        parse_space({"batch-size": {"type": "int", "low": 1, "high": 2}, "batch_size": {"type": "int", "low": 1, "high": 2}},
                    "inline")


def test_batch_sizes_without_a_full_batch_are_left_out() -> None:
    space = parse_space(yaml.safe_load("batch_size: {type: categorical, choices: [4, 8, 16]}"), "inline")
    fitted, note = space.limit_batch_size(10)
    assert fitted.as_dict() == {"batch_size": {"type": "categorical", "choices": [4, 8]}}
    assert note == "batch_size [16] left out: the train split has only 10 samples; searching [4, 8]"
    assert space.limit_batch_size(16) == (space, None) or space.limit_batch_size(16)[1] is None
    ranged = parse_space(yaml.safe_load("batch_size: {type: int, low: 2, high: 32, step: 4}"), "inline")
    fitted, note = ranged.limit_batch_size(13)
    assert fitted.as_dict()["batch_size"]["high"] == 10 and note == (
        "batch_size capped at 10 (was 32): the train split has only 13 samples"
    )
    with pytest.raises(SpaceError, match="inline: batch_size: every choice .* larger than the train split .3 samples"):
        space.limit_batch_size(3)
    with pytest.raises(SpaceError, match="inline: batch_size: low .2. is larger than the train split .1 samples"):
        ranged.limit_batch_size(1)


def fake_run(seen: list, error: Exception | None = None):
    """A stand-in for run_training: records the config, writes one validation row (or raises ``error``)."""

    def run(cfg: object, extra_callbacks: object) -> Path:
        seen.append(cfg)
        if error is not None:
            raise error
        run_dir = Path(cfg.log_dir)
        run_dir.mkdir(parents=True)
        (run_dir / "metrics.csv").write_text("step,epoch,metrics_summary/grader\n2,0.0,5.0\n")
        return run_dir

    return run


def test_default_space_adapts_to_a_small_train_split(tmp_path, monkeypatch, capsys) -> None:
    """4 training samples: the default batch sizes 8 and 16 could only fail, so they are left out, in one line."""
    data = make_tiny_dataset(tmp_path / "data", {"train": 4, "val": 1})
    seen: list = []
    monkeypatch.setattr(study_module, "run_training", fake_run(seen))
    code = main(["tune", "--study", "small", "--n-trials", "3", "--runs-dir", str(tmp_path / "runs"), "--",
                 "--dataset_root", str(data)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "search space: batch_size [8, 16] left out: the train split has only 4 samples; searching [4]\n" in out
    assert [cfg.batch_size for cfg in seen] == [4, 4, 4]


def test_a_base_batch_size_without_a_full_batch_is_refused(tmp_path, capsys) -> None:
    data = make_tiny_dataset(tmp_path / "data", {"train": 3, "val": 1})
    space = write_space(tmp_path, "optimizer_lr: {type: float, low: 1.0e-4, high: 1.0e-2}")
    code = main(["tune", "--study", "s", "--n-trials", "1", "--runs-dir", str(tmp_path / "runs"), "--space",
                 str(space), "--", "--dataset_root", str(data), "--batch_size", "4"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "mtl tune: --batch_size 4: the train split of" in err and "has 3 samples" in err


def test_an_expected_failed_trial_prints_one_line(tmp_path, monkeypatch, capfd) -> None:
    """A trial that cannot start is recorded as FAIL with one line (no traceback), and the study goes on."""
    from mtl.engine.train import RunSetupError

    data = make_tiny_dataset(tmp_path / "data", {"train": 4, "val": 1})
    space = write_space(tmp_path, "optimizer_lr: {type: float, low: 1.0e-4, high: 1.0e-2}")
    reason = "--batch_size 16: the train split (4 samples)\ngives no full batch per process"
    monkeypatch.setattr(study_module, "run_training", fake_run([], RunSetupError(reason)))
    code = main(["tune", "--study", "f", "--n-trials", "2", "--runs-dir", str(tmp_path / "runs"), "--space",
                 str(space), "--", "--dataset_root", str(data)])
    out, err = capfd.readouterr()
    assert code == 1  # no trial completed
    for number in (0, 1):
        assert f"trial {number} failed: --batch_size 16: the train split (4 samples) gives no full batch" in out
    assert "Traceback" not in out + err and "Trial 0 failed" not in err, err
    assert err.strip() == "mtl tune: no trial has completed yet"
    study = optuna.load_study(study_name="f", storage=f"sqlite:///{tmp_path / 'runs' / 'f' / 'optuna.db'}")
    assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.FAIL]
    assert study.trials[0].user_attrs["failed"].startswith("--batch_size 16: the train split")


def test_grace_period_must_exceed_the_heartbeat_interval(tmp_path, capsys) -> None:
    data = make_tiny_dataset(tmp_path / "data", {"train": 4, "val": 1})
    code = main(["tune", "--study", "s", "--n-trials", "1", "--runs-dir", str(tmp_path / "runs"),
                 "--heartbeat-interval", "10", "--grace-period", "10", "--", "--dataset_root", str(data)])
    assert code == 2
    assert "--grace-period 10 must be longer than --heartbeat-interval 10" in capsys.readouterr().err



@pytest.mark.parametrize("error", ["IntegrityError", "ProgrammingError", "OperationalError"])
def test_a_worker_that_loses_the_table_creation_race_opens_the_storage(tmp_path, monkeypatch, error) -> None:
    """Workers started together on an empty database all create Optuna's tables; the losers retry."""
    import sqlalchemy.exc

    real, calls = optuna.storages.RDBStorage, []

    @functools.wraps(real)  # the same parameters, so open_storage picks the same callback name
    def lose_once(url: str, **kwargs):
        calls.append(url)
        if len(calls) == 1:
            raise getattr(sqlalchemy.exc, error)("CREATE TYPE studydirection", {}, Exception('type "studydirection" already exists'))
        return real(url, **kwargs)

    monkeypatch.setattr(optuna.storages, "RDBStorage", lose_once)
    monkeypatch.setattr(study_module.time, "sleep", lambda seconds: None)
    storage = study_module.open_storage(f"sqlite:///{tmp_path / 'optuna.db'}")
    assert len(calls) == 2 and storage.get_all_studies() == []


def test_other_storage_errors_are_not_retried(tmp_path, monkeypatch) -> None:
    import sqlalchemy.exc

    calls = []

    def refuse(url: str, **kwargs):
        calls.append(url)
        raise sqlalchemy.exc.OperationalError("connect", {}, Exception("password authentication failed"))

    monkeypatch.setattr(optuna.storages, "RDBStorage", refuse)
    with pytest.raises(study_module.TuneError, match="cannot open it .*password authentication failed"):
        study_module.open_storage("postgresql://mtl:secret@127.0.0.1:1/x")
    assert len(calls) == 1

# ------------------------------------------------------------------------------------------- pruning
class FakeTrial:
    def __init__(self, prune: bool) -> None:
        self.prune = prune
        self.reports: list[tuple[float, int]] = []

    def report(self, value: float, step: int) -> None:
        self.reports.append((value, step))

    def should_prune(self) -> bool:
        return self.prune


def fake_trainer(**overrides: object) -> SimpleNamespace:
    metrics = {"metrics_summary/grader": torch.tensor(12.5)}
    return SimpleNamespace(**{"sanity_checking": False, "current_epoch": 3, "callback_metrics": metrics, **overrides})


def test_pruning_callback_raises_when_the_trial_should_prune() -> None:
    trial = FakeTrial(prune=True)
    with pytest.raises(optuna.TrialPruned, match="epoch 3 with metrics_summary/grader 12.5"):
        GraderPruning(trial).on_validation_end(fake_trainer(), None)
    assert trial.reports == [(12.5, 3)]


def test_pruning_callback_reports_without_pruning_and_skips_sanity_checks() -> None:
    trial = FakeTrial(prune=False)
    callback = GraderPruning(trial)
    callback.on_validation_end(fake_trainer(), None)
    callback.on_validation_end(fake_trainer(sanity_checking=True, current_epoch=4), None)
    callback.on_validation_end(fake_trainer(callback_metrics={}, current_epoch=5), None)
    assert trial.reports == [(12.5, 3)] and callback.reported == {3: 12.5}


def test_diverged_run_scores_its_best_grader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = make_tiny_dataset(tmp_path / "data", {"train": 1})

    def diverging_run(cfg: object, extra_callbacks: object) -> Path:
        run = Path(cfg.log_dir)
        run.mkdir(parents=True)
        (run / "metrics.csv").write_text("step,epoch,metrics_summary/grader\n4,0.0,7.5\n6,1.0,3.25\n8,1.0,\n")
        raise NonFiniteLoss("loss_train/total is nan")

    monkeypatch.setattr(study_module, "run_training", diverging_run)
    trial = optuna.create_study().ask()
    objective = Objective(parse_space({"optimizer_lr": {"type": "float", "low": 0.1, "high": 1.0}}, "inline"),
                          ["--dataset_root", str(data)], tmp_path / "study", submission=False)
    assert objective(trial) == 7.5
    assert trial.user_attrs["stopped"] == "loss_train/total is nan"
    assert trial.user_attrs["run_dir"] == str(tmp_path / "study" / "trial_0")


# ------------------------------------------------------------------------------------------ end to end
@pytest.fixture(scope="module")
def first_study(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """`mtl tune` with two one-epoch trials; what it left, captured before other tests continue the study."""
    root = tmp_path_factory.mktemp("tune")
    data = make_tiny_dataset(root / "data", {"train": 4, "val": 2}, 64, 64)
    space = write_space(root, SPACE)
    runs = root / "runs"
    flags = ["--dataset_root", str(data), *TRAIN_FLAGS]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["tune", "--study", "s", "--n-trials", "2", "--runs-dir", str(runs), "--space", str(space),
                     "--", *flags])
    storage = f"sqlite:///{runs / 's' / 'optuna.db'}"
    study = optuna.load_study(study_name="s", storage=storage)
    return {"code": code, "out": out.getvalue(), "runs": runs, "space": space, "flags": flags, "storage": storage,
            "trials": study.get_trials(), "study_id": study._study_id,
            "best": json.loads((runs / "s" / "best.json").read_text())}


@pytest.mark.slow
def test_two_trials_complete_and_best_json_reproduces(first_study: dict) -> None:
    assert first_study["code"] == 0, first_study["out"]
    trials, runs = first_study["trials"], first_study["runs"]
    assert [(t.number, t.state) for t in trials] == [(0, TrialState.COMPLETE), (1, TrialState.COMPLETE)]
    for trial in trials:
        run = Path(trial.user_attrs["run_dir"])
        assert run == runs / "s" / f"trial_{trial.number}"
        config = yaml.safe_load((run / "config.yaml").read_text())
        assert config["name"] == f"trial_{trial.number}" and config["prepare_submission"] is False
        assert config["optimizer_lr"] == trial.params["optimizer_lr"]
        assert config["loss_weight_depth"] == pytest.approx(1 - trial.params["loss_weight_semseg"], abs=1e-11)
        assert ",".join(map(str, config["aspp_rates"])) == trial.params["aspp_rates"]
        assert trial.value == max(val_graders(run / "metrics.csv"))
        assert trial.intermediate_values == {0: trial.value}

    best = first_study["best"]
    best_trial = max(trials, key=lambda t: t.value)  # ties: Optuna keeps the first
    assert (best["study"], best["trial"], best["value"]) == ("s", best_trial.number, best_trial.value)
    assert best["params"] == best_trial.params and best["trials"] == {"COMPLETE": 2}
    assert shlex.split(best["command"]) == ["mtl", "train", *best["train_flags"]]
    cfg = parse_config(best["train_flags"])
    assert experiment_items(cfg) == cmd_items(Path(best["run_dir"]))
    out = first_study["out"]
    assert f"best trial: {best_trial.number}" in out and f"reproduce: {best['command']}" in out


@pytest.mark.slow
def test_changed_train_flags_refuse_to_continue_the_study(first_study: dict, capsys: pytest.CaptureFixture) -> None:
    flags = [*first_study["flags"], "--optimizer", "adam", "--num_epochs", "2"]
    code = main(["tune", "--study", "s", "--n-trials", "1", "--runs-dir", str(first_study["runs"]),
                 "--space", str(first_study["space"]), "--", *flags])
    assert code == 2
    err = capsys.readouterr().err
    assert "began with other train flags" in err and "--optimizer: sgd → adam" in err and "--num_epochs: 1 → 2" in err
    assert len(optuna.load_study(study_name="s", storage=first_study["storage"]).trials) == 2


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize")
def test_second_invocation_continues_the_study(first_study: dict, capsys: pytest.CaptureFixture) -> None:
    """Same study, new trial numbers; a trial left RUNNING by a dead process is failed; a pruned run stops cleanly."""
    storage = optuna.storages.RDBStorage(first_study["storage"], heartbeat_interval=1, grace_period=2)
    dead = optuna.load_study(study_name="s", storage=storage).ask()
    storage.record_heartbeat(dead._trial_id)
    time.sleep(3.5)  # heartbeat now older than the grace period (SQLite keeps whole seconds)
    handler = signal.getsignal(signal.SIGTERM)

    study = tune("s", first_study["flags"], n_trials=1, runs_dir=first_study["runs"],
                 space=load_space(first_study["space"]), pruner=optuna.pruners.ThresholdPruner(lower=1e9),
                 heartbeat_interval=1, grace_period=2)

    assert study._study_id == first_study["study_id"] and study.study_name == "s"
    assert "trial 2 (unknown worker) stopped sending heartbeats; recorded as FAIL" in capsys.readouterr().out
    trials = study.get_trials()
    assert [(t.number, t.state) for t in trials] == [
        (0, TrialState.COMPLETE), (1, TrialState.COMPLETE), (2, TrialState.FAIL), (3, TrialState.PRUNED)
    ]
    pruned = trials[3]
    graders = val_graders(Path(pruned.user_attrs["run_dir"]) / "metrics.csv")
    assert pruned.intermediate_values == {0: graders[0]} and len(graders) == 1
    assert signal.getsignal(signal.SIGTERM) == handler
    # the sampler's seed moves on with the study, so a continued study does not replay its first samples
    assert pruned.params != trials[0].params
    best = json.loads((first_study["runs"] / "s" / "best.json").read_text())
    assert best["trials"] == {"COMPLETE": 2, "FAIL": 1, "PRUNED": 1}
