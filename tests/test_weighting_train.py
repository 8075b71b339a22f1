"""Weighting methods through `mtl train` on CPU: bf16 mixed precision, gradient accumulation (with a kill inside an
accumulation window), an exact resume of a stateful method after SIGKILL, and Lightning's DDP with two processes."""

from __future__ import annotations

import csv
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import FAST_TRAIN_FLAGS, make_tiny_dataset, train_in_process

pytestmark = pytest.mark.slow

TESTS = Path(__file__).parent
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
BASE = [*FAST_TRAIN_FLAGS, "--optimizer", "adam", "--optimizer_lr", "0.001", "--prepare_submission", "no",
        "--accelerator", "cpu"]

# Like tests/kill_after_step.py, but counts batches, so that it can stop a run inside an accumulation window.
KILL_AFTER_BATCH = """
import os, signal, sys
import pytorch_lightning as pl
from mtl.config import parse_config
from mtl.engine.train import run_training

class KillAfterBatch(pl.Callback):
    def __init__(self, n):
        self.n, self.seen = n, 0
    def on_train_batch_end(self, trainer, *args):
        self.seen += 1
        if self.seen == self.n:
            os.kill(os.getpid(), signal.SIGKILL)

run_training(parse_config(sys.argv[2:]), [KillAfterBatch(int(sys.argv[1]))])
"""


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_dataset(tmp_path_factory.mktemp("weighting") / "data", {"train": 8, "val": 2, "test": 2}, 64, 64)


def train(*args: str) -> None:
    """In this process, with the victims' one thread (their ENV): the same numbers, without a new interpreter."""
    train_in_process(*args, threads=int(ENV["OMP_NUM_THREADS"]))


