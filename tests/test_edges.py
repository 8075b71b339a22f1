"""The `edges` task and its boundary F-measure (odsF, oisF): matching cases computed by hand, the ODS/OIS
aggregation of SEISM on a two-image example, the matching against the min-cost assignment of BSDS's
correspondPixels, the balanced cross-entropy against NumPy, the prediction codec, and a model that trains and
validates with edges on a layout defined here."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import FAST_TRAIN_FLAGS, NpzSamplesLayout
from PIL import Image
from scipy.optimize import linear_sum_assignment

from mtl.cli.main import main
from mtl.data.formats import DataFormatError
from mtl.datasets import DATASETS, Codec, DatasetInfo, DatasetLayout, register_dataset
from mtl.metrics.boundary import THRESHOLDS, BoundaryF, boundary_scores, image_counts, match_count
from mtl.metrics.protocol import PROTOCOLS
from mtl.tasks import TASKS
from mtl.tasks.edges import EdgesInfo
from mtl.tasks.semseg import SemsegInfo

INFO = DatasetInfo("toy_edges", ("semseg", "edges"), ("semseg", "edges"),
                   {"semseg": SemsegInfo(("a", "b", "c"), ((255, 0, 0), (0, 255, 0), (0, 0, 255))), "edges": EdgesInfo(0.011)})


def tolerance_for(max_dist: float, height: int, width: int) -> float:
    return max_dist / float(np.hypot(height, width))


# ------------------------------------------------------------------------------------------ thinning, matching
def test_a_shifted_line_matches_within_the_tolerance_and_not_beyond() -> None:
    height, width = 20, 30
    truth = np.zeros((height, width), dtype=np.uint8)
    truth[:, 10] = 1
    for shift, matched in ((2, 20), (3, 20), (4, 0)):
        codes = np.zeros((height, width), dtype=np.uint8)
        codes[:, 10 + shift] = 200  # probability 200/255: an edge at thresholds up to 0.78
        counts = image_counts(codes, truth, tolerance_for(3.5, height, width))
        on = THRESHOLDS <= 200 / 255
        np.testing.assert_array_equal(counts[:, on].T, [[matched, 20, matched, 20]] * on.sum())
        np.testing.assert_array_equal(counts[:, ~on].T, [[0, 20, 0, 0]] * (~on).sum())


def test_each_pixel_is_matched_at_most_once() -> None:
    truth = np.zeros((10, 10), dtype=bool)
    truth[5, 5] = True
    pred = np.zeros((10, 10), dtype=bool)
    pred[5, 4] = pred[5, 6] = True  # both within reach of the one ground-truth pixel
    assert match_count(pred, truth, 1.5) == 1
    pred[4, 5] = True
    truth[2, 5] = True  # reachable only from (4, 5): that pixel must go there, the two others share (5, 5)
    assert match_count(pred, truth, 2.0) == 2


def test_ignored_pixels_are_neither_ground_truth_nor_prediction() -> None:
    truth = np.zeros((12, 12), dtype=np.uint8)
    truth[:, 3] = 1
    truth[:, 8:] = 255  # the right part is not labelled
    codes = np.zeros((12, 12), dtype=np.uint8)
    codes[:, 3] = 255
    codes[:, 9] = 255  # predicted where nothing is known: not counted
    counts = image_counts(codes, truth, tolerance_for(1.0, 12, 12))
    np.testing.assert_array_equal(counts[:, 0], [12, 12, 12, 12])
    truth[:, 9] = 255
    truth[0, 9] = 1  # an ignored column cannot hold ground truth either: 255 wins where it is written
    assert image_counts(codes, truth, tolerance_for(1.0, 12, 12))[1, 0] == 13


def min_cost_with_outliers(pred: np.ndarray, truth: np.ndarray, max_dist: float, outlier_cost: float = 100.0) -> int:
    """BSDS correspondPixels' problem: each pixel is matched to a pixel of the other map within max_dist (cost: the
    distance) or left an outlier (cost: outlier_cost × max_dist); the number of pairs of a minimum-cost solution."""
    p, g = np.argwhere(pred), np.argwhere(truth)
    n_p, n_g = len(p), len(g)
    big = 1e9
    oc = outlier_cost * max_dist
    distance = np.hypot(*(p[:, None, :] - g[None, :, :]).transpose(2, 0, 1))
    cost = np.full((n_p + n_g, n_g + n_p), big)
    cost[:n_p, :n_g] = np.where(distance <= max_dist, distance, big)
    cost[:n_p, n_g:] = np.where(np.eye(n_p, dtype=bool), oc, big)  # predicted pixel i left alone
    cost[n_p:, :n_g] = np.where(np.eye(n_g, dtype=bool), oc, big)  # ground-truth pixel j left alone
    cost[n_p:, n_g:] = 0.0
    rows, cols = linear_sum_assignment(cost)
    return int(((rows < n_p) & (cols < n_g)).sum())


@pytest.mark.parametrize("seed", range(6))
def test_the_matching_counts_those_of_the_min_cost_assignment_with_outliers(seed: int) -> None:
    rng = np.random.default_rng(seed)
    pred, truth = rng.random((14, 14)) < 0.2, rng.random((14, 14)) < 0.15
    max_dist = float(rng.choice([1.0, 1.5, 2.5]))
    assert match_count(pred, truth, max_dist) == min_cost_with_outliers(pred, truth, max_dist)


def test_the_matching_counts_those_of_scipys_hopcroft_karp_on_a_larger_map() -> None:
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import maximum_bipartite_matching

    rng = np.random.default_rng(7)
    pred, truth = rng.random((60, 80)) < 0.12, rng.random((60, 80)) < 0.08
    p, g = np.argwhere(pred), np.argwhere(truth)
    near = np.hypot(*(p[:, None, :] - g[None, :, :]).transpose(2, 0, 1)) <= 2.9
    expected = int((maximum_bipartite_matching(csr_matrix(near), perm_type="column") >= 0).sum())
    assert match_count(pred, truth, 2.9) == expected


# -------------------------------------------------------------------------------------------------- ODS / OIS
def test_ods_is_best_over_summed_counts_and_ois_sums_each_images_best() -> None:
    low = THRESHOLDS < 0.5
    counts = np.zeros((2, 4, len(THRESHOLDS)), dtype=np.int64)
    counts[0][:, low] = np.array([[8, 10, 8, 10]]).T  # image 1: F 0.8 below 0.5
    counts[0][:, ~low] = np.array([[2, 10, 2, 2]]).T  # P 1, R 0.2: F 1/3 above
    counts[1][:, low] = np.array([[5, 10, 5, 50]]).T  # image 2: P 0.1, R 0.5: F 1/6 below
    counts[1][:, ~low] = np.array([[5, 10, 5, 5]]).T  # P 1, R 0.5: F 2/3 above
    result = boundary_scores(counts)
    # ODS: below 0.5 the sums are R 13/20, P 13/60 (F 0.325); from 0.5 on R 7/20, P 7/7 (F 14/27).
    assert result["ods_f"] == pytest.approx(100 * 2 * (7 / 20) / (1 + 7 / 20))
    assert result["ods_threshold"] == 0.5 and result["ods_precision"] == pytest.approx(100.0)
    # OIS: image 1 at 0.01 (8, 10, 8, 10), image 2 at 0.50 (5, 10, 5, 5): R 13/20, P 13/15.
    recall, precision = 13 / 20, 13 / 15
    assert result["ois_f"] == pytest.approx(100 * 2 * precision * recall / (precision + recall))
    assert boundary_scores(np.zeros((0, 4, len(THRESHOLDS))))["ods_f"] == 0.0


def test_the_metric_sums_images_over_batches_and_no_protocol_changes_it() -> None:
    rng = np.random.default_rng(3)
    targets = (rng.random((3, 24, 32)) < 0.08).astype(np.uint8)
    targets[2] = 255  # an image without any labelled pixel is left out
    probabilities = np.clip(targets * 0.7 + rng.random((3, 24, 32)) * 0.5, 0, 1)
    probabilities = np.floor(probabilities * 255) / 255  # what decode gives
    codes = (probabilities * 255).round().astype(np.uint8)
    expected = boundary_scores(np.stack([image_counts(codes[i], targets[i], 0.011) for i in range(2)]))
    for protocol in PROTOCOLS.values():
        metric = TASKS["edges"](INFO).metric(protocol)
        assert isinstance(metric, BoundaryF) and metric.tolerance == 0.011
        for batch in (slice(0, 1), slice(1, 3)):
            metric.update(torch.from_numpy(probabilities[batch]).float(), torch.from_numpy(targets[batch]))
        result = {name: float(value) for name, value in metric.compute().items()}
        assert result == pytest.approx(expected)
        assert 0 < result["ods_f"] <= result["ois_f"] <= 100


# ------------------------------------------------------------------------------------------------ the task
def test_the_loss_is_mtl_pytorchs_balanced_cross_entropy_over_labelled_pixels() -> None:
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 2, size=(2, 6, 7))
    target = rng.choice(np.array([0, 0, 0, 1, 255], dtype=np.uint8), size=(2, 6, 7))
    labelled, edge = target != 255, target == 1
    probability = 1 / (1 + np.exp(-logits))
    per_pixel = -(0.95 * edge * np.log(probability) + 0.05 * (labelled & ~edge) * np.log(1 - probability))
    expected = per_pixel[labelled].sum() / labelled.sum()
    task = TASKS["edges"](INFO)
    raw = torch.from_numpy(logits).float()[:, None]
    assert float(task.loss(raw, torch.from_numpy(target))) == pytest.approx(expected, rel=1e-5)
    assert float(TASKS["edges"](INFO, pos_weight=0.5).loss(raw, torch.from_numpy(target))) == pytest.approx(
        (0.5 * -(edge * np.log(probability) + (labelled & ~edge) * np.log(1 - probability)))[labelled].sum() / labelled.sum(),
        rel=1e-5)
    decoded = task.decode(raw)  # the 8-bit code MTL-PyTorch saves, (255·sigmoid) truncated
    np.testing.assert_array_equal(task.to_array(decoded[0]), np.floor(255 * probability[0]).astype(np.uint8))


def test_the_prediction_codec_writes_an_8_bit_grey_png_and_reads_it_back(tmp_path: Path) -> None:
    codes = np.arange(256, dtype=np.uint8).reshape(16, 16)
    path = DatasetLayout.write_prediction(tmp_path, "edges", "0", codes)
    assert path == tmp_path / "edges" / "0.png"
    assert Image.open(path).mode == "L"
    np.testing.assert_array_equal(DatasetLayout.codec("edges").read(path), codes)
    Image.new("RGB", (4, 4)).save(tmp_path / "rgb.png")
    with pytest.raises(DataFormatError, match=r"^.*rgb\.png: not an edge probability map \(expected an 8-bit grey PNG, got mode RGB\)$"):
        DatasetLayout.codec("edges").read(tmp_path / "rgb.png")


# ------------------------------------------------------------------------- training with a layout defined here
class ToyEdgesLayout(NpzSamplesLayout):
    """<root>/<split>/<i>.npz holding rgb, semseg labels and edges (1 where a 4-neighbour has another class)."""

    info = INFO
    codecs = {"semseg": Codec(".npy", np.load, np.save)}


def write_toy_dataset(root: Path) -> None:
    rng = np.random.default_rng(0)
    for split, count in (("train", 4), ("val", 2)):
        (root / split).mkdir(parents=True)
        for i in range(count):
            labels = np.zeros((32, 48), dtype=np.uint8)
            labels[:, 16 + 4 * i :] = 1
            labels[20:, :] = 2
            edges = np.zeros_like(labels)
            edges[:, 1:] |= labels[:, 1:] != labels[:, :-1]
            edges[1:] |= labels[1:] != labels[:-1]
            edges[:2] = 255
            rgb = (np.array([[40, 40, 40], [90, 90, 90], [200, 200, 200]])[labels] + rng.integers(0, 30, (32, 48, 3))).astype(np.uint8)
            np.savez(root / split / f"{i}.npz", rgb=rgb, semseg=labels, edges=edges)


@pytest.fixture
def toy_layout():
    register_dataset("toy_edges")(ToyEdgesLayout)
    try:
        yield
    finally:
        DATASETS.unregister("toy_edges")


@pytest.mark.slow
def test_a_model_trains_and_validates_with_edges(toy_layout, tmp_path: Path) -> None:
    root, run = tmp_path / "toy", tmp_path / "run"
    write_toy_dataset(root)
    flags = [*FAST_TRAIN_FLAGS, "--dataset", "toy_edges", "--tasks", "semseg,edges", "--num_epochs", "1",
             "--aug_input_crop_size", "32", "--prepare_submission", "no"]
    assert main(["train", "--dataset_root", str(root), "--log_dir", str(run), *flags]) == 0
    with (run / "metrics.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert all(float(r["loss_train/edges"]) > 0 for r in rows if r.get("loss_train/edges"))
    [validation] = [r for r in rows if r.get("metrics_summary/edges")]
    assert 0 <= float(validation["metrics_summary/edges"]) <= float(validation["metrics_task_edges/ois_f"]) <= 100
    assert float(validation["metrics_task_edges/ods_threshold"]) in set(THRESHOLDS.tolist())

    out = tmp_path / "pred"
    assert main(["predict", "--checkpoint", str(run / "checkpoints" / "best.ckpt"), "--split", "val",
                 "--dataset_root", str(root), "--out", str(out), "--batch_size", "2"]) == 0
    written = Image.open(out / "edges" / "1.png")  # the layout has no edges codec: the task's 8-bit grey PNG
    assert written.mode == "L" and written.size == (48, 32)
    report = json.loads((out / "metrics.json").read_text())["tasks"]["edges"]
    assert set(report) == {"ods_f", "ois_f", "ods_threshold", "ods_precision", "ods_recall"}
