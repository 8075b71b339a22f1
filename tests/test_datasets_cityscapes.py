"""The Cityscapes layout: decoding against the formulas (computed here, with cityscapesscripts' own table),
resizing, bad files named on one line (check and training), the generated layout, and — end to end — the
official evaluator scoring `mtl predict --format cityscapes` with the IoUs `mtl predict` reports."""

from __future__ import annotations

import argparse
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from cityscapesscripts.helpers.labels import labels as CS_LABELS
from cityscapesscripts.helpers.labels import trainId2label
from conftest import FAST_TRAIN_FLAGS
from PIL import Image

from mtl.cli.main import main
from mtl.data.formats import DataFormatError
from mtl.data.synth import render_sample
from mtl.datasets.cityscapes import CITYSCAPES_BASELINE_M, sample_prefix
from mtl.datasets import DATASETS

LAYOUT = DATASETS["cityscapes"]
ALL_LABEL_IDS = [label.id for label in CS_LABELS if label.id >= 0]  # 0..33


def official_train_id(label_id: int) -> int:
    """The table's trainId of a labelId, 255 for anything not trained."""
    label = next(lab for lab in CS_LABELS if lab.id == label_id)
    return label.trainId if 0 <= label.trainId < 255 and not label.ignoreInEval else 255


def depth_formula(p: np.ndarray, baseline: float, fx: float) -> np.ndarray:
    """SPEC §9: d = (p − 1)/256 for p > 0; z = baseline·fx/d; p = 0 invalid (and p = 1: d = 0, infinitely far)."""
    out = np.full(p.shape, np.nan)
    for (r, c), code in np.ndenumerate(p):
        if code > 1:
            out[r, c] = baseline * fx / ((float(code) - 1.0) / 256.0)
    return out


def write_sample(root: Path, split: str, city: str, name: str, rng: np.random.Generator, size=(16, 32), camera=(0.2, 500.0)):
    h, w = size
    folders = {k: root / k / split / city for k in ("leftImg8bit", "gtFine", "disparity", "camera")}
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(folders["leftImg8bit"] / f"{name}_leftImg8bit.png")
    label_ids = rng.choice(ALL_LABEL_IDS, size=(h, w)).astype(np.uint8)
    Image.fromarray(label_ids).save(folders["gtFine"] / f"{name}_gtFine_labelIds.png")
    codes = rng.integers(0, 30000, size=(h, w)).astype(np.uint16)
    codes[0, :4] = (0, 1, 2, 65535)
    Image.fromarray(codes).save(folders["disparity"] / f"{name}_disparity.png")
    baseline, fx = camera
    text = json.dumps({"extrinsic": {"baseline": baseline}, "intrinsic": {"fx": fx, "fy": fx, "u0": w / 2, "v0": h / 2}})
    (folders["camera"] / f"{name}_camera.json").write_text(text)
    return label_ids, codes


@pytest.fixture
def written(tmp_path: Path):
    """A Cityscapes tree written here: train has two cities (bochum listed before aachen on purpose), val one."""
    rng = np.random.default_rng(0)
    root = tmp_path / "cs"
    truth = {}
    for split, city, name, camera in (
        ("train", "bochum", "bochum_000000_000313", (0.21, 2262.5)),
        ("train", "aachen", "aachen_000001_000019", (0.2, 500.0)),
        ("train", "aachen", "aachen_000000_000019", (0.25, 1000.0)),
        ("val", "lindau", "lindau_000000_000019", (0.209313, 2262.52)),
    ):
        truth[(split, name)] = (*write_sample(root, split, city, name, rng, camera=camera), camera)
    (root / "leftImg8bit" / "test" / "berlin").mkdir(parents=True)
    Image.fromarray(rng.integers(0, 256, (16, 32, 3), dtype=np.uint8)).save(
        root / "leftImg8bit/test/berlin/berlin_000000_000019_leftImg8bit.png"
    )
    return root, truth