def train_subprocess(*args: str) -> subprocess.CompletedProcess:
    """A new interpreter, for Lightning's DDP launcher (it starts its processes from the command line)."""
    done = subprocess.run([sys.executable, "-m", "mtl.cli.main", "train", *args], env=ENV, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def training_rows(run: Path) -> list[dict[str, str]]:
    return [r for r in read_rows(run / "metrics.csv") if r.get("loss_train/total")]


def assert_same_run(a: Path, b: Path) -> None:
    ca = torch.load(a / "checkpoints" / "last.ckpt", weights_only=True)
    cb = torch.load(b / "checkpoints" / "last.ckpt", weights_only=True)
    assert ca["global_step"] == cb["global_step"]
    for key, value in ca["state_dict"].items():
        assert torch.equal(value, cb["state_dict"][key]), key
    assert read_rows(a / "metrics.csv") == read_rows(b / "metrics.csv")


@pytest.mark.parametrize("method, on", [("mgda", "representation"), ("cagrad", "parameters")])
def test_gradient_method_under_bf16_mixed_precision(dataset: Path, tmp_path: Path, method: str, on: str) -> None:
    run = tmp_path / "run"
    train("--dataset_root", str(dataset), "--log_dir", str(run), "--num_epochs", "1", "--precision", "bf16-mixed",
          "--loss_weighting", method, "--weighting_on", on, *BASE)
    rows = training_rows(run)
    assert [r["step"] for r in rows] == ["0", "1", "2", "3"]
    for row in rows:
        assert math.isfinite(float(row["loss_train/total"]))
        weights = [float(row[f"loss_weight/{t}"]) for t in ("semseg", "depth")]
        assert all(math.isfinite(w) for w in weights)
        if method == "mgda":
            assert sum(weights) == pytest.approx(1.0, abs=1e-6) and min(weights) >= 0
    state = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert all(torch.isfinite(v).all() for v in state["state_dict"].values() if v.is_floating_point())


def test_accumulation_steps_every_two_batches_and_resumes_inside_a_window(dataset: Path, tmp_path: Path) -> None:
    """8 samples, batch 2, --accumulate_grad_batches 2: 2 optimiser steps per epoch, a per-step poly schedule over
    4 steps; killed after the 3rd batch (inside the second window of epoch 0) and resumed, the run equals one that
    never stopped."""
    flags = ["--dataset_root", str(dataset), "--num_epochs", "2", "--accumulate_grad_batches", "2",
             "--loss_weighting", "pcgrad", "--weighting_on", "parameters", "--lr_scheduler_step_unit", "step",
             "--checkpoint_every_n_steps", "1", "--deterministic", "true", *BASE]
    reference, interrupted = tmp_path / "reference", tmp_path / "interrupted"
    train("--log_dir", str(reference), *flags)
    rows = training_rows(reference)
    assert [r["step"] for r in rows] == ["0", "1", "2", "3"]  # one row per optimiser step
    lrs = [float(r["LR"]) for r in rows]
    assert lrs == pytest.approx([0.001 * (1 - i / 4) ** 0.9 for i in range(4)])
    assert torch.load(reference / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 4

    victim = subprocess.run([sys.executable, "-c", KILL_AFTER_BATCH, "3", "--log_dir", str(interrupted), *flags],
                            env=ENV, capture_output=True, text=True, timeout=600)
    assert victim.returncode == -signal.SIGKILL, victim.stdout + victim.stderr
    saved = torch.load(interrupted / "checkpoints" / "last.ckpt", weights_only=True)
    assert saved["global_step"] == 1 and saved["mtl"]["batches_done"] == 3
    assert "accumulated_grads" in saved and saved["weighting_state"]["window"]["acc"] is not None
    train("--log_dir", str(interrupted), "--resume", str(interrupted), *flags)
    assert_same_run(reference, interrupted)


def test_famo_killed_and_resumed_equals_an_uninterrupted_run(dataset: Path, tmp_path: Path) -> None:
    flags = ["--dataset_root", str(dataset), "--num_epochs", "2", "--loss_weighting", "famo",
             "--checkpoint_every_n_steps", "1", "--deterministic", "true", *BASE]
    reference, interrupted = tmp_path / "reference", tmp_path / "interrupted"
    train("--log_dir", str(reference), *flags)
    killer = str(TESTS / "kill_after_step.py")
    last = interrupted / "checkpoints" / "last.ckpt"
    for kill_step in (2, 5):  # 4 steps per epoch: inside epoch 0, then inside epoch 1
        resume = ["--resume", str(interrupted)] if last.exists() else []
        victim = subprocess.run([sys.executable, killer, str(kill_step), "--log_dir", str(interrupted), *resume, *flags],
                                env=ENV, capture_output=True, text=True, timeout=600)
        assert victim.returncode == -signal.SIGKILL, victim.stdout + victim.stderr
    train("--log_dir", str(interrupted), "--resume", str(interrupted), *flags)
    assert_same_run(reference, interrupted)
    a = torch.load(reference / "checkpoints" / "last.ckpt", weights_only=True)["weighting_state"]
    b = torch.load(last, weights_only=True)["weighting_state"]
    assert torch.equal(a["logits"], b["logits"]) and not torch.equal(a["logits"], torch.zeros_like(a["logits"]))
    weights = [[float(r[f"loss_weight/{t}"]) for t in ("semseg", "depth")] for r in training_rows(reference)]
    assert len({tuple(w) for w in weights}) > 1  # the weights moved


@pytest.mark.parametrize("method, on", [("pcgrad", "parameters"), ("mgda", "representation")])
def test_gradient_method_under_lightning_ddp(dataset: Path, tmp_path: Path, method: str, on: str) -> None:
    """Two CPU processes: the per-task gradients are averaged by the method (DDP's reducer never sees them in
    parameter mode; in representation mode it averages the one backward pass), and the processes stay in step."""
    run = tmp_path / "ddp"
    train_subprocess("--dataset_root", str(dataset), "--log_dir", str(run), "--num_epochs", "1", "--devices", "2",
          "--strategy", "ddp", "--loss_weighting", method, "--weighting_on", on, *BASE)
    rows = training_rows(run)
    assert [r["step"] for r in rows] == ["0", "1"]  # 8 samples over 2 processes, batch 2 each
    state = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert state["global_step"] == 2
    assert all(torch.isfinite(v).all() for v in state["state_dict"].values() if v.is_floating_point())


@pytest.mark.parametrize("model", ["distillation", "cross_stitch"])
def test_representation_of_a_model_without_one_is_refused_in_one_line(dataset: Path, tmp_path: Path, model: str, capsys) -> None:
    from mtl.cli.main import main

    run = tmp_path / "run"
    code = main(["train", "--dataset_root", str(dataset), "--log_dir", str(run), "--model_name", model,
                 "--loss_weighting", "mgda", *BASE])
    assert code == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("mtl train: --weighting_on representation: model "), err
    assert err[0].endswith("; use --weighting_on parameters") and not run.exists()
