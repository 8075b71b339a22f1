"""The surface-normals task: metrics against NumPy, loss, augmentation that turns vectors with the image,
and a three-task run (semseg, depth, normals) that trains, logs the normals metrics and predicts a picture."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import FAST_TRAIN_FLAGS
from PIL import Image

from mtl.cli.main import main
from mtl.data.formats import read_normals
from mtl.data.transforms import PerspectiveCrop, Target, WarpParams
from mtl.datasets import DATASETS
from mtl.metrics.normals import NormalsMetrics
from mtl.tasks import TASKS

INFO = DATASETS["miniscapes"].info


def random_normals(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    n = torch.randn(*shape, generator=torch.Generator().manual_seed(seed))
    return n / n.norm(dim=1, keepdim=True)


def test_metrics_match_numpy_on_pooled_pixels() -> None:
    pred, target = random_normals((2, 3, 9, 11), 0), random_normals((2, 3, 9, 11), 1)
    target = 0.7 * target + 0.3 * pred  # spread the angles over the thresholds
    target = target / target.norm(dim=1, keepdim=True)
    target[0, :, :2] = float("nan")  # invalid rows
    metric = NormalsMetrics()
    metric.update(pred[:1], target[:1])
    metric.update(pred[1:], target[1:])
    result = metric.compute()

    p = pred.permute(0, 2, 3, 1).reshape(-1, 3).numpy().astype(np.float64)
    t = target.permute(0, 2, 3, 1).reshape(-1, 3).numpy().astype(np.float64)
    keep = np.isfinite(t).all(1)
    angles = np.degrees(np.arccos(np.clip((p[keep] * t[keep]).sum(1), -1, 1)))
    assert float(result["mean_angle"]) == pytest.approx(angles.mean(), abs=1e-6)
    # Any value between the two middle angles is a median (their mean is NumPy's); 0.01° bins.
    middle = np.sort(angles)[[(len(angles) - 1) // 2, len(angles) // 2]]
    assert middle[0] - 0.01 <= float(result["median_angle"]) <= middle[1] + 0.01
    for key, threshold in (("within_11_25", 11.25), ("within_22_5", 22.5), ("within_30", 30.0)):
        assert float(result[key]) == pytest.approx(100 * (angles < threshold).mean(), abs=1e-9)


def test_loss_is_zero_for_the_truth_and_ignores_invalid_pixels() -> None:
    task = TASKS["normals"](INFO)
    target = random_normals((1, 3, 4, 4), 2)
    target[0, :, 0] = float("nan")
    raw = (target * 3.0).nan_to_num(1.0).requires_grad_()  # any length: the loss sees unit vectors
    loss = task.loss(raw, target)
    assert loss.item() == pytest.approx(0.0, abs=1e-6)
    loss.backward()
    assert torch.isfinite(raw.grad).all()
    opposite = task.loss(-raw.detach(), target)
    assert opposite.item() == pytest.approx(2.0, abs=1e-5)  # 1 − cos 180°


def test_augmentation_turns_normals_with_the_image() -> None:
    """A normal's image-plane part must turn like a displacement between two marked pixels does."""
    task = TASKS["normals"](INFO)
    size = 31
    rgb = torch.zeros(3, size, size, dtype=torch.uint8)
    a, b = (15, 15), (15, 22)  # (row, column): b lies 7 px to the right of a
    rgb[0, a[0], a[1]], rgb[1, b[0], b[1]] = 255, 255
    normals = torch.zeros(3, size, size)
    normals[0] = 1.0  # every normal points right: the direction from a to b
    crop = PerspectiveCrop(size, targets={"normals": Target(math.nan, torch.float32, task.reorient)})
    for angle_deg, flip in ((30.0, False), (-50.0, False), (0.0, True), (40.0, True)):
        angle = math.radians(angle_deg)
        half = size / 2
        corners = []
        for cx, cy in ((-1, -1), (1, -1), (1, 1), (-1, 1)):
            x, y = cx * half, cy * half
            corners.append((math.cos(angle) * x - math.sin(angle) * y + half, math.sin(angle) * x + math.cos(angle) * y + half))
        out = crop.apply({"rgb": rgb, "normals": normals}, WarpParams(tuple(corners), flip, angle))
        ya, xa = np.unravel_index(out["rgb"][0].float().argmax().item(), (size, size))
        yb, xb = np.unravel_index(out["rgb"][1].float().argmax().item(), (size, size))
        moved = np.array([xb - xa, yb - ya], dtype=float)
        moved /= np.linalg.norm(moved)
        n = out["normals"][:, size // 2, size // 2]
        assert np.degrees(np.arccos(np.clip(moved @ n[:2].numpy(), -1, 1))) < 10, (angle_deg, flip)
        assert n[2].item() == 0.0


def test_flip_back_of_tta_undoes_a_mirrored_view() -> None:
    task = TASKS["normals"](INFO)
    raw = random_normals((1, 3, 2, 5), 3)
    mirrored = raw.flip(-1) * torch.tensor([-1.0, 1.0, 1.0]).view(1, 3, 1, 1)  # what a mirrored input shows
    torch.testing.assert_close(task.flip_back(mirrored), raw)


@pytest.mark.slow
def test_three_tasks_train_log_normals_metrics_and_predict_a_picture(tmp_path: Path, capsys) -> None:
    data = tmp_path / "data"
    DATASETS["miniscapes"].generate(data, num_train=4, num_val=2, num_test=1, width=128, height=64, seed=0, workers=1)
    run = tmp_path / "run"
    flags = [*FAST_TRAIN_FLAGS, "--tasks", "semseg,depth,normals", "--num_epochs", "1", "--prepare_submission", "no"]
    for model in ("deeplabv3p", "branched", "distillation"):
        folder = run / model
        assert main(["train", "--dataset_root", str(data), "--log_dir", str(folder), "--model_name", model, *flags]) == 0
        assert "normals mean angle" in capsys.readouterr().out
        with (folder / "metrics.csv").open() as f:
            rows = list(csv.DictReader(f))
        row = [r for r in rows if r.get("metrics_summary/normals")][-1]
        assert 0 <= float(row["metrics_task_normals/mean_angle"]) <= 180
        assert 0 <= float(row["metrics_task_normals/within_30"]) <= 100
        assert float(row["loss_val/normals"]) > 0
        assert all(float(r["loss_train/normals"]) > 0 for r in rows if r.get("loss_train/normals"))
    out = tmp_path / "pred"
    image = data / "val" / "rgb" / "0.jpg"
    ckpt = run / "distillation" / "checkpoints" / "last.ckpt"
    assert main(["predict", "--checkpoint", str(ckpt), "--input", str(image), "--out", str(out)]) == 0
    picture = Image.open(out / "0_normals.png")
    assert picture.mode == "RGB" and picture.size == (128, 64)
    normals = read_normals(out / "0_normals.png")
    assert np.isfinite(normals).all()  # a prediction has a normal everywhere
    np.testing.assert_allclose(np.linalg.norm(normals, axis=-1), 1.0, atol=0.02)
    assert Image.open(out / "0_overview.png").size == (4 * 128, 64)