def test_the_classes_are_the_official_train_ids():
    names = [trainId2label[i].name for i in range(19)]
    colors = [tuple(trainId2label[i].color) for i in range(19)]
    assert list(LAYOUT.info.task_info["semseg"].class_names) == names
    assert [tuple(c) for c in LAYOUT.info.task_info["semseg"].class_colors] == colors


def test_decoding_equals_the_formulas(written):
    root, truth = written
    layout = LAYOUT(root)
    assert layout.splits() == ("train", "val", "test")
    assert [layout.sample_name("train", i) for i in range(3)] == [
        "aachen_000000_000019", "aachen_000001_000019", "bochum_000000_000313",
    ]
    assert layout.tasks_in("train") == ("semseg", "depth") and layout.tasks_in("test") == ()
    for split in ("train", "val"):
        for i in range(layout.split_size(split)):
            label_ids, codes, (baseline, fx) = truth[(split, layout.sample_name(split, i))]
            sample = layout.read(split, i, ("semseg", "depth"))
            expected_ids = np.vectorize(official_train_id)(label_ids)
            np.testing.assert_array_equal(sample["semseg"], expected_ids)
            assert sample["semseg"].dtype == np.uint8
            expected_depth = depth_formula(codes, baseline, fx)
            assert sample["depth"].dtype == np.float32
            np.testing.assert_array_equal(np.isnan(sample["depth"]), np.isnan(expected_depth))
            np.testing.assert_allclose(sample["depth"], expected_depth, rtol=1e-6, equal_nan=True)
            assert np.isnan(sample["depth"][0, :2]).all()  # p = 0 and p = 1
            assert sample["depth"][0, 2] == pytest.approx(baseline * fx * 256, rel=1e-6)
    assert layout.read("test", 0, ())["rgb"].shape == (16, 32, 3)
    with pytest.raises(FileNotFoundError, match="no public labels"):
        layout.require_ground_truth("test")


def test_resize_is_nearest_and_predictions_go_back_to_full_size(written):
    root, truth = written
    full = LAYOUT(root).read("train", 0, ("semseg", "depth"))
    for flag, (h, w) in (("8,12", (8, 12)), ("0.5", (8, 16))):
        layout = DATASETS["cityscapes"].from_flags(
            argparse.Namespace(dataset_root=root, dataset_resize=DATASETS_RESIZE(flag))
        )
        small = layout.read("train", 0, ("semseg", "depth"))
        rows = [math.floor((r + 0.5) * 16 / h) for r in range(h)]
        cols = [math.floor((c + 0.5) * 32 / w) for c in range(w)]
        assert small["rgb"].shape == (h, w, 3)
        np.testing.assert_array_equal(small["semseg"], full["semseg"][np.ix_(rows, cols)])
        np.testing.assert_array_equal(small["depth"], full["depth"][np.ix_(rows, cols)])  # NaN stays NaN, no blend
        restored = layout.restore_size("train", 0, small["semseg"])
        assert restored.shape == (16, 32)
        assert layout.image_size("train") == (h, w)


def DATASETS_RESIZE(text: str):
    from mtl.datasets.cityscapes import resize_value

    return resize_value(text)


@pytest.mark.parametrize("bad", ["0,5", "x", "1.5", "nan", "3,4,5"])
def test_resize_flag_refuses_bad_values(bad):
    with pytest.raises(argparse.ArgumentTypeError):
        DATASETS_RESIZE(bad)


def check(capsys, root: Path, *flags: str) -> tuple[int, list[str]]:
    rc = main(["data", "check", "--dataset", "cityscapes", "--root", str(root), *flags])
    return rc, capsys.readouterr().out.splitlines()


def test_clean_tree_passes_the_check(written, capsys):
    root, _ = written
    (root / "gtFine/train/aachen/aachen_000000_000019_gtFine_color.png").write_bytes(b"")  # other gtFine files: not read
    rc, lines = check(capsys, root)
    assert rc == 0, lines
    assert lines == [f"{root}: OK, 17 files checked, no problem found"]  # 5 images + 4 × (labelIds, disparity, camera)


