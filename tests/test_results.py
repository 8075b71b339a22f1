"""`mtl results`: run discovery, best epoch, differing hyper-parameters, parameter count, time, the three formats."""

from __future__ import annotations

import csv
import functools
import io
import math
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import FAST_TRAIN_FLAGS, make_tiny_dataset

from mtl.cli.main import main
from mtl.data.formats import write_depth
from mtl.inference.checkpoint import read_checkpoint
from mtl.inference.predictor import load_predictor
from mtl.reporting.runs import Run, load_run, load_runs, split_metrics
from mtl.reporting.table import results_table

pytestmark = pytest.mark.slow

FLAGS = [
    *FAST_TRAIN_FLAGS,
    "--num_epochs", "2",
    "--prepare_submission", "no",
    "--optimizer", "adam",
    "--observe_valid_ids", "0,1",
]
LEARNING_RATES = ("0.01", "0.001")


@functools.cache
def train_two_runs(base: Path) -> tuple[Path, dict[str, float]]:
    """Two 2-epoch runs that differ only in --optimizer_lr, under ``base/runs``; also returns each run's
    measured wall time. Cached so that test_report.py reuses the same runs within a session.

    Depth is near-constant (15–25 m), so SI-logRMSE falls below 50 and the grader varies between epochs."""
    data = make_tiny_dataset(base / "data", {"train": 4, "val": 2, "test": 2}, width=64, height=64)
    rng = np.random.default_rng(1)
    for split, count in (("train", 4), ("val", 2)):
        for i in range(count):
            write_depth(data / split / "depth" / f"{i}.png", rng.uniform(15.0, 25.0, (64, 64)), "invalidate")
    runs, seconds = base / "runs", {}
    for lr in LEARNING_RATES:
        start = time.monotonic()
        argv = ["train", "--dataset_root", str(data), "--log_dir", str(runs / f"lr{lr}"), "--optimizer_lr", lr]
        assert main([*argv, *FLAGS]) == 0
        seconds[f"lr{lr}"] = time.monotonic() - start
    return runs, seconds


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The two runs plus, in a nested folder, a run that crashed before its first validation."""
    runs, _ = train_two_runs(tmp_path_factory.getbasetemp() / "shared_tiny_runs")
    listing = tmp_path_factory.mktemp("results") / "runs"
    shutil.copytree(runs, listing)
    crashed = listing / "sweep" / "crashed"
    crashed.mkdir(parents=True)
    shutil.copy(runs / "lr0.01" / "config.yaml", crashed / "config.yaml")
    (crashed / "metrics.csv").write_text("step,epoch,loss_train/total\n0,,3.5\n1,,3.1\n")
    return listing


@pytest.fixture(scope="module")
def loaded(runs_dir: Path) -> list[Run]:
    runs, errors = load_runs(runs_dir)
    assert errors == []
    return runs


def table(runs: list[Run], sort: str = "grader") -> list[dict[str, str]]:
    return csv_rows(results_table(runs, "csv", sort))


def read_validation(metrics: Path) -> list[dict[str, str]]:
    with metrics.open(newline="") as f:
        return [row for row in csv.DictReader(f) if row["metrics_summary/grader"] != ""]


def results(runs_dir: Path, *flags: str, capsys: pytest.CaptureFixture) -> str:
    code = main(["results", str(runs_dir), *flags])
    assert code == 0
    return capsys.readouterr().out


def csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_csv_lists_each_run_with_its_best_epoch(runs_dir: Path, capsys: pytest.CaptureFixture) -> None:
    rows = {r["name"]: r for r in csv_rows(results(runs_dir, "--format", "csv", capsys=capsys))}
    assert set(rows) == {"lr0.01", "lr0.001", "sweep/crashed"}
    for lr in LEARNING_RATES:
        name = f"lr{lr}"
        validation = read_validation(runs_dir / name / "metrics.csv")
        graders = [float(r["metrics_summary/grader"]) for r in validation]
        best = validation[graders.index(max(graders))]
        row = rows[name]
        assert int(row["best_epoch"]) == int(float(best["epoch"]))
        # The trainer's own choice (best.ckpt) is an independent witness of the best epoch.
        assert int(row["best_epoch"]) == read_checkpoint(runs_dir / name / "checkpoints" / "best.ckpt")["epoch"]
        assert float(row["grader"]) == float(best["metrics_summary/grader"])
        assert float(row["miou"]) == float(best["metrics_summary/semseg"])
        assert float(row["si_log_rmse"]) == float(best["metrics_summary/depth"])
        assert int(row["epochs"]) == 2
        assert row["optimizer_lr"] == lr
        assert row["model_name"] == "deeplabv3p"


def test_parameter_count_matches_the_built_model(loaded: list[Run], runs_dir: Path) -> None:
    rows = {r["name"]: r for r in table(loaded)}
    model = load_predictor(runs_dir / "lr0.01" / "checkpoints" / "best.ckpt").model
    expected = sum(p.numel() for p in model.parameters())
    assert sum(b.numel() for b in model.buffers()) > 0  # BN statistics exist and must not be counted
    assert int(rows["lr0.01"]["params"]) == expected
    assert int(rows["lr0.001"]["params"]) == expected


def test_training_time_is_within_the_measured_wall_time(
    loaded: list[Run], tmp_path_factory: pytest.TempPathFactory
) -> None:
    _, measured = train_two_runs(tmp_path_factory.getbasetemp() / "shared_tiny_runs")
    rows = {r["name"]: r for r in table(loaded)}
    for name, seconds in measured.items():
        assert 0 < float(rows[name]["train_time_s"]) <= seconds


def test_only_differing_experiment_keys_become_columns(
    loaded: list[Run], runs_dir: Path, capsys: pytest.CaptureFixture
) -> None:
    header = table(loaded)[0].keys()
    # log_dir differs between the runs but is not part of the experiment; seed is, but it is the same.
    assert "optimizer_lr" in header
    for key in ("log_dir", "dataset_root", "workers", "seed", "batch_size"):
        assert key not in header
    one = results(runs_dir / "lr0.01", "--format", "csv", capsys=capsys)
    assert "optimizer_lr" not in csv_rows(one)[0]


def test_crashed_run_has_empty_scores_and_comes_last(loaded: list[Run]) -> None:
    for sort in ("grader", "miou", "si_log_rmse"):
        rows = table(loaded, sort)
        assert rows[-1]["name"] == "sweep/crashed"
        assert rows[-1]["grader"] == rows[-1]["best_epoch"] == rows[-1]["miou"] == ""
        assert rows[-1]["epochs"] == "0"
        assert rows[-1]["params"] == ""  # no checkpoint: empty, with a warning
    crashed = next(run for run in loaded if run.name == "sweep/crashed")
    assert any("no best.ckpt or last.ckpt" in w for w in crashed.warnings)


def test_sort_orders(loaded: list[Run]) -> None:
    def column(sort: str, key: str) -> list[str]:
        return [r[key] for r in table(loaded, sort)]

    graders = [float(v) for v in column("grader", "grader")[:2]]
    assert graders == sorted(graders, reverse=True)
    mious = [float(v) for v in column("miou", "miou")[:2]]
    assert mious == sorted(mious, reverse=True)
    errors = [float(v) for v in column("si_log_rmse", "si_log_rmse")[:2]]
    assert errors == sorted(errors)
    assert column("name", "name") == ["lr0.001", "lr0.01", "sweep/crashed"]


def test_markdown_and_latex(runs_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    markdown = results(runs_dir, "--format", "markdown", capsys=capsys).splitlines()
    assert markdown[0].startswith("| name | model | optimizer_lr | best epoch | epochs | grader | mIoU | SI-logRMSE")
    assert markdown[1].startswith("|:---|:---|:---|---:|")
    assert len(markdown) == 2 + 3
    assert all(line.count("|") == markdown[0].count("|") for line in markdown)

    out = tmp_path / "table.tex"
    assert main(["results", str(runs_dir), "--format", "latex", "--sort", "name", "--out", str(out)]) == 0
    latex = out.read_text().splitlines()
    assert latex[1] == r"\begin{tabular}{lllrrrrrrr}"  # name, model, optimizer_lr, then 7 numeric columns
    assert latex.count(r"\toprule") == latex.count(r"\midrule") == latex.count(r"\bottomrule") == 1
    assert latex[-1] == r"\end{tabular}"
    body = latex[latex.index(r"\midrule") + 1 : latex.index(r"\bottomrule")]
    assert [line.split(" & ")[0] for line in body] == ["lr0.001", "lr0.01", "sweep/crashed"]
    assert r"optimizer\_lr" in latex[3]
    assert all(line.endswith(r" \\") and line.count(" & ") == 9 for line in body)


def test_unreadable_inputs_are_named(runs_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["results", str(tmp_path / "missing")]) == 2
    assert "runs folder not found" in capsys.readouterr().err

    broken = tmp_path / "runs"
    shutil.copytree(runs_dir / "lr0.01", broken / "good", ignore=shutil.ignore_patterns("*.ckpt"))
    (broken / "bad").mkdir()
    (broken / "bad" / "config.yaml").write_text("model_name: [unclosed\n")
    (broken / "bad" / "metrics.csv").write_text("step,epoch\n")
    assert main(["results", str(broken)]) == 0
    captured = capsys.readouterr()
    assert f"skipped: {broken / 'bad' / 'config.yaml'}" in captured.err
    assert "no best.ckpt or last.ckpt" in captured.err
    assert "| good |" in captured.out

    (broken / "good" / "metrics.csv").write_text("step,epoch,metrics_summary/grader\n3,0,abc\n")
    assert main(["results", str(broken)]) == 2
    assert f"{broken / 'good' / 'metrics.csv'}, line 2: not a number" in capsys.readouterr().err


def test_best_epoch_is_the_first_maximum_and_train_losses_are_epoch_means(tmp_path: Path) -> None:
    """A hand-written metrics.csv: the grader peaks twice (epochs 1 and 3), training rows are averaged per
    epoch, and rows of an unfinished epoch are dropped."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(yaml.safe_dump({"model_name": "branched"}))
    (run / "metrics.csv").write_text(
        "step,epoch,loss_train/total,loss_val/total,metrics_summary/grader,metrics_summary/semseg\n"
        "0,,4.0,,,\n1,,2.0,,,\n2,0.0,,3.0,10.0,55.0\n"
        "2,,1.0,,,\n4,1.0,,2.5,20.0,60.0\n"
        "4,,0.5,,,\n5,,0.25,,,\n6,2.0,,2.4,nan,61.0\n"
        "6,,0.2,,,\n8,3.0,,2.6,20.0,62.0\n"
        "8,,0.1,,,\n"
    )
    loaded = load_run(run)
    assert loaded.best["epoch"] == 1.0 and loaded.best["metrics_summary/semseg"] == 60.0
    assert [r["epoch"] for r in loaded.train_losses] == [0.0, 1.0, 2.0, 3.0]
    assert [r["loss_train/total"] for r in loaded.train_losses] == [3.0, 1.0, 0.375, 0.2]
    assert math.isnan(loaded.validation[2]["metrics_summary/grader"])
    assert loaded.params is None and loaded.train_time_s is None and len(loaded.warnings) == 1
    with pytest.raises(ValueError, match="validation row at step 3 has no epoch"):
        split_metrics([{"step": 3.0, "metrics_summary/grader": 1.0}], run / "metrics.csv")


def test_training_time_sums_sessions_and_skips_the_pause_between_them(tmp_path: Path) -> None:
    """Two event files (a run and its resume) with known timestamps: 30 s + 10 s, not the 910 s from first to last."""
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.summary.writer.record_writer import RecordWriter

    from mtl.reporting.events import training_time

    sessions = {
        "events.out.tfevents.1.host.1.0": (100.0, 110.0, 130.0),
        "events.out.tfevents.2.host.2.0": (1000.0, 1010.0),
    }
    for name, times in sessions.items():
        with (tmp_path / name).open("wb") as f:
            writer = RecordWriter(f)
            for step, wall_time in enumerate(times):
                writer.write(Event(wall_time=wall_time, step=step).SerializeToString())
    assert training_time(tmp_path) == pytest.approx(40.0)
    # Like TensorBoard, a file with no readable record (here: garbage) contributes nothing.
    (tmp_path / "events.out.tfevents.3.host.3.0").write_bytes(b"not an event file at all, but long enough")
    assert training_time(tmp_path) == pytest.approx(40.0)
