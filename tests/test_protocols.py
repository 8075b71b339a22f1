"""Each evaluation protocol equals its reference's formula, written out here as their code computes it, on inputs
where the protocols disagree: depth with uneven valid pixels per image and ground truth below 0.01 (the Cityscapes
.npy copies), a class absent from ground truth and prediction, stored normals that are not unit vectors or whose
components sum to 0. References: lorenmt/mtan im2im_pred/utils.py (the code of MTAN, Nash-MTL and FAMO tables) and
LibMTL examples/nyu/utils.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mtl.metrics.depth import DepthMetrics
from mtl.metrics.normals import NormalsMetrics
from mtl.metrics.protocol import PROTOCOLS, protocol
from mtl.metrics.semseg import SemsegMetrics

BATCH = 2  # the evaluation batch of the per-batch protocol


def depth_fixture() -> tuple[np.ndarray, np.ndarray]:
    """5 images in the stored unit of the Cityscapes .npy copies (values near 0.01–0.2, many below 0.01); 0 is
    invalid, and the images have very different numbers of valid pixels."""
    rng = np.random.default_rng(0)
    target = rng.uniform(0.001, 0.2, (5, 6, 8))
    for i, keep in enumerate((1.0, 0.1, 0.6, 0.02, 0.9)):
        target[i][rng.random((6, 8)) > keep] = 0.0
    target[3, 0, 0] = 0.05  # at least one valid pixel in every image
    pred = np.abs(target + rng.normal(0, 0.03, target.shape)) + 1e-3
    return pred, target


def run_depth(name: str, pred: np.ndarray, target: np.ndarray) -> dict[str, float]:
    metric = DepthMetrics(protocol(name))
    for start in range(0, len(pred), BATCH):
        gt = torch.from_numpy(target[start : start + BATCH])
        metric.update(torch.from_numpy(pred[start : start + BATCH]), torch.where(gt > 0, gt, torch.nan))
    return {k: float(v) for k, v in metric.compute().items()}


def reference_batch_errors(pred: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    """MTAN's depth_error per evaluation batch (mask: ground truth ≠ 0; sums over the batch's masked pixels
    divided by their number), then, as their trainers do, the mean over the batches."""
    abs_errs, rel_errs = [], []
    for start in range(0, len(pred), BATCH):
        p, g = pred[start : start + BATCH], target[start : start + BATCH]
        mask = g != 0
        abs_errs.append(np.sum(np.abs(p[mask] - g[mask])) / mask.sum())
        rel_errs.append(np.sum(np.abs(p[mask] - g[mask]) / g[mask]) / mask.sum())
    return float(np.mean(abs_errs)), float(np.mean(rel_errs))


def reference_split_errors(pred: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    """LibMTL's DepthMetric: each batch's masked means weighted by its number of masked pixels, i.e. pooled."""
    mask = target != 0
    return float(np.mean(np.abs(pred[mask] - target[mask]))), float(np.mean(np.abs(pred[mask] - target[mask]) / target[mask]))


def reference_course_errors(pred: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    """The course: per image over valid pixels, both clamped to ≥ 0.01, then the mean over images."""
    abs_errs, rel_errs = [], []
    for p, g in zip(pred, target):
        mask = g > 0
        gc, pc = np.maximum(g[mask], 0.01), np.maximum(p[mask], 0.01)
        abs_errs.append(np.mean(np.abs(pc - gc)))
        rel_errs.append(np.mean(np.abs(pc - gc) / gc))
    return float(np.mean(abs_errs)), float(np.mean(rel_errs))


def test_depth_errors_follow_each_protocol() -> None:
    pred, target = depth_fixture()
    expected = {
        "course": reference_course_errors(pred, target),
        "mtan": reference_batch_errors(pred, target),
        "libmtl": reference_split_errors(pred, target),
    }
    for name, (abs_err, rel_err) in expected.items():
        got = run_depth(name, pred, target)
        assert got["mae"] == pytest.approx(abs_err, rel=1e-12), name
        assert got["rel"] == pytest.approx(rel_err, rel=1e-12), name
    # The fixture tells them apart: the clamp, the averaging and the batch size each move Rel Err by percents.
    rels = sorted(rel for _, rel in expected.values())
    assert rels[1] > 1.05 * rels[0] and rels[2] > 1.05 * rels[1]


def test_the_per_batch_protocol_depends_on_the_batch_size_as_the_reference_does() -> None:
    pred, target = depth_fixture()
    whole = DepthMetrics(protocol("mtan"))
    gt = torch.from_numpy(target)
    whole.update(torch.from_numpy(pred), torch.where(gt > 0, gt, torch.nan))  # one batch of 5 = pooled
    assert float(whole.compute()["rel"]) == pytest.approx(reference_split_errors(pred, target)[1], rel=1e-12)
    assert float(whole.compute()["rel"]) != pytest.approx(run_depth("mtan", pred, target)["rel"], rel=1e-3)


def test_other_depth_metrics_stay_per_image_with_the_protocols_clamp() -> None:
    pred, target = depth_fixture()
    got = run_depth("libmtl", pred, target)
    rmse = [np.sqrt(np.mean((p[g > 0] - g[g > 0]) ** 2)) for p, g in zip(pred, target)]  # no clamp
    assert got["rmse"] == pytest.approx(float(np.mean(rmse)), rel=1e-12)
    assert run_depth("course", pred, target)["rmse"] != pytest.approx(got["rmse"], rel=1e-3)  # clamped there


def reference_iou(pred: np.ndarray, target: np.ndarray, n: int) -> np.ndarray:
    """Their ConfMatrix: labels in 0..n−1 counted (−1 ignored), IoU = diag / (row + column − diag), 0/0 = NaN."""
    keep = (target >= 0) & (target < n)
    matrix = np.bincount(n * target[keep] + pred[keep], minlength=n * n).reshape(n, n).astype(np.float64)
    with np.errstate(invalid="ignore"):
        return np.diag(matrix) / (matrix.sum(1) + matrix.sum(0) - np.diag(matrix))


def test_a_class_absent_from_truth_and_prediction() -> None:
    rng = np.random.default_rng(1)
    target = rng.integers(0, 4, (3, 10, 10))  # classes 0..3 of 5: class 4 appears nowhere
    pred = np.where(rng.random(target.shape) < 0.7, target, rng.integers(0, 4, target.shape))
    target[:, 0] = -1
    iou = reference_iou(pred, target, 5)
    assert np.isnan(iou[4]) and np.isnan(np.mean(iou))  # the reference's mIoU is NaN here
    for name in ("course", "mtan", "libmtl"):
        metric = SemsegMetrics(5, ignore_index=255, absent_classes=protocol(name).absent_classes)
        metric.update(torch.from_numpy(pred), torch.from_numpy(np.where(target < 0, 255, target)))
        result = metric.compute()
        if name == "course":  # counted as 0
            assert float(result["miou"]) == pytest.approx(100 * np.nansum(iou) / 5, rel=1e-12)
        else:  # left out: the reference's figure wherever it is a number
            assert float(result["miou"]) == pytest.approx(100 * np.nanmean(iou), rel=1e-12)
            assert np.isnan(float(result["iou_per_class"][4]))
        np.testing.assert_allclose(result["iou_per_class"][:4].numpy(), 100 * iou[:4], rtol=1e-12)
    # With every class present, excluded and counted agree with the reference's plain mean.
    full = SemsegMetrics(4, ignore_index=255, absent_classes="excluded")
    full.update(torch.from_numpy(pred), torch.from_numpy(np.where(target < 0, 255, target)))
    assert float(full.compute()["miou"]) == pytest.approx(100 * np.mean(reference_iou(pred, target, 4)), rel=1e-12)


def normals_fixture() -> tuple[np.ndarray, np.ndarray]:
    """4 images of B×3×H×W: unit predictions; stored targets of length 0.6–1.4, some all-zero (invalid everywhere),
    some non-zero with components summing to 0 (invalid for the references only), uneven valid pixels."""
    rng = np.random.default_rng(2)
    target = rng.normal(0, 1, (4, 3, 5, 6))
    target /= np.linalg.norm(target, axis=1, keepdims=True)
    target *= rng.uniform(0.6, 1.4, (4, 1, 5, 6))
    target[0, :, 0, :] = 0.0
    target[2, :, 1:4, :] = 0.0
    target[1, :, 2, 2] = (0.5, -0.25, -0.25)
    target[3, :, 4, 1] = (-1.0, 0.5, 0.5)
    pred = target + rng.normal(0, 0.4, target.shape)
    pred /= np.linalg.norm(pred, axis=1, keepdims=True)
    return pred, target


def reference_normal_error(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Their normal_error: mask x+y+z ≠ 0, acos of the clamped dot product with the stored vector, degrees."""
    mask = target.sum(1) != 0
    dot = np.sum(pred * target, 1)[mask]
    return np.degrees(np.arccos(np.clip(dot, -1, 1)))


