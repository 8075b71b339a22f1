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
from conftest import FAST_TRAIN_FLAGS, make_tiny_dataset, write_run

from mtl.cli.main import main
from mtl.data.formats import write_depth
from mtl.inference.checkpoint import read_checkpoint
from mtl.inference.predictor import load_predictor
from mtl.reporting.delta import DELTA_FORMS
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


def test_precision_used_and_machine_are_shown_for_every_run(loaded: list[Run], runs_dir: Path, tmp_path: Path) -> None:
    rows = {r["name"]: r for r in table(loaded)}
    recorded = yaml.safe_load((runs_dir / "lr0.01" / "hardware.yaml").read_text())
    assert load_run(runs_dir / "lr0.01").config["precision"] == "auto"  # the flag; the column says what auto chose
    for name in ("lr0.01", "lr0.001"):
        assert rows[name]["precision"] == recorded["precision"] != "auto"
        assert rows[name]["hardware"] == f"{recorded['cpu']} ({recorded['hardware_detected']})"
    assert rows["sweep/crashed"]["precision"] == rows["sweep/crashed"]["hardware"] == ""  # no record: empty
    # Two runs of one configuration from two machines: told apart by these columns, not hidden as equal.
    copies = tmp_path / "runs"
    for name, record in (("zen4", {"cpu": "AMD EPYC", "hardware_detected": "avx512_bf16", "precision": "bf16-mixed"}),
                         ("h200", {"cpu": "AMD EPYC", "gpu": "NVIDIA H200", "precision": "bf16-mixed"})):
        shutil.copytree(runs_dir / "lr0.01", copies / name, ignore=shutil.ignore_patterns("*.ckpt"))
        (copies / name / "hardware.yaml").write_text(yaml.safe_dump(record))
    rows = {r["name"]: r for r in table(load_runs(copies)[0])}
    assert (rows["zen4"]["precision"], rows["zen4"]["hardware"]) == ("bf16-mixed", "AMD EPYC (avx512_bf16)")
    assert (rows["h200"]["precision"], rows["h200"]["hardware"]) == ("bf16-mixed", "NVIDIA H200")


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
    assert markdown[0].startswith(
        "| name | model | optimizer_lr | protocol | precision | hardware | best epoch | epochs | grader | mIoU | SI-logRMSE"
    )
    assert markdown[1].startswith("|:---|:---|:---|:---|:---|:---|---:|")
    assert len(markdown) == 2 + 3
    assert all(line.count("|") == markdown[0].count("|") for line in markdown)

    out = tmp_path / "table.tex"
    assert main(["results", str(runs_dir), "--format", "latex", "--sort", "name", "--out", str(out)]) == 0
    latex = out.read_text().splitlines()
    assert latex[1] == r"\begin{tabular}{llllllrrrrrrr}"  # name, model, optimizer_lr, protocol, precision, hardware
    assert latex.count(r"\toprule") == latex.count(r"\midrule") == latex.count(r"\bottomrule") == 1
    assert latex[-1] == r"\end{tabular}"
    body = latex[latex.index(r"\midrule") + 1 : latex.index(r"\bottomrule")]
    assert [line.split(" & ")[0] for line in body] == ["lr0.001", "lr0.01", "sweep/crashed"]
    assert r"optimizer\_lr" in latex[3]
    assert all(line.endswith(r" \\") and line.count(" & ") == 12 for line in body)


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


# --- Δm against single-task baselines -------------------------------------------------------------------------

MULTI_CONFIG = {"model_name": "branched", "dataset": "miniscapes", "tasks": ["semseg", "depth"], "optimizer_lr": 0.001,
                "dataset_root": "/data/a", "num_epochs": 2, "loss_weight_semseg": 0.5, "loss_weight_depth": 0.5}


def single_config(task: str, **changes) -> dict:
    return {**MULTI_CONFIG, "model_name": "deeplabv3p", "tasks": [task], **changes}


def semseg_row(miou: float, accuracy: float, **scores: float) -> dict[str, float]:
    return {"metrics_summary/semseg": miou, "metrics_task_semseg/pixel_accuracy": accuracy, **scores}


def depth_row(si: float, mae: float, rel: float, **scores: float) -> dict[str, float]:
    return {"metrics_summary/depth": si, "metrics_task_depth/si_log_rmse": si, "metrics_task_depth/mae": mae,
            "metrics_task_depth/rel": rel, **scores}


def scores(miou: float = 50.0, si: float = 50.0) -> dict[str, float]:
    """The MiniScapes grader and total of a run (a task it does not train counts 50, as in the course)."""
    return {"metrics_summary/grader": max(miou - 50, 0) + max(50 - si, 0), "metrics_summary/total": miou - si}


def multi_run(folder: Path, config: dict | None = None) -> Path:
    """Best epoch 0 (grader 40): mIoU 60, pixel accuracy 88, SI-logRMSE 20, abs err 5 m, rel err 0.20;
    epoch 1 (grader 25) holds other values, which Δm must not read."""
    return write_run(folder, config or MULTI_CONFIG, [
        {**semseg_row(60.0, 88.0), **depth_row(20.0, 5.0, 0.20), **scores(60.0, 20.0)},
        {**semseg_row(55.0, 95.0), **depth_row(30.0, 2.0, 0.10), **scores(55.0, 30.0)},
    ])


