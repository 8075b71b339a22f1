"""Every branch of the hardware choice runs on every machine: MTL_HARDWARE names the hardware, and each of the
three paths that ``--precision auto`` can take — fp32, bf16-mixed with channels_last, 16-mixed with channels_last
and a gradient scaler — trains 2 steps with a gradient method (PCGrad on the shared parameters: it writes .grad
itself, multiplied by the scaler's factor), is killed after the first and resumes exactly, trains with the plain
weighted sum (Lightning's own scaled backward), then predicts (plain and with test-time augmentation) and exports
to ONNX. The other kinds make the same choices as one of these three (tests/test_hardware.py). Sizes are tiny:
bf16 and fp16 are emulated, and slow, where there are no units."""

from __future__ import annotations

import csv
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import FAST_TRAIN_FLAGS, make_tiny_dataset

from mtl.cli.main import main
from mtl.hardware import HARDWARE_ENV, autocast_dtype
from mtl.inference.predictor import load_predictor
from mtl.inference.tta import TestTimeAugmentation
from mtl.models.ops import resize
from mtl.tasks import final

pytestmark = pytest.mark.slow

PATHS = {  # MTL_HARDWARE → (precision, channels_last, gradient scaler)
    "avx2": ("32", False, False),
    "avx512_bf16": ("bf16-mixed", True, False),
    "cuda_sm70": ("16-mixed", True, True),
}
# 4 training images in batches of 2: 2 optimiser steps in one epoch, a checkpoint after each.
BASE = [*FAST_TRAIN_FLAGS, "--num_epochs", "1", "--checkpoint_every_n_steps", "1", "--deterministic", "true",
        "--optimizer", "adam", "--optimizer_lr", "0.001", "--prepare_submission", "no",
        "--num_steps_visualization_first", "0", "--accelerator", "cpu"]
FLAGS = [*BASE, "--loss_weighting", "pcgrad", "--weighting_on", "parameters"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_dataset(tmp_path_factory.mktemp("paths") / "data", {"train": 4, "val": 2, "test": 0}, 64, 64)


@pytest.fixture(params=list(PATHS))
def kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(HARDWARE_ENV, request.param)
    return request.param


def test_train_kill_resume_predict_tta_export(kind: str, dataset: Path, tmp_path: Path, capsys) -> None:
    precision, channels_last, scaler = PATHS[kind]
    reference, interrupted = tmp_path / "reference", tmp_path / "interrupted"
    assert main(["train", "--dataset_root", str(dataset), "--log_dir", str(reference), *FLAGS]) == 0
    assert capsys.readouterr().out.startswith(f"mtl train: {'fp32' if precision == '32' else precision}")
    recorded = yaml.safe_load((reference / "hardware.yaml").read_text())
    assert (recorded["precision"], recorded["channels_last"], recorded["grad_scaler"]) == PATHS[kind]
    assert recorded["hardware"] == kind and recorded["device"] == "cpu"

    # Killed (SIGKILL, no chance to save) right after step 1 and its checkpoint, then resumed.
    killer = str(Path(__file__).with_name("kill_after_step.py"))
    victim = subprocess.run([sys.executable, killer, "1", "--dataset_root", str(dataset), "--log_dir", str(interrupted),
                             *FLAGS], env=os.environ, capture_output=True, text=True, timeout=300)
    assert victim.returncode == -signal.SIGKILL, victim.stdout + victim.stderr
    last = interrupted / "checkpoints" / "last.ckpt"
    first = torch.load(last, weights_only=True)
    assert first["global_step"] == 1
    # Lightning keeps the gradient scaler's state (scale, growth tracker) in the checkpoint under 16-mixed.
    assert ("MixedPrecision" in first) is scaler
    assert main(["train", "--resume", str(interrupted)]) == 0
    a = torch.load(reference / "checkpoints" / "last.ckpt", weights_only=True)
    b = torch.load(last, weights_only=True)
    assert a["global_step"] == b["global_step"] == 2
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key
    if scaler:
        assert a["MixedPrecision"] == b["MixedPrecision"]
    assert (reference / "metrics.csv").read_text() == (interrupted / "metrics.csv").read_text()
    fixed = tmp_path / "fixed"
    assert main(["train", "--dataset_root", str(dataset), "--log_dir", str(fixed), *BASE]) == 0
    for run in (reference, fixed):
        losses = [float(row["loss_train/total"]) for row in csv.DictReader((run / "metrics.csv").open()) if row["loss_train/total"]]
        assert len(losses) == 2 and all(math.isfinite(v) for v in losses), run

    # Prediction runs in the path's precision and memory format.
    predictor = load_predictor(last)
    assert (predictor.precision, predictor.channels_last) == (precision, channels_last)
    image = dataset / "val" / "rgb" / "0.jpg"
    assert main(["predict", "--checkpoint", str(last), "--input", str(image), "--out", str(tmp_path / "pred")]) == 0
    assert {p.name for p in (tmp_path / "pred").iterdir()} >= {"0_semseg.png", "0_depth.png"}
    check_tta_in_the_predictors_precision(predictor, torch.randint(0, 256, (1, 3, 40, 56)))

    # The ONNX graph is fp32 whatever the run trained in; `mtl export` checks it against fp32 PyTorch itself.
    onnx = tmp_path / "model.onnx"
    capsys.readouterr()
    assert main(["export", "--checkpoint", str(last), "--out", str(onnx), "--height", "48", "--width", "64"]) == 0
    rows = capsys.readouterr().out.splitlines()[2:]
    assert len(rows) == 4 and all(row.split()[-1] == "yes" for row in rows)


def check_tta_in_the_predictors_precision(predictor, rgb: torch.Tensor) -> None:
    """TTA's depth is the mean of each view's metres, each view computed under the predictor's autocast.
    The views and the hand computation run the same kernels in the same precision; only the order of summing 4
    fp32 terms may differ, hence rtol 1e-5."""
    dtype = autocast_dtype(predictor.precision)
    size = tuple(rgb.shape[-2:])
    metres = []
    with torch.no_grad():
        for view in (size, (24, 34)):
            for flip in (False, True):
                x = resize(rgb.float(), view) if view != size else rgb.float()
                x = x.flip(-1) if flip else x
                with torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
                    out = final(predictor(x)["depth"])
                depth = predictor.tasks["depth"].unit.decode(out.float())
                depth = depth.flip(-1) if flip else depth
                metres.append(resize(depth, size)[:, 0] if view != size else depth[:, 0])
    got = TestTimeAugmentation(predictor, scales=(1.0, 24 / 40), flip=True).predict(rgb)
    torch.testing.assert_close(got["depth"], torch.stack(metres).mean(0), rtol=1e-5, atol=1e-4)
    assert np.isfinite(got["depth"].numpy()).all()
