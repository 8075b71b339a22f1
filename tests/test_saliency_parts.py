"""Saliency and human parts as MTL-PyTorch evaluates them: maxF / mIoU over thresholds with per-image averaging,
parts mIoU over the images with people; their losses, codecs, pictures, and a short train + validate + predict."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch
from conftest import FAST_TRAIN_FLAGS, NpzSamplesLayout
from PIL import Image

from mtl.cli.main import main
from mtl.data.formats import DataFormatError
from mtl.datasets import DATASETS, DatasetInfo, DatasetLayout, register_dataset
from mtl.metrics.protocol import PROTOCOLS
from mtl.metrics.semseg import SemsegMetrics
from mtl.tasks import TASKS
from mtl.tasks.semseg import SemsegInfo

PARTS = SemsegInfo(
    ("background", "head", "torso", "upper arm", "lower arm", "upper leg", "lower leg"),
    ((0, 0, 0), (128, 0, 0), (0, 128, 0), (128, 128, 0), (0, 0, 128), (128, 0, 128), (0, 128, 128)),
    255,
)
INFO = DatasetInfo("toy_pascal", ("saliency", "human_parts"), ("saliency", "human_parts"), {"human_parts": PARTS})
COURSE = PROTOCOLS["course"]


# --- the reference's formulas, written out (MTL-PyTorch evaluation/eval_sal.py, jaccard.py, eval_human_parts.py) -----
def reference_saliency(codes: Sequence[np.ndarray], gts: Sequence[np.ndarray]) -> dict[str, float]:
    """eval_sal on 8-bit prediction files: per image and threshold, then means over images, F of the means."""
    thresholds = np.linspace(0.2, 0.9, 15)
    jac, prec, rec = (np.zeros((len(codes), 15)) for _ in range(3))
    for i, (code, gt) in enumerate(zip(codes, gts)):
        mask = code.astype(np.float32) / 255.0
        g = gt.astype(bool)
        for j, t in enumerate(thresholds):
            p = mask > t
            if g.sum() == 0 and p.sum() == 0:
                jac[i, j] = 1
            else:
                jac[i, j] = (g & p).sum() / np.float32((g | p).sum())
            tp, fp, fn = (p & g).sum(), (p & ~g).sum(), (~p & g).sum()
            prec[i, j], rec[i, j] = tp / (tp + fp + 1e-12), tp / (tp + fn + 1e-12)
    m_prec, m_rec = prec.mean(0), rec.mean(0)
    f = 2 * m_prec * m_rec / (m_prec + m_rec + 1e-12)
    return {"max_f": 100 * f.max(), "miou": 100 * jac.mean(0).max()}


def pooled_max_f(codes: Sequence[np.ndarray], gts: Sequence[np.ndarray]) -> float:
    """The same F with the pixel counts pooled over the images instead: what averaging over images is not."""
    best = 0.0
    for t in np.linspace(0.2, 0.9, 15):
        p = np.concatenate([(c.astype(np.float32) / 255 > t).ravel() for c in codes])
        g = np.concatenate([gt.astype(bool).ravel() for gt in gts])
        tp = (p & g).sum()
        best = max(best, 100 * 2 * tp / (p.sum() + g.sum()))
    return best


def reference_parts(preds: Sequence[np.ndarray], gts: Sequence[np.ndarray], n: int = 7) -> tuple[float, list[float]]:
    """eval_human_parts: images whose ground truth is one value, 0 or 255, skipped; TP/FP/FN summed; 0 when absent."""
    tp, fp, fn = np.zeros(n), np.zeros(n), np.zeros(n)
    for pred, gt in zip(preds, gts):
        uniq = np.unique(gt)
        if len(uniq) == 1 and uniq[0] in (0, 255):
            continue
        valid = gt != 255
        for c in range(n):
            tp[c] += np.sum((gt == c) & (pred == c) & valid)
            fp[c] += np.sum((gt != c) & (pred == c) & valid)
            fn[c] += np.sum((gt == c) & (pred != c) & valid)
    jac = [tp[c] / max(tp[c] + fp[c] + fn[c], 1e-8) for c in range(n)]
    return 100 * float(np.mean(jac)), [100 * j for j in jac]


# --- saliency metric --------------------------------------------------------------------------------------------
def saliency_example() -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Three 12×16 images: a large salient object, a small one, and none; codes on the thresholds' edges included
    (51/255 is 0.2 exactly, and float32 rounds it above the threshold, as the reference reads it)."""
    rng = np.random.default_rng(3)
    gts = [np.zeros((12, 16), np.uint8) for _ in range(3)]
    gts[0][2:10, 3:14] = 1
    gts[1][5:7, 6:8] = 1
    codes = []
    for gt in gts:
        code = np.where(gt == 1, rng.integers(60, 256, gt.shape), rng.integers(0, 200, gt.shape)).astype(np.uint8)
        codes.append(code)
    codes[0][0, :4] = (51, 102, 153, 204)
    codes[2][:] = np.minimum(codes[2], 120)  # nothing salient, nothing predicted above 0.5: IoU 1 there
    return codes, gts