def semseg_baseline(folder: Path, config: dict | None = None, miou: float = 50.0, accuracy: float = 80.0) -> Path:
    """Grader 0 at both epochs: the total breaks the tie, so epoch 1 (mIoU ``miou``) is the best one."""
    return write_run(folder, config or single_config("semseg"), [
        {**semseg_row(miou - 5, accuracy + 5), **scores(miou=miou - 5)},
        {**semseg_row(miou, accuracy), **scores(miou=miou)},
    ])


def depth_baseline(folder: Path, config: dict | None = None) -> Path:
    """Best epoch 0 (grader 25): SI-logRMSE 25, abs err 4 m, rel err 0.25."""
    return write_run(folder, config or single_config("depth"), [
        {**depth_row(25.0, 4.0, 0.25), **scores(si=25.0)},
        {**depth_row(30.0, 3.0, 0.20), **scores(si=30.0)},
    ])


# By hand, with the metrics the tasks declare (SPEC §10): mIoU +(60 − 50)/50 = +20 %, pixel accuracy
# +(88 − 80)/80 = +10 %, abs err −(5 − 4)/4 = −25 %, rel err −(0.20 − 0.25)/0.25 = +20 %; mean of four: +6.25 %.
HAND_DELTA = (20.0 + 10.0 - 25.0 + 20.0) / 4
# With each task's summary (the course's mIoU and SI-logRMSE): +20 % and −(20 − 25)/25 = +20 %.
HAND_DELTA_SUMMARY = (20.0 + 20.0) / 2


@pytest.fixture
def delta_runs(tmp_path: Path) -> Path:
    runs = tmp_path / "runs"
    multi_run(runs / "multi")
    semseg_baseline(runs / "baselines" / "single_semseg")
    depth_baseline(runs / "baselines" / "single_depth")
    return runs


def test_delta_m_matches_the_hand_calculation(delta_runs: Path, capsys: pytest.CaptureFixture) -> None:
    rows = {r["name"]: r for r in csv_rows(results(delta_runs, "--format", "csv", capsys=capsys))}
    assert float(rows["multi"]["delta_maninis"]) == pytest.approx(HAND_DELTA)
    assert rows["baselines/single_semseg"]["delta_maninis"] == rows["baselines/single_depth"]["delta_maninis"] == ""
    assert list(rows["multi"])[-6:] == ["grader", "miou", "si_log_rmse", "delta_maninis", "params", "train_time_s"]
    assert rows["baselines/single_semseg"]["best_epoch"] == "1"  # grader tie at 0, broken by the total

    summary = {r["name"]: r for r in csv_rows(results(delta_runs, "--format", "csv", "--delta_metrics", "summary", capsys=capsys))}
    assert float(summary["multi"]["delta_maninis"]) == pytest.approx(HAND_DELTA_SUMMARY)

    markdown = results(delta_runs, "--sort", "delta_maninis", capsys=capsys).splitlines()
    header = [cell.strip() for cell in markdown[0].strip("|").split("|")]
    assert header[-3:] == ["Δ_MTL% ↑", "params", "train time"]
    assert markdown[2].startswith("| multi |") and "| +6.25 |" in markdown[2]  # Δ_MTL sorts best first
    latex = results(delta_runs, "--format", "latex", capsys=capsys)
    assert r"$\Delta_{\mathrm{MTL}}\%\uparrow$" in latex and "+6.25" in latex

    assert main(["results", str(delta_runs), "--sort", "accuracy"]) == 2
    assert "--sort: expected one of ['grader', 'miou', 'si_log_rmse', 'delta_maninis', 'name']" in capsys.readouterr().err