BAD = {
    "missing camera": (
        lambda r: (r / "camera/train/aachen/aachen_000001_000019_camera.json").unlink(),
        "camera/train/aachen/aachen_000001_000019_camera.json: missing file",
    ),
    "8-bit disparity": (
        lambda r: Image.fromarray(np.full((16, 32), 9, np.uint8)).save(r / "disparity/train/bochum/bochum_000000_000313_disparity.png"),
        "disparity/train/bochum/bochum_000000_000313_disparity.png: disparity PNG has mode 'L' (8-bit), expected a 16-bit grayscale PNG",
    ),
    "labelIds outside the table": (
        lambda r: Image.fromarray(np.full((16, 32), 200, np.uint8)).save(r / "gtFine/train/aachen/aachen_000000_000019_gtFine_labelIds.png"),
        "gtFine/train/aachen/aachen_000000_000019_gtFine_labelIds.png: labelIds [200] are not in the Cityscapes label table",
    ),
    "camera without fx": (
        lambda r: (r / "camera/train/aachen/aachen_000000_000019_camera.json").write_text('{"extrinsic": {"baseline": 0.2}, "intrinsic": {}}'),
        "camera/train/aachen/aachen_000000_000019_camera.json: not a Cityscapes camera file with extrinsic.baseline and intrinsic.fx (no 'fx')",
    ),
}


@pytest.mark.parametrize("bad", list(BAD))
def test_each_bad_file_is_one_line_naming_it(written, capsys, bad):
    root, _ = written
    damage, message = BAD[bad]
    damage(root)
    rc, lines = check(capsys, root)
    assert rc == 1
    assert len(lines) == 2 and lines[0].startswith(f"{root}/{message}"), lines
    layout = LAYOUT(root)
    name = message.split("/")[3].split("_")[:3]
    index = [layout.sample_name("train", i) for i in range(3)].index("_".join(name))
    with pytest.raises(DataFormatError) as info:
        layout.read("train", index, ("semseg", "depth"))
    assert str(info.value) == lines[0]


def test_structure_problems_are_named(written, capsys):
    root, _ = written
    shutil.copy(root / "leftImg8bit/train/aachen/aachen_000000_000019_leftImg8bit.png", root / "leftImg8bit/train/aachen/bochum_000000_000001_leftImg8bit.png")
    (root / "gtFine/val/lindau/lindau_000000_000099_gtFine_labelIds.png").write_bytes(b"x")
    (root / "disparity/val/lindau/notes.txt").write_text("x")
    shutil.rmtree(root / "camera/val")
    rc, lines = check(capsys, root)
    assert rc == 1
    assert lines[:-1] == [
        f"{root}/leftImg8bit/train/aachen/bochum_000000_000001_leftImg8bit.png: not a Cityscapes image name "
        "(expected <city>_<seq>_<frame>_leftImg8bit.png inside its <city> folder)",
        f"{root}/camera/val: missing folder (depth needs a camera file per disparity map)",
        f"{root}/gtFine/val/lindau/lindau_000000_000099_gtFine_labelIds.png: no matching "
        f"{root}/leftImg8bit/val/lindau/lindau_000000_000099_leftImg8bit.png",
        f"{root}/disparity/val/lindau/notes.txt: stray file (expected <city>/<city>_<seq>_<frame>_disparity.png)",
    ]