def test_saliency_metric_averages_over_images_as_the_reference() -> None:
    from mtl.metrics.saliency import SaliencyMetrics

    codes, gts = saliency_example()
    expected = reference_saliency(codes, gts)
    assert abs(pooled_max_f(codes, gts) - expected["max_f"]) > 1  # the example tells the two averagings apart
    metric = TASKS["saliency"](INFO).metric(COURSE)
    probabilities = [torch.from_numpy(c.astype(np.float32) / 255) for c in codes]
    metric.update(torch.stack(probabilities[:2]), torch.from_numpy(np.stack(gts[:2])))  # a batch, then one image
    metric.update(probabilities[2], torch.from_numpy(gts[2]))
    result = metric.compute()
    assert float(result["max_f"]) == pytest.approx(expected["max_f"], abs=1e-8)
    assert float(result["miou"]) == pytest.approx(expected["miou"], abs=1e-5)  # the reference's IoU is float32
    assert int(result["images"]) == 3 and isinstance(metric, SaliencyMetrics)


def test_saliency_ignored_pixels_and_unlabelled_images_do_not_count() -> None:
    codes, gts = saliency_example()
    first, gt = codes[0].copy(), gts[0].copy()
    gt[:, 12:] = 255  # ignored columns: what is predicted there must not matter
    first[:, 12:] = 255
    metric = TASKS["saliency"](INFO).metric(COURSE)
    metric.update(torch.from_numpy(np.stack([first, codes[1]]).astype(np.float32) / 255), torch.from_numpy(np.stack([gt, gts[1]])))
    metric.update(torch.rand(12, 16), torch.full((12, 16), 255, dtype=torch.uint8))  # no labelled pixel: not an image
    expected = reference_saliency([codes[0][:, :12], codes[1]], [gts[0][:, :12], gts[1]])
    result = metric.compute()
    assert int(result["images"]) == 2
    assert float(result["max_f"]) == pytest.approx(expected["max_f"], abs=1e-8)
    assert float(result["miou"]) == pytest.approx(expected["miou"], abs=1e-5)


def test_saliency_metric_refuses_hard_labels_as_predictions() -> None:
    metric = TASKS["saliency"](INFO).metric(COURSE)
    with pytest.raises(ValueError, match="probabilities"):
        metric.update(torch.ones(4, 4, dtype=torch.uint8), torch.ones(4, 4, dtype=torch.uint8))


def test_saliency_decode_is_the_reference_8bit_map_and_tta_averages_probabilities() -> None:
    task = TASKS["saliency"](INFO)
    logits = torch.tensor([-6.0, -1.0, 0.0, 0.3, 2.0, 9.0]).view(1, 1, 2, 3)
    prediction = task.decode(logits)
    sigmoid = 1 / (1 + np.exp(-logits.double().numpy()[:, 0]))
    np.testing.assert_array_equal(task.to_array(prediction[0]), np.floor(255 * sigmoid[0]).astype(np.uint8))
    assert prediction.dtype == torch.float32 and prediction.shape == (1, 2, 3)
    identity = lambda t: t  # noqa: E731
    one_view = task.tta_result(task.tta_term(logits, 1, identity), 1)
    assert torch.equal(one_view, prediction)
    other = torch.tensor([2.0, 1.0, -3.0, 0.0, -2.0, 1.0]).view(1, 1, 2, 3)
    total = task.tta_term(logits, 2, identity) + task.tta_term(other, 2, identity)
    mean = (sigmoid + 1 / (1 + np.exp(-other.double().numpy()[:, 0]))) / 2
    np.testing.assert_array_equal(task.to_array(task.tta_result(total, 2)[0]), np.floor(255 * mean[0]).astype(np.uint8))
    torch.testing.assert_close(task.export(logits), torch.sigmoid(logits))
    with pytest.raises(ValueError, match="NaN"):
        task.to_array(torch.tensor([[float("nan")]]))