def figures(angles: np.ndarray) -> np.ndarray:
    return np.array([np.mean(angles), np.median(angles), *(100 * np.mean(angles < t) for t in (11.25, 22.5, 30))])


def run_normals(name: str, pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    metric = NormalsMetrics(protocol(name))
    for start in range(0, len(pred), BATCH):
        t = torch.from_numpy(target[start : start + BATCH])
        valid = t.abs().sum(1, keepdim=True) > 0  # the decoders' convention: all-zero is NaN
        metric.update(torch.from_numpy(pred[start : start + BATCH]), torch.where(valid, t, torch.nan))
    return np.array([float(v) for v in metric.compute().values()])


def test_normals_follow_each_protocol() -> None:
    pred, target = normals_fixture()
    per_batch = np.mean(
        [figures(reference_normal_error(pred[s : s + BATCH], target[s : s + BATCH])) for s in range(0, len(pred), BATCH)],
        axis=0,
    )
    pooled = figures(reference_normal_error(pred, target))
    np.testing.assert_allclose(run_normals("mtan", pred, target), per_batch, rtol=1e-12)
    got = run_normals("libmtl", pred, target)
    np.testing.assert_allclose(got[[0, 2, 3, 4]], pooled[[0, 2, 3, 4]], rtol=1e-12)
    # The median from 0.01° bins lies in the bin of the lower middle angle; np.median averages the two middle ones.
    ordered = np.sort(reference_normal_error(pred, target))
    lower, upper = ordered[(len(ordered) - 1) // 2], ordered[len(ordered) // 2]
    assert abs(got[1] - pooled[1]) <= 0.01 + (upper - lower) / 2
    # The course's own convention: every non-zero target counts, re-normalised.
    unit = target / np.maximum(np.linalg.norm(target, axis=1, keepdims=True), 1e-300)
    valid = np.abs(target).sum(1) > 0
    angles = np.degrees(np.arccos(np.clip(np.sum(pred * unit, 1)[valid], -1, 1)))
    course = run_normals("course", pred, target)
    np.testing.assert_allclose(course[[0, 2, 3, 4]], figures(angles)[[0, 2, 3, 4]], rtol=1e-12)
    assert course[0] != pytest.approx(got[0], rel=1e-3) and got[0] != pytest.approx(per_batch[0], rel=1e-3)


def test_protocol_names_are_checked() -> None:
    assert set(PROTOCOLS) == {"course", "mtan", "libmtl", "mtl_pytorch"}
    with pytest.raises(ValueError, match="unknown evaluation protocol 'nash'; choose among course, mtan, libmtl, mtl_pytorch"):
        protocol("nash")


# --- Δm in its three published forms ----------------------------------------------------------------------------
# Nash-MTL's NYUv2 row (Navon et al. 2022, Table 2) in mtl's units, and the single-task figures it is compared with.
NASH_ROW = {
    "metrics_summary/semseg": 40.13, "metrics_task_semseg/pixel_accuracy": 65.93,
    "metrics_task_depth/mae": 0.5261, "metrics_task_depth/rel": 0.2171,
    "metrics_task_normals/mean_angle": 25.26, "metrics_task_normals/median_angle": 20.08,
    "metrics_task_normals/within_11_25": 28.40, "metrics_task_normals/within_22_5": 55.47,
    "metrics_task_normals/within_30": 68.15,
}
TASK_OF = {tag: tag.split("/")[0].removeprefix("metrics_task_") for tag in NASH_ROW} | {"metrics_summary/semseg": "semseg"}
HIGHER = [True, True, False, False, False, False, True, True, True]


def nash_delta_fn(row: list[float], base: list[float]) -> float:
    """Nash-MTL's and FAMO's delta_fn: mean over the 9 metrics of (−1)^sign·(a − base)/base, ×100 (their units:
    fractions for mIoU, accuracy and the within shares)."""
    sign = np.array([1 if h else 0 for h in HIGHER])
    return float(((-np.ones(9)) ** sign * (np.array(row) - np.array(base)) / np.array(base)).mean() * 100)


def libmtl_count_improvement(row: list[float], base: list[float]) -> float:
    """LibMTL's count_improvement with NYUv2's weights (1 = higher is better), averaged within each task first."""
    groups = ((0, 2), (2, 4), (4, 9))
    return float(np.mean([np.mean([(-1) ** HIGHER[i] * (base[i] - row[i]) / base[i] for i in range(a, b)]) for a, b in groups]))


def test_delta_forms_equal_their_references_on_a_published_row() -> None:
    from mtl.reporting.delta import DELTA_FORMS, DeltaMetric, delta_terms
    from mtl.reporting.published import PUBLISHED_BASELINES

    published = PUBLISHED_BASELINES["nyuv2"]
    metrics = [DeltaMetric(TASK_OF[tag], tag, higher) for tag, higher in zip(NASH_ROW, HIGHER)]
    terms = delta_terms(NASH_ROW, published.values, metrics)
    fraction = {"metrics_summary/semseg", "metrics_task_semseg/pixel_accuracy", "metrics_task_normals/within_11_25",
                "metrics_task_normals/within_22_5", "metrics_task_normals/within_30"}
    theirs = lambda values: [v / 100 if t in fraction else v for t, v in values.items()]  # noqa: E731
    row = theirs(NASH_ROW)
    base = theirs({tag: published.values[TASK_OF[tag]][tag] for tag in NASH_ROW})
    assert DELTA_FORMS["mtan"].value(terms) == pytest.approx(nash_delta_fn(row, base), rel=1e-12)
    assert DELTA_FORMS["mtan"].value(terms) == pytest.approx(-4.05, abs=0.005)  # the paper prints −4.04
    assert DELTA_FORMS["maninis"].value(terms) == pytest.approx(-nash_delta_fn(row, base), rel=1e-12)
    assert DELTA_FORMS["libmtl"].value(terms) == pytest.approx(100 * libmtl_count_improvement(row, base), rel=1e-12)
    assert DELTA_FORMS["libmtl"].value(terms) == pytest.approx(7.65, abs=0.005)


def test_results_against_published_baselines_in_every_form_and_the_papers_layout(tmp_path, capsys) -> None:
    import csv
    import io

    from conftest import write_run

    from mtl.cli.main import main

    runs = tmp_path / "runs"
    config = {"dataset": "nyuv2", "tasks": ["semseg", "depth", "normals"], "model_name": "mtan"}
    write_run(runs / "nash", config, [{**NASH_ROW, "metrics_summary/total": 1.0}])
    forms = ["--baseline", "published:nyuv2", "--delta_form", "maninis,mtan,libmtl"]
    assert main(["results", str(runs), "--format", "csv", *forms]) == 0
    row = next(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [round(float(row[f"delta_{f}"]), 2) for f in ("maninis", "mtan", "libmtl")] == [4.05, -4.05, 7.65]

    assert main(["results", str(runs), "--format", "latex", "--paper_table", "nyuv2", *forms]) == 0
    latex = capsys.readouterr().out.splitlines()
    assert latex[1] == r"\begin{tabular}{l" + "r" * 12 + "}"
    assert r"\multicolumn{2}{c}{Segmentation} & \multicolumn{2}{c}{Depth} & \multicolumn{5}{c}{Surface Normal}" in latex[3]
    assert latex[7] == ("nash & 40.13 & 65.93 & 0.5261 & 0.2171 & 25.26 & 20.08 & 28.40 & 55.47 & 68.15 & +4.05 & -4.05 "
                        r"& +7.65 \\")

    config = {"dataset": "cityscapes_npy", "num_classes": 19, "tasks": ["semseg", "depth"], "model_name": "mtan"}
    write_run(runs / "city19", config, [{**{k: v for k, v in NASH_ROW.items() if "normals" not in k}}])
    assert main(["results", str(runs), "--format", "csv", "--baseline", "published:cityscapes"]) == 0
    assert "Δm of city19 left empty: published:cityscapes is for --num_classes 7, the run has 19" in capsys.readouterr().err
    assert main(["results", str(runs), "--baseline", "published:kitti"]) == 2
    assert "--baseline published:kitti: no such published baseline; known: published:nyuv2, published:cityscapes" in (
        capsys.readouterr().err
    )