def test_training_stops_with_the_bad_file_named(written, tmp_path, capsys):
    root, _ = written
    for path in (root / "camera/train").rglob("*.json"):
        path.unlink()
    flags = [*FAST_TRAIN_FLAGS, "--dataset", "cityscapes", "--num_epochs", "1", "--aug_input_crop_size", "16",
             "--prepare_submission", "no"]
    assert main(["train", "--dataset_root", str(root), "--log_dir", str(tmp_path / "run"), *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(f"mtl train: {root}/camera/train/") and "_camera.json: missing file" in err


# --- the generated world in this layout -------------------------------------------------------------------
@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cs_synth") / "data"
    LAYOUT.generate(root, num_train=4, num_val=3, num_test=1, width=128, height=64, seed=3, workers=1)
    return root


def test_generated_tree_reads_back_as_rendered(generated, capsys):
    layout = LAYOUT(generated)
    assert [layout.split_size(s) for s in ("train", "val", "test")] == [4, 3, 1]
    assert layout.sample_name("val", 2) == sample_prefix(2) == "synth_000000_000002"
    for i in range(3):
        reference = render_sample(3, "val", i, 128, 64)
        camera = json.loads((generated / f"camera/val/synth/{sample_prefix(i)}_camera.json").read_text())
        assert camera["extrinsic"]["baseline"] == CITYSCAPES_BASELINE_M and camera["intrinsic"]["fx"] == reference.focal
        sample = layout.read("val", i, ("semseg", "depth"))
        np.testing.assert_array_equal(sample["rgb"], reference.rgb)  # PNG: lossless
        np.testing.assert_array_equal(sample["semseg"], reference.semseg)  # trainId → labelId → trainId
        valid = np.isfinite(reference.depth)
        np.testing.assert_array_equal(np.isfinite(sample["depth"]), valid)
        d = CITYSCAPES_BASELINE_M * reference.focal / reference.depth[valid].astype(np.float64)
        bound = 0.5 / (256 * d - 0.5)  # half a code of 1/256 pixel, relative to the disparity
        error = np.abs(sample["depth"][valid] / reference.depth[valid] - 1)
        assert (error <= bound + 1e-6).all()
    assert main(["data", "check", "--dataset", "cityscapes", "--root", str(generated)]) == 0
    assert main(["data", "stats", "--dataset", "cityscapes", "--root", str(generated), "--split", "val",
                 "--out", str(generated.parent / "h.png")]) == 0
    assert "depth (m): " in capsys.readouterr().out


def official_evaluator(gt_root: Path, predictions: Path) -> dict[str, float]:
    """cityscapesscripts' evalPixelLevelSemanticLabeling on the val split: class IoUs (NaN: class in neither).

    Its instance-weighted iIoU calls numpy.in1d, which NumPy 2.4 removed, so that part is switched off; the
    class IoUs (what is compared) do not depend on it."""
    import cityscapesscripts.evaluation.evalPixelLevelSemanticLabeling as evaluator

    args = evaluator.args
    args.predictionPath, args.predictionWalk = str(predictions), None
    args.evalInstLevelScore, args.JSONOutput, args.quiet, args.colorized = False, False, True, False
    gts = sorted(str(p) for p in gt_root.glob("gtFine/val/*/*_gtFine_labelIds.png"))
    preds = [evaluator.getPrediction(args, gt) for gt in gts]
    return evaluator.evaluateImgLists(preds, gts, args)["classScores"]


def our_ious(gt: list[np.ndarray], pred: list[np.ndarray]) -> list[float]:
    """mtl's semseg metric on trainId arrays."""
    import torch

    from mtl.metrics.semseg import SemsegMetrics

    metric = SemsegMetrics(19, 255)
    for g, p in zip(gt, pred):
        metric.update(torch.from_numpy(p.astype(np.int64))[None], torch.from_numpy(g.astype(np.int64))[None])
    return metric.compute()["iou_per_class"].tolist()


def largest_difference(ours: dict[str, float], official: dict[str, float]) -> float:
    """Ours are percent, the evaluator's fractions; a class in neither GT nor prediction is NaN there, 0 here."""
    worst = 0.0
    for name, value in ours.items():
        theirs = official[name]
        if math.isnan(theirs):
            assert value == 0.0, name
        else:
            worst = max(worst, abs(value / 100 - theirs))
    return worst


def test_official_evaluator_agrees_on_random_predictions(generated, tmp_path):
    """Every class: a random trainId prediction per val image, written by the layout's codec."""
    layout = LAYOUT(generated)
    rng = np.random.default_rng(1)
    out = tmp_path / "pred"
    gt, pred = [], []
    for i in range(layout.split_size("val")):
        ids = rng.integers(0, 19, size=(64, 128)).astype(np.uint8)
        layout.write_prediction(out, "semseg", layout.sample_name("val", i), ids)
        gt.append(layout.read("val", i, ("semseg",))["semseg"])
        pred.append(ids)
    ours = dict(zip(LAYOUT.info.task_info["semseg"].class_names, our_ious(gt, pred)))
    official = official_evaluator(generated, out / "semseg")
    worst = largest_difference(ours, official)
    print(f"largest |IoU difference| vs the official evaluator (random predictions): {worst:.3g}")
    assert worst < 1e-12


@pytest.mark.slow
def test_train_predict_and_the_official_evaluator(generated, tmp_path, capsys):
    run = tmp_path / "run"
    flags = [*FAST_TRAIN_FLAGS, "--dataset", "cityscapes", "--num_epochs", "1", "--optimizer", "adam",
             "--optimizer_lr", "0.001", "--prepare_submission", "no", "--depth_stats", "auto"]
    assert main(["train", "--dataset_root", str(generated), "--log_dir", str(run), *flags]) == 0
    ckpt = str(run / "checkpoints" / "best.ckpt")
    out = tmp_path / "pred"
    assert main(["predict", "--checkpoint", ckpt, "--split", "val", "--dataset_root", str(generated), "--out", str(out),
                 "--format", "cityscapes", "--device", "cpu"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    files = sorted(p.name for p in (out / "semseg").iterdir())
    assert files == [f"{sample_prefix(i)}_labelIds.png" for i in range(3)]
    with Image.open(out / "semseg" / files[0]) as image:
        assert image.mode == "L" and image.size == (128, 64)
    official = official_evaluator(generated, out / "semseg")
    worst = largest_difference(metrics["tasks"]["semseg"]["iou_per_class"], official)
    with capsys.disabled():
        print(f"\nlargest |IoU difference| vs the official evaluator (trained model): {worst:.3g}")
    assert worst < 1e-12
    assert (out / "depth" / f"{sample_prefix(0)}_depth.npy").is_file()

    # the test split (no labels) and the user's own images named like Cityscapes
    capsys.readouterr()
    assert main(["predict", "--checkpoint", ckpt, "--split", "test", "--dataset_root", str(generated),
                 "--out", str(tmp_path / "test"), "--device", "cpu"]) == 0
    assert (tmp_path / "test" / "semseg" / f"{sample_prefix(0)}_labelIds.png").is_file()
    images = generated / "leftImg8bit" / "val" / "synth"
    assert main(["predict", "--checkpoint", ckpt, "--input", str(images), "--out", str(tmp_path / "own"),
                 "--format", "cityscapes", "--device", "cpu"]) == 0
    assert sorted(p.name for p in (tmp_path / "own" / "semseg").iterdir()) == files
    assert (tmp_path / "own" / f"{sample_prefix(0)}_leftImg8bit_overview.png").is_file()


@pytest.mark.slow
def test_training_at_a_reduced_size_writes_predictions_at_full_size(generated, tmp_path):
    run = tmp_path / "run"
    flags = [*FAST_TRAIN_FLAGS, "--dataset", "cityscapes", "--dataset_resize", "0.5", "--num_epochs", "1",
             "--aug_input_crop_size", "32", "--prepare_submission", "no"]
    assert main(["train", "--dataset_root", str(generated), "--log_dir", str(run), *flags]) == 0
    out = tmp_path / "pred"
    assert main(["predict", "--checkpoint", str(run / "checkpoints" / "best.ckpt"), "--split", "val",
                 "--dataset_root", str(generated), "--out", str(out), "--device", "cpu"]) == 0
    with Image.open(out / "semseg" / f"{sample_prefix(1)}_labelIds.png") as image:
        assert image.size == (128, 64)  # the files' size, not the 64×32 the model saw
    assert np.load(out / "depth" / f"{sample_prefix(1)}_depth.npy").shape == (64, 128)
