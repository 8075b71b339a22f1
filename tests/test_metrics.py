"""Streaming metrics against independent NumPy computations written here."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mtl.datasets import DATASETS
from mtl.datasets.miniscapes import grader_score, total_score
from mtl.metrics.depth import DEPTH_METRIC_NAMES, DepthMetrics
from mtl.metrics.semseg import SemsegMetrics


def numpy_iou(pred: np.ndarray, target: np.ndarray, num_classes: int = 19) -> np.ndarray:
    keep = target != 255
    iou = np.zeros(num_classes)
    for c in range(num_classes):
        tp = np.sum((pred == c) & (target == c) & keep)
        fp = np.sum((pred == c) & (target != c) & keep)
        fn = np.sum((pred != c) & (target == c) & keep)
        if tp + fp + fn > 0:
            iou[c] = 100.0 * tp / (tp + fp + fn)
    return iou


def numpy_depth(pred: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """Per image over valid pixels, then the mean over images that have one.

    Definitions as published: Eigen, Puhrsch & Fergus 2014 ("Depth map prediction from a single image
    using a multi-scale deep network", §4): Abs Rel = mean(|y − y*|/y*), Sq Rel = mean(‖y − y*‖²/y*),
    RMS, RMS(log) and the threshold accuracy max(y/y*, y*/y) < 1.25^k; KITTI depth prediction benchmark:
    SILog = 100·sqrt(mean(d²) − mean(d)²), iMAE and iRMSE of the inverse depth in 1/km (depths in m).
    """
    rows = []
    for p_img, g_img in zip(pred.astype(np.float64), target.astype(np.float64)):
        valid = np.isfinite(g_img) & (g_img > 0)
        if not valid.any():
            continue
        g = np.maximum(g_img[valid], 0.01)
        p = np.maximum(p_img[valid], 0.01)
        d = np.log(g) - np.log(p)
        ratio = np.maximum(g / p, p / g)
        rows.append(
            {
                "log_mae": np.mean(np.abs(d)),
                "mae": np.mean(np.abs(g - p)),
                "rmse": np.sqrt(np.mean((g - p) ** 2)),
                "rel": np.mean(np.abs(g - p) / g),
                "rel_squared": np.mean((p - g) ** 2 / g),
                "delta1": 100 * np.mean(ratio < 1.25),
                "delta2": 100 * np.mean(ratio < 1.5625),
                "delta3": 100 * np.mean(ratio < 1.953125),
                "inv_mae": np.mean(np.abs(1000 / g - 1000 / p)),  # 1/km
                "inv_rmse": np.sqrt(np.mean((1000 / g - 1000 / p) ** 2)),
                "log_rmse": np.sqrt(np.mean(d**2)),
                "si_log_rmse": 100 * np.sqrt(np.mean(d**2) - np.mean(d) ** 2),
            }
        )
    return {name: float(np.mean([r[name] for r in rows])) for name in rows[0]}


def random_semseg(rng, shape):
    target = rng.integers(0, 19, size=shape)
    target[rng.random(shape) < 0.1] = 255
    pred = np.where(rng.random(shape) < 0.6, np.where(target == 255, 3, target), rng.integers(0, 19, size=shape))
    return pred, target


def test_semseg_matches_numpy_and_streams():
    rng = np.random.default_rng(1)
    pred, target = random_semseg(rng, (6, 20, 30))
    whole = SemsegMetrics()
    whole.update(torch.from_numpy(pred), torch.from_numpy(target))
    streamed = SemsegMetrics()
    for lo, hi in ((0, 1), (1, 4), (4, 6)):
        streamed.update(torch.from_numpy(pred[lo:hi]), torch.from_numpy(target[lo:hi]))
    streamed.update(torch.from_numpy(pred[0, :0]), torch.from_numpy(target[0, :0]))  # an empty batch adds nothing
    expected = numpy_iou(pred, target)
    for result in (whole.compute(), streamed.compute()):
        np.testing.assert_allclose(result["iou_per_class"].numpy(), expected, atol=1e-6)
        assert result["miou"].item() == pytest.approx(expected.mean(), abs=1e-6)
    assert torch.equal(whole.confusion, streamed.confusion)


def test_semseg_absent_class_scores_zero_and_ignore_is_excluded():
    target = torch.tensor([[0, 0, 1, 2, 255, 255]])
    pred = torch.tensor([[0, 0, 1, 2, 5, 7]])  # 5 and 7 only on ignored pixels
    metric = SemsegMetrics()
    metric.update(pred, target)
    result = metric.compute()
    assert result["iou_per_class"][:3].tolist() == [100.0, 100.0, 100.0]
    assert result["iou_per_class"][3:].tolist() == [0.0] * 16
    assert result["miou"].item() == pytest.approx(300.0 / 19)


def test_semseg_counts_false_positives_and_negatives():
    metric = SemsegMetrics(num_classes=3)
    metric.update(torch.tensor([0, 0, 1, 1]), torch.tensor([0, 1, 1, 2]))
    # class 0: TP 1, FP 1 → 50; class 1: TP 1, FP 1, FN 1 → 33.3; class 2: FN 1 → 0
    np.testing.assert_allclose(metric.compute()["iou_per_class"].numpy(), [50.0, 100.0 / 3, 0.0])


def test_semseg_rejects_bad_input():
    metric = SemsegMetrics()
    with pytest.raises(ValueError, match=r"prediction holds class ids in \[0, 19\]"):
        metric.update(torch.tensor([[0, 19]]), torch.tensor([[0, 1]]))
    with pytest.raises(ValueError, match="target holds class ids"):
        metric.update(torch.tensor([[0, 1]]), torch.tensor([[0, 30]]))
    with pytest.raises(ValueError, match="shape"):
        metric.update(torch.zeros(2, 3, dtype=torch.long), torch.zeros(3, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="argmax"):
        metric.update(torch.zeros(2, 3), torch.zeros(2, 3, dtype=torch.long))


def random_depth(rng, shape):
    target = np.exp(rng.uniform(np.log(4), np.log(300), size=shape))
    target[rng.random(shape) < 0.15] = np.nan
    target[..., 0, :3] = (0.0, -1.0, np.inf)  # all invalid too
    pred = target * np.exp(rng.normal(0.0, 0.3, size=shape)) + rng.normal(0.0, 1.0, size=shape)
    pred = np.where(np.isfinite(pred), pred, 20.0)
    pred[..., 1, :2] = (0.0, -3.0)  # clamped to 0.01 m
    return pred, target


def test_depth_matches_numpy_and_streams():
    rng = np.random.default_rng(2)
    pred, target = random_depth(rng, (5, 12, 16))
    target[3] = np.nan  # an image without a valid pixel is skipped
    whole = DepthMetrics()
    whole.update(torch.from_numpy(pred).float(), torch.from_numpy(target).float())
    streamed = DepthMetrics()
    for lo, hi in ((0, 2), (2, 3), (3, 5)):
        streamed.update(torch.from_numpy(pred[lo:hi]).float(), torch.from_numpy(target[lo:hi]).float())
    # numpy reference on the same float32 inputs the metric saw
    expected = numpy_depth(pred.astype(np.float32), target.astype(np.float32))
    for metric in (whole, streamed):
        result = metric.compute()
        assert list(result) == list(DEPTH_METRIC_NAMES)
        assert metric.count.item() == 4
        for name in DEPTH_METRIC_NAMES:
            assert result[name].item() == pytest.approx(expected[name], rel=1e-9, abs=1e-6), name


def test_depth_accepts_single_image_and_channel_dim():
    rng = np.random.default_rng(3)
    pred, target = random_depth(rng, (2, 8, 8))
    batched = DepthMetrics()
    batched.update(torch.from_numpy(pred)[:, None], torch.from_numpy(target)[:, None])
    single = DepthMetrics()
    for i in range(2):
        single.update(torch.from_numpy(pred[i]), torch.from_numpy(target[i]))
    for name in DEPTH_METRIC_NAMES:
        assert batched.compute()[name].item() == pytest.approx(single.compute()[name].item(), abs=1e-12)


def test_depth_scale_invariance_and_exact_values():
    target = torch.tensor([[[10.0, 20.0], [40.0, float("nan")]]])
    metric = DepthMetrics()
    metric.update(2 * target.nan_to_num(1.0), target)
    result = metric.compute()
    assert result["si_log_rmse"].item() == pytest.approx(0.0, abs=1e-9)
    assert result["log_rmse"].item() == pytest.approx(math.log(2))
    assert result["log_mae"].item() == pytest.approx(math.log(2))
    assert result["mae"].item() == pytest.approx(70.0 / 3)
    assert result["rel"].item() == pytest.approx(1.0)
    assert result["rel_squared"].item() == pytest.approx(70.0 / 3)  # err²/gt = gt: (10 + 20 + 40)/3 metres
    assert result["delta1"].item() == 0.0 and result["delta3"].item() == 0.0  # ratio 2 > 1.25³
    assert result["inv_mae"].item() == pytest.approx(1000 * (0.05 + 0.025 + 0.0125) / 3)  # 1/km


def test_depth_standard_definitions_by_hand():
    """One image, values worked out by hand from Eigen et al. 2014 (Sq Rel divides by gt, not gt²) and
    KITTI's inverse-depth errors in 1/km."""
    target = torch.tensor([[[4.0, 8.0], [50.0, 100.0]]], dtype=torch.float64)
    pred = torch.tensor([[[5.0, 8.0], [40.0, 125.0]]], dtype=torch.float64)
    metric = DepthMetrics()
    metric.update(pred, target)
    r = {k: v.item() for k, v in metric.compute().items()}
    # err = 1, 0, 10, 25 m
    assert r["mae"] == pytest.approx(36 / 4)
    assert r["rmse"] == pytest.approx(math.sqrt((1 + 0 + 100 + 625) / 4))
    assert r["rel"] == pytest.approx((1 / 4 + 0 + 10 / 50 + 25 / 100) / 4)
    assert r["rel_squared"] == pytest.approx((1 / 4 + 0 + 100 / 50 + 625 / 100) / 4)  # = 2.125 m
    # 1/gt − 1/pred in 1/km: 250 − 200, 0, 20 − 25, 10 − 8
    assert r["inv_mae"] == pytest.approx((50 + 0 + 5 + 2) / 4)
    assert r["inv_rmse"] == pytest.approx(math.sqrt((2500 + 0 + 25 + 4) / 4))
    assert r["delta1"] == 25.0  # ratios 1.25, 1, 1.25, 1.25 (exact in binary): only 8 m is < 1.25
    assert r["delta2"] == 100.0


def test_depth_without_valid_pixels_is_nan():
    metric = DepthMetrics()
    metric.update(torch.ones(1, 2, 2), torch.full((1, 2, 2), float("nan")))
    assert metric.count.item() == 0
    assert all(math.isnan(v.item()) for v in metric.compute().values())


def test_depth_states_merge_like_ddp_sum():
    rng = np.random.default_rng(4)
    pred, target = (torch.from_numpy(a) for a in random_depth(rng, (4, 6, 6)))
    a, b, whole = DepthMetrics(), DepthMetrics(), DepthMetrics()
    a.update(pred[:1], target[:1])
    b.update(pred[1:], target[1:])
    whole.update(pred, target)
    a.merge_state(b)
    for name in DEPTH_METRIC_NAMES:
        assert a.compute()[name].item() == pytest.approx(whole.compute()[name].item(), abs=1e-12)


def test_scores():
    assert grader_score(67.5, 27.0) == pytest.approx(40.5)  # the course template's published triple
    assert grader_score(40.0, 60.0) == 0.0
    assert grader_score(torch.tensor(100.0), torch.tensor(0.0)) == 100.0
    assert total_score(67.5, 27.0) == pytest.approx(40.5)
    assert total_score(40.0, 60.0) == pytest.approx(-20.0)
    out = DATASETS["miniscapes"].scores({"semseg": 83.6, "depth": 20.5}, {"semseg": True, "depth": False})
    assert out == pytest.approx({"grader": 63.1, "total": 63.1})
    # a task that is not trained contributes 0 to the grader (the course's rule)
    assert DATASETS["miniscapes"].scores({"semseg": 83.6}, {"semseg": True}) == pytest.approx({"grader": 33.6, "total": 33.6})
