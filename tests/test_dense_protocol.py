"""The ``mtl_pytorch`` protocol and the papers' Δ_MTL equal the code behind the NYUD-v2 and PASCAL-Context
multi-task tables, written out here as it computes them, on inputs where the protocols disagree: depth with uneven
valid pixels per image and predictions ≤ 0, normals that are not unit vectors or whose components sum to 0, a class
absent from ground truth and prediction. Reference: SimonVandenhende/Multi-Task-Learning-PyTorch
evaluation/eval_depth.py, eval_normals.py, eval_semseg.py, eval_human_parts.py and evaluate_utils.py
(``save_model_predictions``, ``calculate_multi_task_performance``); MTI-Net's tables come from this code."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest
import torch

from mtl.datasets import DATASETS
from mtl.metrics.protocol import PROTOCOLS
from mtl.tasks import TASKS

MTL_PYTORCH = PROTOCOLS["mtl_pytorch"]


def test_the_dense_benchmarks_default_to_the_protocol_of_their_tables() -> None:
    assert DATASETS["nyud_mt"].eval_protocol == "mtl_pytorch"
    assert DATASETS["pascal_context"].eval_protocol == "mtl_pytorch"


def metric_of(task: str, dataset: str, protocol: str = "mtl_pytorch"):
    """The metric a run computes: the task's own, under the protocol, with the dataset's facts."""
    return TASKS[task](DATASETS[dataset].info).metric(PROTOCOLS[protocol])


# --- depth -------------------------------------------------------------------------------------------------------
def depth_fixture() -> tuple[np.ndarray, np.ndarray]:
    """5 images in metres, 0 = no ground truth, very uneven valid pixels per image; some predictions ≤ 0."""
    rng = np.random.default_rng(10)
    target = rng.uniform(0.5, 8.0, (5, 6, 8))
    for i, keep in enumerate((1.0, 0.05, 0.6, 0.1, 0.9)):
        target[i][rng.random((6, 8)) > keep] = 0.0
    target[1, 0, 0] = target[3, 0, 0] = 3.0  # at least one valid pixel in every image
    pred = target + rng.normal(0, 0.8, target.shape) * (1 + 3 * (np.arange(5) == 1)[:, None, None])
    pred[0, 0, :3] = (-0.5, 0.0, 1e-4)
    return pred, target


def reference_depth(pred: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    """eval_depth: per image, mask = label ≠ 0; label 0 → 1e-9, prediction ≤ 0 → 1e-9; squared errors and squared
    log differences summed over the masked pixels of every image, divided once by all of them."""
    total, total_log, n_valid = 0.0, 0.0, 0
    for p, g in zip(pred.copy(), target.copy()):
        mask = g != 0
        n_valid += mask.sum()
        g[g == 0] = 1e-9
        p[p <= 0] = 1e-9
        total_log += np.sum((np.log(g[mask]) - np.log(p[mask])) ** 2)
        total += np.sum((g[mask] - p[mask]) ** 2)
    return float(np.sqrt(total / n_valid)), float(np.sqrt(total_log / n_valid))


def run_depth(protocol: str, pred: np.ndarray, target: np.ndarray, batch: int) -> dict[str, float]:
    metric = metric_of("depth", "nyud_mt", protocol)
    for start in range(0, len(pred), batch):
        gt = torch.from_numpy(target[start : start + batch])
        metric.update(torch.from_numpy(pred[start : start + batch]), torch.where(gt > 0, gt, torch.nan))  # 0 → NaN
    return {k: float(v) for k, v in metric.compute().items()}


def test_depth_rmse_is_pooled_over_the_split_as_the_reference_does() -> None:
    pred, target = depth_fixture()
    rmse, log_rmse = reference_depth(pred, target)
    for batch in (1, 2, 5):  # the evaluation batch does not matter
        got = run_depth("mtl_pytorch", pred, target, batch)
        assert got["rmse"] == pytest.approx(rmse, rel=1e-12)
        assert got["log_rmse"] == pytest.approx(log_rmse, rel=1e-12)
    # The other protocols average per-image RMSEs: on this split that is a different number.
    assert run_depth("libmtl", pred, target, 2)["rmse"] != pytest.approx(rmse, rel=0.02)
    # Abs and Rel Err, which the reference does not compute, are pooled over the split (with the 1e-9 floor).
    mask = target != 0
    floored = np.where(pred > 0, pred, 1e-9)[mask]
    got = run_depth("mtl_pytorch", pred, target, 2)
    assert got["mae"] == pytest.approx(float(np.mean(np.abs(floored - target[mask]))), rel=1e-12)
    assert got["rel"] == pytest.approx(float(np.mean(np.abs(floored - target[mask]) / target[mask])), rel=1e-12)


# --- normals -----------------------------------------------------------------------------------------------------
def normals_fixture() -> tuple[np.ndarray, np.ndarray]:
    """4 images (B×3×H×W): predictions of any length; stored targets of length 0.6–1.4, zero vectors (invalid), one
    image without any valid pixel, non-zero vectors whose components sum to 0 (valid here, not for MTAN's code)."""
    rng = np.random.default_rng(11)
    target = rng.normal(0, 1, (4, 3, 5, 6))
    target /= np.linalg.norm(target, axis=1, keepdims=True)
    target *= rng.uniform(0.6, 1.4, (4, 1, 5, 6))
    target[0, :, 0, :] = 0.0
    target[2] = 0.0
    target[1, :, 2, 2] = (0.5, -0.25, -0.25)
    target[3, :, 4, 1] = (-1.0, 0.5, 0.5)
    pred = (target + rng.normal(0, 0.3, target.shape)) * rng.uniform(0.2, 3.0, (4, 1, 5, 6))
    return pred, target


def normal_ize(arr: np.ndarray) -> np.ndarray:
    return arr / (np.linalg.norm(arr, ord=2, axis=2)[..., None] + 1e-12)


def reference_normal_angles(pred: np.ndarray, target: np.ndarray, files: bool = True) -> np.ndarray:
    """save_model_predictions writes (normalize(n) + 1)·255/2 as uint8 (truncated); eval_normals reads 2·code/255 − 1,
    normalises it, keeps pixels whose label has a non-zero norm, normalises the label, and pools the angles of every
    image (an all-zero label image is skipped). ``files=False``: the same without the 8-bit files."""
    angles = []
    for p, label in zip(pred.transpose(0, 2, 3, 1), target.transpose(0, 2, 3, 1).copy()):
        if np.all(label == 0):
            continue
        unit = p / np.linalg.norm(p, axis=2, keepdims=True)
        p = normal_ize(2.0 * ((unit + 1.0) * 255 / 2.0).astype(np.uint8) / 255.0 - 1) if files else normal_ize(unit)
        valid = np.linalg.norm(label, ord=2, axis=2) != 0
        p[~valid], label[~valid] = 0.0, 0.0
        diff = np.rad2deg(np.arccos(np.clip(np.sum(p * normal_ize(label), axis=2), -1, 1)))
        angles.extend(diff[valid])
    return np.array(angles)


def normals_figures(angles: np.ndarray) -> np.ndarray:
    return np.array([np.mean(angles), np.median(angles), *(100 * np.mean(angles < t) for t in (11.25, 22.5, 30))])


def run_normals(protocol: str, pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    metric = metric_of("normals", "nyud_mt", protocol)
    for start in range(0, len(pred), 2):
        t = torch.from_numpy(target[start : start + 2])
        valid = t.abs().sum(1, keepdim=True) > 0  # the layouts' decoders: an all-zero vector is NaN
        metric.update(torch.from_numpy(pred[start : start + 2]), torch.where(valid, t, torch.nan))
    return np.array([float(v) for v in metric.compute().values()])


def test_normals_follow_the_reference_on_its_8_bit_prediction_files() -> None:
    pred, target = normals_fixture()
    angles = reference_normal_angles(pred, target)
    expected = normals_figures(angles)
    got = run_normals("mtl_pytorch", pred, target)
    np.testing.assert_allclose(got[[0, 2, 3, 4]], expected[[0, 2, 3, 4]], rtol=1e-9)  # their norms + 1e-12
    ordered = np.sort(angles)  # the pooled median comes from 0.01° bins (docs/PROTOCOLS.md)
    assert abs(got[1] - expected[1]) <= 0.01 + (ordered[len(ordered) // 2] - ordered[(len(ordered) - 1) // 2]) / 2
    assert len(angles) == np.sum(np.linalg.norm(target, axis=1) != 0)  # the sum-zero vectors count
    # The 8-bit files move the figure: unquantised, the same pixels give the course protocol's mean.
    unquantised = normals_figures(reference_normal_angles(pred, target, files=False))
    assert run_normals("course", pred, target)[0] == pytest.approx(unquantised[0], rel=1e-9)
    assert abs(unquantised[0] - expected[0]) > 1e-6 * expected[0]


# --- semseg and human parts: a class absent from ground truth and prediction --------------------------------------
def reference_jaccards(pred: np.ndarray, gt: np.ndarray, n: int, skip_without_people: bool = False) -> np.ndarray:
    """eval_semseg / eval_human_parts: TP, FP, FN per class over the images (gt 255 left out), IoU =
    tp / max(tp + fp + fn, 1e-8), so an absent class scores 0 and counts in np.mean; eval_human_parts skips an
    image whose ground truth is only 0 or only 255."""
    tp, fp, fn = np.zeros(n), np.zeros(n), np.zeros(n)
    for mask, g in zip(pred, gt):
        uniq = np.unique(g)
        if skip_without_people and len(uniq) == 1 and uniq[0] in (0, 255):
            continue
        valid = g != 255
        for c in range(n):
            tmp_gt, tmp_pred = g == c, mask == c
            tp[c] += np.sum(tmp_gt & tmp_pred & valid)
            fp[c] += np.sum(~tmp_gt & tmp_pred & valid)
            fn[c] += np.sum(tmp_gt & ~tmp_pred & valid)
    return tp / np.maximum(tp + fp + fn, 1e-8)


def test_an_absent_class_scores_0_and_counts_as_in_the_reference() -> None:
    rng = np.random.default_rng(12)
    gt = rng.integers(0, 39, (3, 10, 12)).astype(np.uint8)  # NYUD's 40 classes: class 39 appears nowhere
    pred = np.where(rng.random(gt.shape) < 0.6, gt, rng.integers(0, 39, gt.shape)).astype(np.uint8)
    gt[:, 0] = 255
    metric = metric_of("semseg", "nyud_mt")
    metric.update(torch.from_numpy(pred), torch.from_numpy(gt))
    jac = reference_jaccards(pred, gt, 40)
    assert jac[39] == 0.0
    assert float(metric.compute()["miou"]) == pytest.approx(100 * np.mean(jac), rel=1e-12)
    excluded = metric_of("semseg", "nyud_mt", "libmtl")
    excluded.update(torch.from_numpy(pred), torch.from_numpy(gt))
    assert float(excluded.compute()["miou"]) == pytest.approx(100 * np.mean(jac[:39]), rel=1e-12)


def test_human_parts_follow_the_reference_under_the_protocol() -> None:
    rng = np.random.default_rng(13)
    gt = rng.integers(0, 6, (4, 8, 8)).astype(np.uint8)  # part 6 (lower leg) appears nowhere
    gt[1] = 0  # no people: skipped
    gt[2] = 255  # no part annotation: skipped
    pred = np.where(rng.random(gt.shape) < 0.5, gt, rng.integers(0, 6, gt.shape)).astype(np.uint8)
    pred[pred == 255] = 0
    metric = metric_of("human_parts", "pascal_context")
    metric.update(torch.from_numpy(pred), torch.from_numpy(gt))
    jac = reference_jaccards(pred, gt, 7, skip_without_people=True)
    assert jac[6] == 0.0
    assert float(metric.compute()["miou"]) == pytest.approx(100 * np.mean(jac), rel=1e-12)


# --- Δ_MTL as the papers print it ---------------------------------------------------------------------------------
def calculate_multi_task_performance(eval_dict: dict, single_task_dict: dict) -> float:
    """evaluate_utils.py: one metric per task, relative to the single-task figure, signed so that an improvement is
    positive, averaged over the tasks (a fraction; the papers print 100 times it)."""
    total = 0.0
    for task, mtl in eval_dict.items():
        stl = single_task_dict[task]
        if task == "depth":
            total -= (mtl["rmse"] - stl["rmse"]) / stl["rmse"]
        elif task in ("semseg", "sal", "human_parts"):
            total += (mtl["mIoU"] - stl["mIoU"]) / stl["mIoU"]
        elif task == "normals":
            total -= (mtl["mean"] - stl["mean"]) / stl["mean"]
        elif task == "edge":
            total += (mtl["odsF"] - stl["odsF"]) / stl["odsF"]
    return total / len(eval_dict)


# mtl's tags (percent for mIoU) → the reference's dictionaries (fractions for mIoU).
THEIRS = {
    "semseg": ("semseg", "mIoU", "metrics_summary/semseg", 0.01),
    "depth": ("depth", "rmse", "metrics_task_depth/rmse", 1.0),
    "normals": ("normals", "mean", "metrics_task_normals/mean_angle", 1.0),
    "saliency": ("sal", "mIoU", "metrics_task_saliency/miou", 0.01),
    "human_parts": ("human_parts", "mIoU", "metrics_summary/human_parts", 0.01),
}


def theirs(row: dict[str, float], tasks: tuple[str, ...]) -> dict[str, dict[str, float]]:
    return {THEIRS[t][0]: {THEIRS[t][1]: row[THEIRS[t][2]] * THEIRS[t][3]} for t in tasks}


ROWS = {  # a multi-task run and single-task runs; the declared metrics besides the papers' one differ on purpose
    "semseg": {"metrics_summary/semseg": 36.0, "metrics_task_semseg/pixel_accuracy": 66.0},
    "depth": {"metrics_summary/depth": 20.0, "metrics_task_depth/rmse": 0.62, "metrics_task_depth/mae": 0.45,
              "metrics_task_depth/rel": 0.17},
    "normals": {"metrics_summary/normals": 20.5, "metrics_task_normals/mean_angle": 20.5,
                "metrics_task_normals/median_angle": 14.0, "metrics_task_normals/within_11_25": 40.0,
                "metrics_task_normals/within_22_5": 65.0, "metrics_task_normals/within_30": 75.0},
    "saliency": {"metrics_summary/saliency": 80.0, "metrics_task_saliency/miou": 66.0},
    "human_parts": {"metrics_summary/human_parts": 60.0},
}
MULTI = {"metrics_summary/semseg": 38.5, "metrics_task_semseg/pixel_accuracy": 65.0, "metrics_summary/depth": 21.0,
         "metrics_task_depth/rmse": 0.60, "metrics_task_depth/mae": 0.47, "metrics_task_depth/rel": 0.19,
         "metrics_summary/normals": 21.0, "metrics_task_normals/mean_angle": 21.0,
         "metrics_task_normals/median_angle": 14.5, "metrics_task_normals/within_11_25": 38.0,
         "metrics_task_normals/within_22_5": 64.0, "metrics_task_normals/within_30": 74.0,
         "metrics_summary/saliency": 79.0, "metrics_task_saliency/miou": 65.2, "metrics_summary/human_parts": 57.0}


def task_of(tag: str) -> str:
    group, name = tag.split("/")
    return name if group == "metrics_summary" else group.removeprefix("metrics_task_")


@pytest.mark.parametrize(
    "dataset,tasks", [("nyud_mt", ("semseg", "depth", "normals")), ("pascal_context", ("semseg", "human_parts", "saliency", "normals"))]
)
def test_results_print_the_papers_delta_mtl(tmp_path, capsys, dataset: str, tasks: tuple[str, ...]) -> None:
    from conftest import write_run

    from mtl.cli.main import main

    runs = tmp_path / "runs"
    for task in tasks:
        write_run(runs / f"single_{task}", {"dataset": dataset, "tasks": [task], "eval_protocol": "mtl_pytorch"},
                  [{**ROWS[task], "metrics_summary/total": 1.0}])
    multi_row = {tag: v for tag, v in MULTI.items() if task_of(tag) in tasks}
    write_run(runs / "multi", {"dataset": dataset, "tasks": list(tasks), "eval_protocol": "mtl_pytorch"},
              [{**multi_row, "metrics_summary/total": 1.0}])
    singles = {}
    for task in tasks:
        singles.update(theirs(ROWS[task], (task,)))
    expected = 100 * calculate_multi_task_performance(theirs(multi_row, tasks), singles)

    assert main(["results", str(runs), "--format", "csv"]) == 0  # the defaults: the papers' metrics and form
    rows = {row["name"]: row for row in csv.DictReader(io.StringIO(capsys.readouterr().out))}
    assert float(rows["multi"]["delta_maninis"]) == pytest.approx(expected, rel=1e-12)
    assert not any(key.startswith("delta_") and key != "delta_maninis" for key in rows["multi"])
    assert rows["multi"]["eval_protocol"] == "mtl_pytorch"

    assert main(["results", str(runs), "--format", "markdown"]) == 0
    table = capsys.readouterr().out
    header = next(line for line in table.splitlines() if "Δ" in line)
    assert "Δ_MTL% ↑" in header
    line = next(line for line in table.splitlines() if line.startswith("| multi "))
    assert f"{expected:+.2f}" in line

    # --delta_metrics declared averages over every declared metric instead: another figure.
    assert main(["results", str(runs), "--format", "csv", "--delta_metrics", "declared"]) == 0
    declared = {row["name"]: row for row in csv.DictReader(io.StringIO(capsys.readouterr().out))}
    assert float(declared["multi"]["delta_maninis"]) != pytest.approx(expected, abs=0.01)


def test_auto_resolves_per_protocol() -> None:
    from mtl.reporting.delta import delta_metrics, mode_for

    assert mode_for("auto", ["mtl_pytorch", "mtl_pytorch"]) == "primary"
    assert mode_for("auto", ["mtan"]) == "declared" and mode_for("auto", ["course", "mtl_pytorch"]) == "declared"
    assert mode_for("summary", ["mtl_pytorch"]) == "summary"
    assert [m.tag for m in delta_metrics("depth", "primary")] == ["metrics_task_depth/rmse"]
    assert [m.tag for m in delta_metrics("human_parts", "primary")] == ["metrics_summary/human_parts"]
    with pytest.raises(ValueError, match="--delta_metrics: expected one of"):
        delta_metrics("depth", "auto")