# --- losses -------------------------------------------------------------------------------------------------------
def numpy_balanced_bce(logits: np.ndarray, labels: np.ndarray) -> float:
    """MTL-PyTorch's BalancedCrossEntropyLoss (pos_weight None, size_average) over the labelled pixels."""
    keep = labels != 255
    x, y = logits[keep].astype(np.float64), (labels[keep] == 1).astype(np.float64)
    w = (1 - y).sum() / y.size
    gt_zero = (x >= 0).astype(np.float64)
    loss_val = x * (y - gt_zero) - np.log(1 + np.exp(x - 2 * x * gt_zero))
    return float((w * -(y * loss_val).sum() + (1 - w) * -((1 - y) * loss_val).sum()) / y.size)


def test_saliency_loss_is_the_class_balanced_cross_entropy() -> None:
    task = TASKS["saliency"](INFO)
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (2, 1, 6, 7)).astype(np.float32)
    labels = (rng.random((2, 6, 7)) < 0.2).astype(np.uint8)
    loss = task.loss(torch.from_numpy(logits), torch.from_numpy(labels))
    assert float(loss) == pytest.approx(numpy_balanced_bce(logits[:, 0], labels), rel=1e-5)
    labels[0, :3] = 255
    loss = task.loss(torch.from_numpy(logits), torch.from_numpy(labels))
    assert float(loss) == pytest.approx(numpy_balanced_bce(logits[:, 0], labels), rel=1e-5)


def test_human_parts_loss_is_cross_entropy_over_labelled_pixels() -> None:
    task = TASKS["human_parts"](INFO)
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 2, (2, 7, 5, 6)).astype(np.float32)
    labels = rng.integers(0, 7, (2, 5, 6)).astype(np.int64)
    labels[1] = 255  # an image without people
    loss = task.loss(torch.from_numpy(logits), torch.from_numpy(labels))
    x = logits.astype(np.float64)
    log_softmax = x - np.log(np.exp(x).sum(1, keepdims=True))
    keep = labels != 255
    picked = np.take_along_axis(log_softmax, np.where(keep, labels, 0)[:, None], 1)[:, 0]
    assert float(loss) == pytest.approx(-picked[keep].mean(), rel=1e-5)


@pytest.mark.parametrize("name, channels", [("saliency", 1), ("human_parts", 7)])
def test_a_batch_with_every_pixel_ignored_gives_zero_loss_and_zero_gradient(name: str, channels: int) -> None:
    task = TASKS[name](INFO)
    logits = torch.randn(2, channels, 4, 5, requires_grad=True)
    target = torch.full((2, 4, 5), 255, dtype=getattr(torch, task.target_dtype))
    loss = task.loss(logits, target)
    loss.backward()
    assert float(loss.detach()) == 0.0
    assert torch.equal(logits.grad, torch.zeros_like(logits))


# --- human parts metric -------------------------------------------------------------------------------------------
def parts_example() -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Image 0 has people (no lower leg in ground truth or prediction); image 1 has none (all 255) but predicted
    parts; image 2's ground truth is all background (a person without part annotation), skipped by the reference."""
    rng = np.random.default_rng(5)
    gt0 = rng.integers(0, 6, (8, 9)).astype(np.uint8)
    gt0[0, 0] = 255
    pred0 = np.where(rng.random((8, 9)) < 0.7, gt0, rng.integers(0, 6, (8, 9))).astype(np.uint8)
    pred0[0, 0] = 6  # on an ignored pixel: no false lower leg
    gts = [gt0, np.full((8, 9), 255, np.uint8), np.zeros((8, 9), np.uint8)]
    preds = [pred0, rng.integers(0, 7, (8, 9)).astype(np.uint8), rng.integers(0, 7, (8, 9)).astype(np.uint8)]
    return preds, gts