def test_baselines_are_found_by_dataset_task_and_closest_configuration(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from mtl.reporting.delta import compute_deltas

    runs = tmp_path / "runs"
    multi_run(runs / "multi")
    semseg_baseline(runs / "a_other_lr", single_config("semseg", optimizer_lr=0.01), miou=40.0)
    semseg_baseline(runs / "b_other_data", single_config("semseg", dataset_root="/data/b"), miou=40.0)
    semseg_baseline(runs / "c_other_dataset", single_config("semseg", dataset="other_layout"), miou=40.0)
    semseg_baseline(runs / "z_same_flags", single_config("semseg"))
    loaded, errors = load_runs(runs)
    assert errors == []
    delta = compute_deltas(loaded)["multi"]
    assert delta.baselines["semseg"].name == "z_same_flags"  # fewest differing flags, not the first by name
    assert delta.value(DELTA_FORMS["maninis"]) is None and delta.missing == ["depth"]
    assert delta.reason == "no single-task baseline for depth"

    assert main(["results", str(runs), "--format", "csv"]) == 0
    captured = capsys.readouterr()
    assert "mtl results: Δm of multi left empty: no single-task baseline for depth" in captured.err
    rows = {r["name"]: r for r in csv_rows(captured.out)}
    assert rows["multi"]["delta_maninis"] == ""
    # A dataset without a grader (here: not installed, so the base layout) adds its headline score, the total,
    # and ranks epochs by it; MiniScapes runs log a total too.
    assert rows["c_other_dataset"]["total"] == "-10.0" and rows["c_other_dataset"]["best_epoch"] == "1"
    assert rows["c_other_dataset"]["grader"] == "0.0" and rows["multi"]["total"] == "40.0"

    depth_baseline(runs / "single_depth")
    out = results(runs, "--format", "csv", capsys=capsys)
    assert float({r["name"]: r for r in csv_rows(out)}["multi"]["delta_maninis"]) == pytest.approx(HAND_DELTA)


def test_explicit_baselines(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    runs = tmp_path / "runs"
    multi_run(runs / "multi")
    semseg_baseline(runs / "single_semseg", miou=40.0)  # found, but the explicit one below wins
    elsewhere = tmp_path / "elsewhere"
    semseg = semseg_baseline(elsewhere / "semseg")
    depth = depth_baseline(elsewhere / "depth")
    out = results(runs, "--format", "csv", "--baseline", f"semseg={semseg}", "--baseline", f"depth={depth}", capsys=capsys)
    assert float({r["name"]: r for r in csv_rows(out)}["multi"]["delta_maninis"]) == pytest.approx(HAND_DELTA)
    # Only the depth one named: semseg is the run found under RUNS_DIR (mIoU 40: +50 % instead of +20 %).
    out = results(runs, "--format", "csv", "--baseline", f"depth={depth}", capsys=capsys)
    expected = (50.0 + 10.0 - 25.0 + 20.0) / 4
    assert float({r["name"]: r for r in csv_rows(out)}["multi"]["delta_maninis"]) == pytest.approx(expected)

    for spec, message in (
        (f"semseg={runs / 'multi'}", "the run trained semseg,depth; a baseline is a single-task run of semseg"),
        (f"depth={semseg}", "the run trained semseg; a baseline is a single-task run of depth"),
        ("colour=x", "unknown task 'colour'"),
        ("depth", "expected TASK=RUN_DIR"),
        (f"depth={tmp_path / 'missing'}", "cannot read the run"),
    ):
        assert main(["results", str(runs), "--baseline", spec]) == 2
        assert f"mtl results: --baseline {spec}: {message}" in capsys.readouterr().err


def test_mtl_baselines_trains_one_single_task_run_per_task(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """The same flags as the two multi-task runs: their Δm against the trained baselines, from the CSVs by hand."""
    base = tmp_path_factory.getbasetemp() / "shared_tiny_runs"
    multi, _ = train_two_runs(base)
    runs = tmp_path / "runs"
    shutil.copytree(multi / "lr0.001", runs / "lr0.001", ignore=shutil.ignore_patterns("*.ckpt", "events.*"))
    flags = ["--dataset_root", str(base / "data"), "--optimizer_lr", "0.001", *FLAGS]
    assert main(["baselines", "--runs-dir", str(runs), "--name", "single", "--", *flags]) == 0
    for task in ("semseg", "depth"):
        config = yaml.safe_load((runs / "single" / f"single_{task}" / "config.yaml").read_text())
        assert config["tasks"] == [task] and config["name"] == f"single_{task}"
        assert (runs / "single" / f"single_{task}" / "checkpoints" / "best.ckpt").is_file()
    assert not (runs / "single" / "single_depth" / "submission.zip").exists()
    assert "mtl results" in capsys.readouterr().out

    def best(run: str) -> dict[str, float]:
        loaded = load_run(runs / run)
        return loaded.best

    m, s, d = best("lr0.001"), best("single/single_semseg"), best("single/single_depth")
    terms = [
        (m["metrics_summary/semseg"] - s["metrics_summary/semseg"]) / s["metrics_summary/semseg"],
        (m["metrics_task_semseg/pixel_accuracy"] - s["metrics_task_semseg/pixel_accuracy"]) / s["metrics_task_semseg/pixel_accuracy"],
        -(m["metrics_task_depth/mae"] - d["metrics_task_depth/mae"]) / d["metrics_task_depth/mae"],
        -(m["metrics_task_depth/rel"] - d["metrics_task_depth/rel"]) / d["metrics_task_depth/rel"],
    ]
    rows = {r["name"]: r for r in csv_rows(results(runs, "--format", "csv", capsys=capsys))}
    assert float(rows["lr0.001"]["delta_maninis"]) == pytest.approx(100 * sum(terms) / 4)

    # Again: both are finished, nothing is trained; flags that the command sets itself are refused.
    assert main(["baselines", "--runs-dir", str(runs), "--name", "single", "--", *flags]) == 0
    assert capsys.readouterr().out.count("has finished its epochs") == 2
    assert main(["baselines", "--runs-dir", str(runs), "--", *flags, "--log_dir", str(tmp_path / "x")]) == 2
    assert "--log_dir is set by `mtl baselines`" in capsys.readouterr().err
