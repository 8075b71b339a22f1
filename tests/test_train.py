"""End-to-end training on CPU: run directory contents, exact resume after SIGKILL, DDP metrics, the log-depth pitfall."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import torch
from conftest import FAST_TRAIN_FLAGS, make_tiny_dataset, train_in_process, val_split
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from mtl.cli.main import main
from mtl.datasets import DATASETS
from mtl.inference.evaluate import evaluate_split
from mtl.inference.predict import predict_dataset_split
from mtl.inference.predictor import load_predictor

pytestmark = pytest.mark.slow

# Small and fast: ResNet-18, 64×64 images, no worker processes, deterministic kernels.
BASE_FLAGS = [
    *FAST_TRAIN_FLAGS,
    "--optimizer", "adam",
    "--optimizer_lr", "0.001",
    "--observe_valid_ids", "0,1",
    "--num_steps_visualization_first", "1",
]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}


def mtl_subprocess(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "mtl.cli.main", *args], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_dataset(tmp_path_factory.mktemp("train") / "data", {"train": 8, "val": 5, "test": 3}, 64, 64)


def test_two_epochs_write_a_complete_run_directory(dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = tmp_path / "run"
    code = main(["train", "--dataset_root", str(dataset), "--log_dir", str(run), "--num_epochs", "2", *BASE_FLAGS])
    assert code == 0
    out = capsys.readouterr().out
    assert "epoch 1 | grader" in out and "mIoU" in out and "SI-logRMSE" in out

    events = EventAccumulator(str(run), size_guidance={"scalars": 0, "images": 0, "histograms": 0})
    events.Reload()
    tags = events.Tags()
    for tag in [
        "metrics_summary/semseg", "metrics_summary/depth", "metrics_summary/total", "metrics_summary/grader",
        "loss_train/semseg", "loss_train/depth", "loss_train/total", "loss_val/semseg", "loss_val/depth",
        "loss_val/total", "LR", "metrics_task_semseg/traffic_light", "metrics_task_depth/si_log_rmse",
    ]:
        assert tag in tags["scalars"], tag
    assert {"train/batch_crops", "valid/observed_samples", "train/observed_samples"} <= set(tags["images"])
    assert any("depth" in t and "metres" in t for t in tags["histograms"])

    rows = read_rows(run / "metrics.csv")
    val_rows = [r for r in rows if r.get("metrics_summary/grader")]
    assert len(val_rows) == 2
    assert {r["epoch"] for r in val_rows} == {"0.0", "1.0"}
    assert (run / "checkpoints" / "best.ckpt").is_file() and (run / "checkpoints" / "last.ckpt").is_file()
    with zipfile.ZipFile(run / "source.zip") as zf:
        cmd = zf.read("cmd.txt").decode()
        assert "mtl/engine/module.py" in zf.namelist()
    assert "model_name: deeplabv3p\n" in cmd and "num_epochs" not in cmd and "dataset_root" not in cmd

    with zipfile.ZipFile(run / "submission.zip") as zf:
        names = set(zf.namelist())
    assert {f"predictions/{t}/{i}.png" for t in ("semseg", "depth") for i in range(3)} <= names
    assert {"checkpoints/best.ckpt", "source.zip", "metrics.csv"} <= names
    capsys.readouterr()
    assert main(["grade", str(run / "submission.zip"), "--gt", str(dataset / "test_gt")]) == 0
    graded = json.loads(capsys.readouterr().out)
    assert 0 <= graded["grader"] <= 100 and graded["num_images"] == 3

    # checkpoints load without unpickling code, and the best one reproduces its logged validation score
    best = torch.load(run / "checkpoints" / "best.ckpt", weights_only=True)
    module = load_predictor(run / "checkpoints" / "best.ckpt")
    scores = evaluate_split(module, val_split(dataset, module), batch_size=2)
    assert best["mtl"]["epoch"] in (0, 1)
    best_row = val_rows[best["mtl"]["epoch"]]  # equal graders (e.g. 0) are told apart by total: the trainer's rule
    assert float(best_row["metrics_summary/grader"]) == max(float(r["metrics_summary/grader"]) for r in val_rows)
    assert scores["tasks"]["semseg"]["miou"] == pytest.approx(float(best_row["metrics_summary/semseg"]), abs=1e-4)
    assert scores["tasks"]["depth"]["si_log_rmse"] == pytest.approx(float(best_row["metrics_summary/depth"]), abs=1e-4)


def test_resume_rules_refusals_and_longer_training(dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = tmp_path / "run"
    assert main(["train", "--dataset_root", str(dataset), "--log_dir", str(run), "--num_epochs", "1",
                 "--prepare_submission", "no", *BASE_FLAGS]) == 0
    capsys.readouterr()
    code = main(["train", "--dataset_root", str(dataset), "--log_dir", str(run), "--num_epochs", "1",
                 "--resume", str(run), *BASE_FLAGS, "--optimizer_lr", "0.5"])
    assert code == 2
    err = capsys.readouterr().err
    assert "refusing to resume" in err and "--optimizer_lr: 0.001 → 0.5" in err
    assert main(["train", "--dataset_root", str(dataset), "--log_dir", str(run), "--num_epochs", "1", *BASE_FLAGS]) == 2
    assert "already holds a run" in capsys.readouterr().err

    # training a finished run longer is allowed, and the learning rate keeps falling (no poly restart)
    assert main(["train", "--resume", str(run), "--num_epochs", "3"]) == 0
    lr_by_epoch = {}
    for row in read_rows(run / "metrics.csv"):
        if row.get("LR"):
            lr_by_epoch.setdefault(float(row["epoch"]), float(row["LR"]))
    assert sorted(lr_by_epoch) == [0.0, 1.0, 2.0]
    assert lr_by_epoch[0.0] > lr_by_epoch[1.0] > lr_by_epoch[2.0] > 0
    assert main(["train", "--resume", str(run), "--num_epochs", "2"]) == 2
    assert "may only grow" in capsys.readouterr().err


def test_repeated_sigkills_then_resumes_match_an_uninterrupted_run(dataset: Path, tmp_path: Path) -> None:
    """Killed twice in the first epoch (the second time right after its last batch, before validation) and once
    inside the second, resumed after each kill: the same weights (bit for bit), metrics.csv rows and global step
    as a run that never stopped."""
    flags = ["--dataset_root", str(dataset), "--num_epochs", "3", "--checkpoint_every_n_steps", "1",
             "--deterministic", "true", "--prepare_submission", "no", *BASE_FLAGS]
    reference, interrupted = tmp_path / "reference", tmp_path / "interrupted"
    train_in_process("--log_dir", str(reference), *flags, threads=int(ENV["OMP_NUM_THREADS"]))

    killer = str(Path(__file__).with_name("kill_after_step.py"))
    last = interrupted / "checkpoints" / "last.ckpt"
    # 4 steps per epoch. Step 4 ends epoch 0: its checkpoint is the epoch-end one, after validation, so the
    # newest checkpoint at that kill is step 3's.
    for kill_step, saved_step in ((2, 2), (4, 3), (6, 6)):
        resume = ["--resume", str(interrupted)] if last.exists() else []
        victim = subprocess.Popen([sys.executable, killer, str(kill_step), "--log_dir", str(interrupted), *resume,
                                   *flags], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert victim.wait(timeout=600) == -signal.SIGKILL, victim.stdout.read()
        assert torch.load(last, weights_only=True)["global_step"] == saved_step

    train_in_process("--log_dir", str(interrupted), "--resume", str(interrupted), *flags, threads=int(ENV["OMP_NUM_THREADS"]))

    a = torch.load(reference / "checkpoints" / "last.ckpt", weights_only=True)
    b = torch.load(last, weights_only=True)
    assert a["global_step"] == b["global_step"] == 12
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key
    assert read_rows(reference / "metrics.csv") == read_rows(interrupted / "metrics.csv")
    assert len([r for r in read_rows(reference / "metrics.csv") if r.get("metrics_summary/grader")]) == 3


def test_sigterm_saves_checkpoint_and_exits_cleanly(dataset: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    proc = mtl_subprocess("train", "--log_dir", str(run), "--dataset_root", str(dataset), "--num_epochs", "50",
                          "--checkpoint_every_n_steps", "0", "--prepare_submission", "no", *BASE_FLAGS)
    metrics = run / "metrics.csv"
    deadline = time.monotonic() + 300
    while not (metrics.exists() and read_rows(metrics)) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 128 + signal.SIGTERM
    output = proc.stdout.read()
    assert "received SIGTERM" in output and "--resume" in output and "Traceback" not in output
    state = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert state["global_step"] > 0


def test_ddp_two_processes_report_single_process_metrics(dataset: Path, tmp_path: Path) -> None:
    run = tmp_path / "ddp"
    proc = mtl_subprocess("train", "--log_dir", str(run), "--dataset_root", str(dataset), "--num_epochs", "1",
                          "--accelerator", "cpu", "--devices", "2", "--strategy", "ddp", "--prepare_submission", "no",
                          *BASE_FLAGS)
    assert proc.wait(timeout=600) == 0, proc.stdout.read()
    row = [r for r in read_rows(run / "metrics.csv") if r.get("metrics_summary/grader")][-1]
    # 5 validation images over 2 processes (3 + 2): no sample padded or dropped
    module = load_predictor(run / "checkpoints" / "last.ckpt")
    single = evaluate_split(module, val_split(dataset, module), batch_size=2)
    semseg, depth = single["tasks"]["semseg"], single["tasks"]["depth"]
    assert float(row["metrics_summary/semseg"]) == pytest.approx(semseg["miou"], abs=1e-4)
    assert float(row["metrics_summary/depth"]) == pytest.approx(depth["si_log_rmse"], abs=1e-4)
    assert float(row["metrics_task_depth/rmse"]) == pytest.approx(depth["depth_metrics"]["rmse"], rel=1e-5)


def test_log_depth_validation_matches_grader_on_written_pngs(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Metrics compare metres with untouched ground truth whatever the training unit (a published pitfall)."""
    data = make_tiny_dataset(tmp_path / "data", {"train": 4, "val": 4, "test": 0}, 64, 64, seed=3)
    run = tmp_path / "run"
    assert main(["train", "--dataset_root", str(data), "--log_dir", str(run), "--num_epochs", "1",
                 "--depth_unit", "log", "--loss_depth", "l1", *BASE_FLAGS]) == 0
    row = [r for r in read_rows(run / "metrics.csv") if r.get("metrics_summary/depth")][-1]
    predict_dataset_split(load_predictor(run / "checkpoints" / "best.ckpt"), DATASETS["miniscapes"](data), "val",
                          tmp_path / "sub" / "predictions", 2, "cpu")
    with zipfile.ZipFile(tmp_path / "sub.zip", "w") as zf:
        for file in (tmp_path / "sub" / "predictions").rglob("*.png"):
            zf.write(file, file.relative_to(tmp_path / "sub").as_posix())
    capsys.readouterr()
    assert main(["grade", str(tmp_path / "sub.zip"), "--gt", str(data / "val")]) == 0
    graded = json.loads(capsys.readouterr().out)
    # PNG disparity codes quantise depth (coarsely near 300 m); the gap stays a small fraction of the score
    val_si = float(row["metrics_summary/depth"])
    assert graded["si_log_rmse"] == pytest.approx(val_si, rel=0.05, abs=1.0)
    assert graded["miou"] == pytest.approx(float(row["metrics_summary/semseg"]), abs=1e-4)