def test_human_parts_miou_counts_only_images_with_people() -> None:
    preds, gts = parts_example()
    miou, per_class = reference_parts(preds, gts)
    metric = TASKS["human_parts"](INFO).metric(COURSE)
    metric.update(torch.from_numpy(np.stack(preds)).long(), torch.from_numpy(np.stack(gts)).long())
    result = metric.compute()
    assert float(result["miou"]) == pytest.approx(miou, abs=1e-9)
    np.testing.assert_allclose(result["iou_per_class"].numpy(), per_class, atol=1e-9)
    assert per_class[6] == 0.0 and int(result["images"]) == 1  # lower leg absent: IoU 0, in the mean
    # Counted, the all-background image would change the figure: the skip is what is tested.
    pooled = SemsegMetrics(7, 255, "zero")
    pooled.update(torch.from_numpy(np.stack(preds)).long(), torch.from_numpy(np.stack(gts)).long())
    assert abs(float(pooled.compute()["miou"]) - miou) > 0.1
    excluded = TASKS["human_parts"](INFO).metric(PROTOCOLS["mtan"])  # absent classes left out, as semseg does
    excluded.update(torch.from_numpy(np.stack(preds)).long(), torch.from_numpy(np.stack(gts)).long())
    assert float(excluded.compute()["miou"]) == pytest.approx(np.mean(per_class[:6]), abs=1e-9)


def test_human_parts_scalars_and_report_use_its_own_names() -> None:
    preds, gts = parts_example()
    task = TASKS["human_parts"](INFO)
    metric = task.metric(COURSE)
    metric.update(torch.from_numpy(preds[0]).long(), torch.from_numpy(gts[0]).long())
    result = metric.compute()
    scalars = task.scalars(result)
    assert "metrics_task_human_parts/upper_arm" in scalars and not any("semseg" in k for k in scalars)
    assert task.report(result)["images"] == 1
    assert task.onnx_metadata() == {"human_parts_classes": '["background", "head", "torso", "upper arm", "lower arm", '
                                                           '"upper leg", "lower leg"]'}
    picture = task.picture(torch.tensor([[0, 1, 6, 255]]))
    np.testing.assert_array_equal(picture[0], [(0, 0, 0), (128, 0, 0), (0, 128, 128), (255, 255, 255)])


def test_saliency_pictures_tell_labels_from_probabilities() -> None:
    task = TASKS["saliency"](INFO)
    labels = task.picture(torch.tensor([[0, 1, 255]], dtype=torch.uint8))
    np.testing.assert_array_equal(labels[0], [(0, 0, 0), (255, 255, 255), (255, 0, 255)])
    grey = task.picture(torch.tensor([[0.0, 0.5, 1.0]]))
    np.testing.assert_array_equal(grey[0], [(0, 0, 0), (128, 128, 128), (255, 255, 255)])


# --- codecs -------------------------------------------------------------------------------------------------------
def test_prediction_codecs_round_trip_in_every_layout(tmp_path: Path) -> None:
    codes = np.arange(256, dtype=np.uint8).reshape(16, 16)
    for _, layout in DATASETS.items():
        path = layout.write_prediction(tmp_path / layout.name, "saliency", "0", codes)
        if layout.codec("saliency") is DatasetLayout.codec("saliency"):
            assert path.suffix == ".png" and Image.open(path).mode == "L"
            np.testing.assert_array_equal(layout.codec("saliency").read(path), codes)
        ids = np.array([[0, 1, 2, 3], [4, 5, 6, 255]], dtype=np.uint8)
        path = layout.write_prediction(tmp_path / layout.name, "human_parts", "0", ids)
        if layout.codec("human_parts") is DatasetLayout.codec("human_parts"):
            assert Image.open(path).mode == "L"
            np.testing.assert_array_equal(layout.codec("human_parts").read(path), ids)


