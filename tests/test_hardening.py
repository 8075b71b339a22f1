"""A run survives what goes wrong: a NaN loss, a corrupt image, a hostile checkpoint, a killed save, a finished
run resumed again; the submission packs the best weights only; Weights & Biases works offline."""

from __future__ import annotations

import io
import json
import os
import pickle
import zipfile
from pathlib import Path

import pytest
import torch
import yaml
from conftest import FAST_TRAIN_FLAGS, make_tiny_dataset

from mtl.cli.main import main
from mtl.hardware import choose

pytestmark = pytest.mark.slow

FLAGS = [*FAST_TRAIN_FLAGS, "--num_epochs", "1", "--prepare_submission", "no"]
# Resumes pass --allow_changed_code: what they test is not the code-change rule (tests/test_train.py is).


def one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_dataset(tmp_path_factory.mktemp("hard") / "data", {"train": 8, "val": 2, "test": 2}, 64, 64)


def test_nan_stop_leaves_a_checkpoint_from_before_the_bad_step(dataset: Path, tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    # A learning rate this large makes the weights overflow after the first step: the second loss is not finite.
    argv = ["train", "--dataset_root", str(dataset), "--log_dir", str(run), *FLAGS, "--optimizer", "sgd",
            "--optimizer_lr", "1e30", "--checkpoint_every_n_steps", "0"]
    assert main(argv) == 1
    err = one_line(capsys.readouterr().err)
    assert "is nan" in err or "is inf" in err
    last = run / "checkpoints" / "last.ckpt"
    assert f"the last good checkpoint is {last}" in err and f"mtl train --resume {run}" in err
    state = torch.load(last, weights_only=True)
    assert all(torch.isfinite(v).all() for v in state["state_dict"].values() if v.is_floating_point())
    # The run folder can be resumed (with the learning rate fixed) and finishes.
    assert main(["train", "--resume", str(run), "--allow_changed_code", "--optimizer_lr", "0.001"]) == 0
    assert torch.load(last, weights_only=True)["global_step"] == 4


def test_a_corrupt_image_stops_with_one_line_and_a_resumable_run(dataset: Path, tmp_path: Path, capsys) -> None:
    data = make_tiny_dataset(tmp_path / "data", {"train": 8, "val": 2}, 64, 64)
    bad = data / "train" / "rgb" / "5.jpg"
    good = bad.read_bytes()
    bad.write_bytes(good[: len(good) // 3])  # truncated
    run = tmp_path / "run"
    flags = [*FLAGS, "--workers", "1"]  # the error crosses a data-loader worker
    assert main(["train", "--dataset_root", str(data), "--log_dir", str(run), *flags]) == 2
    err = one_line(capsys.readouterr().err)
    assert err.startswith(f"mtl train: {bad}: cannot decode image") and "mtl data check" in err
    bad.write_bytes(good)
    assert main(["train", "--resume", str(run), "--allow_changed_code"]) == 0


def test_a_failure_before_the_first_checkpoint_leaves_no_run_folder(tmp_path: Path, capsys) -> None:
    data = make_tiny_dataset(tmp_path / "data", {"train": 4, "val": 2}, 64, 64)
    (data / "train" / "depth" / "2.png").write_bytes(b"not a png")  # read by --depth_stats auto, before training
    run = tmp_path / "run"
    flags = [f for f in FLAGS if f != "miniscapes"]
    flags[flags.index("--depth_stats") + 1 : flags.index("--depth_stats") + 1] = ["auto"]
    assert main(["train", "--dataset_root", str(data), "--log_dir", str(run), *flags]) == 2
    assert str(data / "train" / "depth" / "2.png") in one_line(capsys.readouterr().err)
    assert not run.exists()


def test_the_crop_must_fit_the_images(dataset: Path, tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    argv = ["train", "--dataset_root", str(dataset), "--log_dir", str(run), *FLAGS, "--aug_input_crop_size", "256"]
    assert main(argv) == 2
    err = one_line(capsys.readouterr().err)
    assert "--aug_input_crop_size 256 is larger than the 64×64 training images" in err and "at most 64" in err
    assert not run.exists()


def test_hostile_or_broken_checkpoints_are_one_line_without_unsafe_advice(dataset: Path, tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    assert main(["train", "--dataset_root", str(dataset), "--log_dir", str(run), *FLAGS]) == 0
    capsys.readouterr()
    last = run / "checkpoints" / "last.ckpt"

    class Payload:
        def __reduce__(self):
            return (print, ("pwned",))

    buffer = io.BytesIO()
    torch.save({"state_dict": {}, "hyper_parameters": {}, "x": Payload()}, buffer)
    cases = {
        "garbage": b"\x00not a checkpoint at all",
        "pickle": pickle.dumps(Payload()),
        "torch pickle": buffer.getvalue(),
        "truncated": last.read_bytes()[:1000],
    }
    for name, content in cases.items():
        last.write_bytes(content)
        assert main(["train", "--resume", str(run), "--allow_changed_code"]) == 2, name
        captured = capsys.readouterr()
        err = one_line(captured.err)
        assert err.startswith(f"mtl train: {last}: ") and "weights_only=False" not in err and "pwned" not in captured.out, name
        assert main(["predict", "--checkpoint", str(last), "--input", str(dataset / "val" / "rgb" / "0.jpg"),
                     "--out", str(tmp_path / "p")]) == 1
        err = one_line(capsys.readouterr().err)
        assert "weights_only=False" not in err, name


def test_resuming_a_finished_run_has_nothing_to_do_and_stale_temporaries_go(dataset: Path, tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    assert main(["train", "--dataset_root", str(dataset), "--log_dir", str(run), *FLAGS]) == 0
    capsys.readouterr()
    stale = run / "checkpoints" / "last.ckpt.tmp"
    stale.write_bytes(b"half a checkpoint")
    events = sorted(p.name for p in run.glob("events.out.tfevents.*"))
    assert main(["train", "--resume", str(run), "--allow_changed_code"]) == 0
    out = capsys.readouterr().out
    assert "nothing to do" in out and "--num_epochs 2" in out
    assert not stale.exists()
    assert sorted(p.name for p in run.glob("events.out.tfevents.*")) == events  # no new event file, no prediction
    recorded = yaml.safe_load((run / "hardware.yaml").read_text())  # what --precision auto chose, and why
    chosen = choose("auto", "auto", "auto")  # for the hardware MTL_HARDWARE names (conftest: avx2 unless set)
    assert (recorded["precision"], recorded["hardware"], recorded["hardware_overridden"]) == (
        chosen.precision, os.environ["MTL_HARDWARE"], True
    )
    assert {"cpu", "cpu_units", "torch", "device", "channels_last", "hardware_detected", "reason"} <= set(recorded)


def test_submission_packs_the_best_weights_only(dataset: Path, tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    flags = [f if f != "no" else "yes" for f in FLAGS]
    assert main(["train", "--dataset_root", str(dataset), "--log_dir", str(run), *flags]) == 0
    with zipfile.ZipFile(run / "submission.zip") as zf:
        names = set(zf.namelist())
    assert "checkpoints/best.ckpt" in names and "checkpoints/last.ckpt" not in names
    best = torch.load(run / "checkpoints" / "best.ckpt", weights_only=True)
    assert "optimizer_states" not in best and "state_dict" in best
    last = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert "optimizer_states" in last  # the resumable one keeps everything
    capsys.readouterr()
    assert main(["grade", str(run / "submission.zip"), "--gt", str(dataset / "test_gt")]) == 0
    assert 0 <= json.loads(capsys.readouterr().out)["grader"] <= 100
    assert main(["predict", "--checkpoint", str(run / "checkpoints" / "best.ckpt"), "--split", "val",
                 "--dataset_root", str(dataset), "--out", str(tmp_path / "pred")]) == 0


def test_weights_and_biases_offline_gets_the_scalars_and_pictures(dataset: Path, tmp_path: Path, monkeypatch) -> None:
    pytest.importorskip("wandb", reason="the wandb extra is not installed")
    from wandb_records import history

    monkeypatch.setenv("WANDB_API_KEY", "")
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb_config"))
    run = tmp_path / "run"
    argv = ["train", "--dataset_root", str(dataset), "--log_dir", str(run), *FLAGS, "--logger", "tensorboard,wandb",
            "--wandb_mode", "online", "--num_steps_visualization_first", "1"]  # no credentials: stays offline
    assert main(argv) == 0
    (record,) = list((run / "wandb").glob("offline-run-*/run-*.wandb"))
    rows = history(record)
    keys = set().union(*rows)
    assert {"loss_train/total", "metrics_summary/grader", "metrics_summary/semseg", "LR"} <= keys
    assert any(k.startswith("valid/observed_samples") for k in keys) and any(k.startswith("train/batch_crops") for k in keys)
    grader = [float(r["metrics_summary/grader"]) for r in rows if "metrics_summary/grader" in r]
    with (run / "metrics.csv").open() as f:
        import csv

        csv_grader = [float(r["metrics_summary/grader"]) for r in csv.DictReader(f) if r.get("metrics_summary/grader")]
    assert grader == pytest.approx(csv_grader)


def test_histograms_of_nothing_finite_are_left_out_instead_of_stopping_the_run(tmp_path: Path) -> None:
    from pytorch_lightning.loggers import TensorBoardLogger
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from mtl.engine.loggers import add_histogram

    logger = TensorBoardLogger(str(tmp_path), name="", version="")
    add_histogram([logger], "empty", torch.empty(0), 0)  # TensorBoard itself raises on both
    add_histogram([logger], "diverged", torch.full((4,), float("nan")), 0)
    add_histogram([logger], "some", torch.tensor([1.0, float("inf"), 3.0, float("nan")]), 0)
    logger.experiment.flush()
    events = EventAccumulator(str(tmp_path), size_guidance={"histograms": 0})
    events.Reload()
    assert events.Tags()["histograms"] == ["some"]
    histogram = events.Histograms("some")[0].histogram_value
    assert (histogram.num, histogram.min, histogram.max) == (2, 1.0, 3.0)