def test_codecs_name_a_bad_file_in_one_line(tmp_path: Path) -> None:
    rgb = tmp_path / "rgb.png"
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(rgb)
    with pytest.raises(DataFormatError, match=r"rgb\.png: saliency map has mode 'RGB'") as caught:
        DatasetLayout.codec("saliency").read(rgb)
    assert "\n" not in str(caught.value)
    parts = tmp_path / "parts.png"
    Image.fromarray(np.full((4, 4), 9, np.uint8)).save(parts)
    with pytest.raises(DataFormatError, match=r"parts\.png: human parts hold values \[9\] outside 0\.\.6 and 255"):
        DatasetLayout.codec("human_parts").read(parts)
    with pytest.raises(DataFormatError, match="missing file"):
        DatasetLayout.codec("saliency").read(tmp_path / "none.png")
    with pytest.raises(ValueError, match="uint8"):
        DatasetLayout.codec("saliency").write(tmp_path / "x.png", np.zeros((4, 4), np.float32))


# --- train, validate, predict -------------------------------------------------------------------------------------
class ToyPascalLayout(NpzSamplesLayout):
    """<root>/<split>/<i>.npz holding rgb, saliency and human_parts; predictions through the tasks' own codecs."""

    info = INFO


def write_toy_pascal(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for split, count in (("train", 2), ("val", 2)):
        (root / split).mkdir(parents=True)
        for i in range(count):
            rgb = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
            saliency = (rgb.mean(-1) > 128).astype(np.uint8)
            parts = rng.integers(0, 7, (32, 32)).astype(np.uint8)
            if i == 1:
                parts[:] = 255  # no people
            np.savez(root / split / f"{i}.npz", rgb=rgb, saliency=saliency, human_parts=parts)
    return root


@pytest.fixture
def toy_pascal():
    register_dataset("toy_pascal")(ToyPascalLayout)
    try:
        yield
    finally:
        DATASETS.unregister("toy_pascal")


@pytest.mark.slow
def test_a_model_trains_validates_and_predicts_saliency_and_human_parts(toy_pascal, tmp_path: Path) -> None:
    root = write_toy_pascal(tmp_path / "data")
    run = tmp_path / "run"
    flags = [*FAST_TRAIN_FLAGS, "--dataset", "toy_pascal", "--num_epochs", "1", "--aug_input_crop_size", "32",
             "--prepare_submission", "no"]
    assert main(["train", "--dataset_root", str(root), "--log_dir", str(run), *flags]) == 0
    text = (run / "metrics.csv").read_text()
    for tag in ("metrics_summary/saliency", "metrics_summary/human_parts", "metrics_task_saliency/miou",
                "metrics_task_human_parts/lower_leg", "loss_train/saliency", "loss_train/human_parts"):
        assert tag in text
    out = tmp_path / "pred"
    assert main(["predict", "--checkpoint", str(run / "checkpoints" / "best.ckpt"), "--split", "val",
                 "--dataset_root", str(root), "--out", str(out), "--batch_size", "2"]) == 0
    assert Image.open(out / "saliency" / "1.png").mode == "L"
    assert set(np.unique(np.array(Image.open(out / "human_parts" / "0.png")))) <= set(range(7))
    tasks = json.loads((out / "metrics.json").read_text())["tasks"]
    assert tasks["human_parts"]["images"] == 1 and tasks["saliency"]["images"] == 2
    assert 0 <= tasks["saliency"]["max_f"] <= 100
    onnx = tmp_path / "model.onnx"
    assert main(["export", "--checkpoint", str(run / "checkpoints" / "best.ckpt"), "--out", str(onnx),
                 "--height", "32", "--width", "32"]) == 0
    session = onnxruntime.InferenceSession(str(onnx), providers=["CPUExecutionProvider"])
    names = [output.name for output in session.get_outputs()]
    saliency, parts = session.run(names, {"rgb": np.full((1, 3, 32, 32), 128, np.float32)})
    assert names == ["saliency_probability", "human_parts_logits"]
    assert saliency.shape == (1, 1, 32, 32) and ((saliency >= 0) & (saliency <= 1)).all() and parts.shape == (1, 7, 32, 32)
