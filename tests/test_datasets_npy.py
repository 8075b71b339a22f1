"""The MTAN-style .npy layouts, cityscapes_npy (7 or 19 classes, stored inverse depth) and nyuv2 (13 classes,
metres, normals): decoding against the arrays written here, bad files named on one line (check and training),
the generated layouts, and one epoch of training + `mtl predict` on each."""

from __future__ import annotations

import argparse
import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from cityscapesscripts.helpers.labels import labels as CS_LABELS
from cityscapesscripts.helpers.labels import trainId2label
from conftest import FAST_TRAIN_FLAGS
from PIL import Image

from mtl.cli.main import main
from mtl.data.formats import DataFormatError
from mtl.data.synth import render_sample
from mtl.datasets import DATASETS
from mtl.datasets.cityscapes_npy import DISPARITY_SCALE
from mtl.datasets.nyuv2 import NYU13_OF_TRAIN_ID


def save(root: Path, split: str, folder: str, index: int, array: np.ndarray) -> Path:
    path = root / split / folder / f"{index}.npy"
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, array)
    return path


def random_sample(rng: np.random.Generator, h: int, w: int, num_classes: int) -> dict[str, np.ndarray]:
    image = rng.random((h, w, 3)).astype(np.float32)
    label = rng.integers(-1, num_classes, size=(h, w)).astype(np.float32)
    depth = rng.uniform(0.01, 0.5, size=(h, w, 1)).astype(np.float32)
    depth[0, :3] = 0.0
    normal = rng.normal(size=(h, w, 3)).astype(np.float32)
    normal /= np.linalg.norm(normal, axis=-1, keepdims=True)
    normal[1, :2] = 0.0
    return {"image": image, "label": label, "depth": depth, "normal": normal}


@pytest.fixture
def cityscapes_npy(tmp_path: Path) -> tuple[Path, dict]:
    rng = np.random.default_rng(0)
    root, truth = tmp_path / "cs_npy", {}
    for split, n in (("train", 3), ("val", 2)):
        for i in range(n):
            s7, s19 = random_sample(rng, 8, 16, 7), random_sample(rng, 8, 16, 19)
            save(root, split, "image", i, s7["image"])
            save(root, split, "label_7", i, s7["label"])
            save(root, split, "label_19", i, s19["label"].astype(np.int64))  # integers are accepted too
            save(root, split, "depth", i, s7["depth"])
            truth[(split, i)] = {"image": s7["image"], "label_7": s7["label"], "label_19": s19["label"], "depth": s7["depth"]}
    return root, truth


@pytest.fixture
def nyuv2(tmp_path: Path) -> tuple[Path, dict]:
    rng = np.random.default_rng(1)
    root, truth = tmp_path / "nyu", {}
    for split, n in (("train", 3), ("val", 2)):
        for i in range(n):
            sample = random_sample(rng, 9, 12, 13)
            sample["depth"] *= 20  # metres
            for folder, array in sample.items():
                save(root, split, folder, i, array)
            truth[(split, i)] = sample
    return root, truth


def layout_of(name: str, root: Path, **flags):
    return DATASETS[name].from_flags(argparse.Namespace(dataset_root=root, **flags))


def expected_ids(label: np.ndarray) -> np.ndarray:
    return np.where(label < 0, 255, label).astype(np.uint8)


def test_cityscapes_npy_decodes_what_was_written(cityscapes_npy):
    root, truth = cityscapes_npy
    for classes in (7, 19):
        layout = layout_of("cityscapes_npy", root, num_classes=classes)
        assert layout.info.task_info["semseg"].num_classes == classes and DATASETS["cityscapes_npy"].info_for(
            argparse.Namespace(num_classes=classes)).task_info["semseg"].num_classes == classes
        assert layout.splits() == ("train", "val") and layout.split_size("train") == 3
        for (split, i), arrays in truth.items():
            sample = layout.read(split, i, ("semseg", "depth"))
            np.testing.assert_array_equal(sample["rgb"], np.round(arrays["image"].astype(np.float64) * 255).astype(np.uint8))
            np.testing.assert_array_equal(sample["semseg"], expected_ids(arrays[f"label_{classes}"]))
            stored = arrays["depth"][..., 0]
            np.testing.assert_array_equal(sample["depth"], np.where(stored > 0, stored, np.nan).astype(np.float32))
            assert sample["rgb"].shape == (8, 16, 3) and sample["semseg"].shape == sample["depth"].shape == (8, 16)
    names7 = layout_of("cityscapes_npy", root, num_classes=7).info.task_info["semseg"].class_names
    categories = sorted({(trainId2label[t].categoryId, trainId2label[t].category) for t in range(19)})
    assert list(names7) == [name for _, name in categories]  # the official table's categories, in id order
    assert "not metres" in DATASETS["cityscapes_npy"].info.task_info["depth"].unit


def test_nyuv2_decodes_what_was_written(nyuv2):
    root, truth = nyuv2
    layout = DATASETS["nyuv2"](root)
    assert layout.tasks_in("val") == ("semseg", "depth", "normals") == layout.info.default_tasks
    for (split, i), arrays in truth.items():
        sample = layout.read(split, i, ("semseg", "depth", "normals"))
        np.testing.assert_array_equal(sample["semseg"], expected_ids(arrays["label"]))
        stored = arrays["depth"][..., 0]
        np.testing.assert_array_equal(sample["depth"], np.where(stored > 0, stored, np.nan).astype(np.float32))
        invalid = ~arrays["normal"].any(axis=-1)
        assert invalid.sum() == 2
        np.testing.assert_array_equal(np.isnan(sample["normals"]).all(-1), invalid)
        np.testing.assert_allclose(sample["normals"][~invalid], arrays["normal"][~invalid], atol=1e-6)
        assert sample["normals"].dtype == np.float32


BAD = {
    "depth of the wrong shape": (
        "cityscapes_npy", lambda r: save(r, "train", "depth", 1, np.ones((8, 16, 3), np.float32)),
        "train/depth/1.npy: depth has shape (8, 16, 3), expected (8, 16, 1)",
    ),
    "label of the wrong dtype": (
        "cityscapes_npy", lambda r: save(r, "train", "label_19", 2, np.zeros((8, 16), np.complex64)),
        "train/label_19/2.npy: label has dtype complex64, expected floats or integers",
    ),
    "image of the wrong dtype": (
        "nyuv2", lambda r: save(r, "val", "image", 0, np.zeros((9, 12, 3), np.uint8)),
        "val/image/0.npy: image has dtype uint8, expected floats",
    ),
    "label outside the classes": (
        "nyuv2", lambda r: save(r, "train", "label", 0, np.full((9, 12), 13.0, np.float32)),
        "train/label/0.npy: label holds values [13] outside 0..12 and -1",
    ),
    "normals of another size": (
        "nyuv2", lambda r: save(r, "train", "normal", 1, np.ones((9, 11, 3), np.float32)),
        "train/normal/1.npy: normal has shape (9, 11, 3), expected (9, 12, 3)",
    ),
    "truncated file": (
        "nyuv2", lambda r: (r / "val/depth/1.npy").write_bytes((r / "val/depth/1.npy").read_bytes()[:100]),
        "val/depth/1.npy: cannot read .npy",
    ),
}


@pytest.mark.parametrize("bad", list(BAD))
def test_each_bad_file_is_one_line_naming_it(request, capsys, bad):
    name, damage, message = BAD[bad]
    root, _ = request.getfixturevalue(name)
    damage(root)
    rc = main(["data", "check", "--dataset", name, "--root", str(root)])
    lines = capsys.readouterr().out.splitlines()
    assert rc == 1
    assert len(lines) == 2 and lines[0].startswith(f"{root}/{message}"), lines
    split, _, index = message.split(":")[0].split("/")
    with pytest.raises(DataFormatError) as info:
        DATASETS[name](root).read(split, int(index.removesuffix(".npy")), DATASETS[name].info.stored_tasks)
    assert str(info.value).startswith(f"{root}/{message}") and "\n" not in str(info.value)


def test_structure_problems_are_named(nyuv2, capsys):
    root, _ = nyuv2
    (root / "train/label/2.npy").unlink()
    save(root, "val", "extra", 0, np.zeros(3))
    (root / "train/depth/03.npy").write_bytes((root / "train/depth/0.npy").read_bytes())
    rc = main(["data", "check", "--dataset", "nyuv2", "--root", str(root)])
    lines = capsys.readouterr().out.splitlines()
    assert rc == 1
    assert lines[:-1] == [
        f"{root}/train/depth/03.npy: not a sample name (expected <i>.npy with i = 0, 1, 2, ... in ASCII digits without leading zeros)",
        f"{root}/train/label/2.npy: missing file",
        f"{root}/val/extra: stray folder (expected only image, label, depth, normal)",
    ]


def test_clean_copies_pass_and_stats_describe_them(cityscapes_npy, nyuv2, tmp_path, capsys):
    for name, (root, _), files in (("cityscapes_npy", cityscapes_npy, 20), ("nyuv2", nyuv2, 20)):
        assert main(["data", "check", "--dataset", name, "--root", str(root)]) == 0
        assert capsys.readouterr().out.splitlines() == [f"{root}: OK, {files} files checked, no problem found"]
    root, truth = nyuv2
    assert main(["data", "stats", "--dataset", "nyuv2", "--root", str(root), "--split", "val",
                 "--out", str(tmp_path / "h.png"), "--json", str(tmp_path / "s.json")]) == 0
    stats = json.loads((tmp_path / "s.json").read_text())
    depth = np.concatenate([truth[("val", i)]["depth"].ravel() for i in range(2)]).astype(np.float64)
    depth = depth[depth > 0]
    assert stats["depth_mean"] == pytest.approx(depth.mean(), rel=1e-6)
    assert stats["depth_std"] == pytest.approx(depth.std(), rel=1e-5)
    assert stats["normals_valid_pixels"] == 2 * (9 * 12 - 2)
    labels = np.concatenate([truth[("val", i)]["label"].ravel() for i in range(2)])
    assert stats["class_pixels"] == [int((labels == c).sum()) for c in range(13)]
    assert stats["ignore_pixels"] == int((labels < 0).sum())
    out = capsys.readouterr().out
    assert "normals: 212 valid pixels" in out and out.splitlines()[2].startswith("class ")


# --- the generated world in these layouts -----------------------------------------------------------------
@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("npy_synth")
    roots = {}
    for layout, (w, h) in (("cityscapes_npy", (128, 64)), ("nyuv2", (96, 72))):
        roots[layout] = base / layout
        DATASETS[layout].generate(roots[layout], num_train=4, num_val=2, num_test=0, width=w, height=h, seed=2, workers=1)
    return roots


def test_generated_layouts_hold_the_rendered_samples(generated):
    category = {t: trainId2label[t].categoryId - 1 for t in range(19)}
    for i in range(2):
        s = render_sample(2, "val", i, 128, 64)
        valid = np.isfinite(s.depth)
        for classes in (7, 19):
            sample = layout_of("cityscapes_npy", generated["cityscapes_npy"], num_classes=classes).read("val", i, ("semseg", "depth"))
            np.testing.assert_array_equal(sample["rgb"], s.rgb)  # float32 x/255, rounded back: exact
            mapped = s.semseg if classes == 19 else np.vectorize(lambda t: category.get(int(t), 255))(s.semseg)
            np.testing.assert_array_equal(sample["semseg"], mapped.astype(np.uint8))
        np.testing.assert_array_equal(np.isfinite(sample["depth"]), valid)
        np.testing.assert_allclose(sample["depth"][valid], DISPARITY_SCALE / s.depth[valid].astype(np.float64), rtol=1e-6)
        assert 0.006 < np.nanmin(sample["depth"]) and np.nanmax(sample["depth"]) < 0.47

        s = render_sample(2, "val", i, 96, 72)
        sample = DATASETS["nyuv2"](generated["nyuv2"]).read("val", i, ("semseg", "depth", "normals"))
        table = dict(enumerate(NYU13_OF_TRAIN_ID))
        np.testing.assert_array_equal(sample["semseg"], np.vectorize(lambda t: table.get(int(t), 255))(s.semseg).astype(np.uint8))
        np.testing.assert_array_equal(sample["depth"], s.depth)  # float32 metres, NaN where invalid
        np.testing.assert_allclose(sample["normals"], s.normals, atol=1e-6)
    assert sorted(set(NYU13_OF_TRAIN_ID)) == list(range(13))  # every one of the 13 classes is used
    for name, root in generated.items():
        assert main(["data", "check", "--dataset", name, "--root", str(root)]) == 0
        assert not (root / "test").exists()


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


TRAIN = [*FAST_TRAIN_FLAGS, "--num_epochs", "1", "--optimizer", "adam", "--optimizer_lr", "0.001",
         "--depth_stats", "auto", "--aug_input_crop_size", "64"]


def test_libmtls_copy_keeps_the_seven_categories_in_label(generated, tmp_path, capsys):
    """LibMTL's Cityscapes copy has <split>/label (7 categories) instead of MTAN's label_7/label_19: read with
    --num_classes 7, and `mtl data check` says which folder it read."""
    libmtl = tmp_path / "libmtl"
    shutil.copytree(generated["cityscapes_npy"], libmtl)
    for split in ("train", "val"):
        shutil.rmtree(libmtl / split / "label_7")
        shutil.rmtree(libmtl / split / "label_19")
    mtan = layout_of("cityscapes_npy", generated["cityscapes_npy"], num_classes=7)
    theirs = layout_of("cityscapes_npy", libmtl, num_classes=7)
    assert (mtan.label_folder, theirs.label_folder) == ("label_7", "label")
    for i in range(2):
        ours, other = mtan.read("val", i, ("semseg",)), theirs.read("val", i, ("semseg",))
        np.testing.assert_array_equal(other["semseg"], ours["semseg"])
    for root, line in ((generated["cityscapes_npy"], "label_7/ (MTAN's copy)"), (libmtl, "label/ (LibMTL's copy)")):
        capsys.readouterr()
        assert main(["data", "check", "--dataset", "cityscapes_npy", "--num_classes", "7", "--root", str(root)]) == 0
        assert capsys.readouterr().out.splitlines()[0] == f"{root}: semseg labels read from {line}"
    assert main(["data", "check", "--dataset", "cityscapes_npy", "--num_classes", "19", "--root", str(libmtl)]) == 1


@pytest.mark.slow
@pytest.mark.parametrize(("name", "extra"), [("cityscapes_npy", []), ("nyuv2", [])])
def test_train_validate_and_predict(generated, tmp_path, capsys, name, extra):
    root, run = generated[name], tmp_path / "run"
    assert main(["train", "--dataset", name, "--dataset_root", str(root), "--log_dir", str(run), *TRAIN, *extra]) == 0
    validation = [r for r in read_rows(run / "metrics.csv") if r.get("metrics_summary/semseg")]
    assert len(validation) == 1
    tasks = DATASETS[name].info.default_tasks
    for task in tasks:
        assert float(validation[0][f"metrics_summary/{task}"]) >= 0
    out = tmp_path / "pred"
    assert main(["predict", "--checkpoint", str(run / "checkpoints" / "best.ckpt"), "--split", "val",
                 "--dataset_root", str(root), "--out", str(out), "--device", "cpu"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    num_classes = DATASETS[name].info.task_info["semseg"].num_classes
    assert len(metrics["tasks"]["semseg"]["iou_per_class"]) == num_classes
    layout = DATASETS[name](root)
    codec = layout.codec("semseg")
    ids = codec.read(out / "semseg" / "1.npy")
    assert ids.shape == layout.image_size("val") and ids.max() < num_classes
    depth = np.load(out / "depth" / "1.npy")
    assert depth.shape == (*layout.image_size("val"), 1) and (depth > 0).all()
    check_protocols(name, run, root, out, metrics, tmp_path)
    if name == "nyuv2":
        normals = np.load(out / "normals" / "1.npy")
        np.testing.assert_allclose(np.linalg.norm(normals, axis=-1), 1.0, atol=1e-5)
        # 13 NYUv2 classes cannot be written as Cityscapes labelIds
        capsys.readouterr()
        assert main(["predict", "--checkpoint", str(run / "checkpoints" / "best.ckpt"), "--split", "val",
                     "--dataset_root", str(root), "--out", str(tmp_path / "cs"), "--format", "cityscapes"]) == 1
        assert capsys.readouterr().err == (
            "mtl predict: error: --format cityscapes writes the 19 classes of cityscapes; this model was trained on "
            "nyuv2 with 13 other classes\n"
        )
    else:  # the 19 trainIds: --format cityscapes writes labelIds named by the sample
        assert main(["predict", "--checkpoint", str(run / "checkpoints" / "best.ckpt"), "--split", "val",
                     "--dataset_root", str(root), "--out", str(tmp_path / "cs"), "--format", "cityscapes"]) == 0
        ids = np.asarray(Image.open(tmp_path / "cs" / "semseg" / "1_labelIds.png"))
        assert set(np.unique(ids)) <= {lab.id for lab in CS_LABELS if 0 <= lab.trainId < 255}


def check_protocols(name: str, run, root, out, metrics: dict, tmp_path) -> None:
    """The .npy copies are evaluated as MTAN's code does unless told otherwise (recorded in config.yaml); the Abs and
    Rel Err `mtl predict` prints under each protocol equal the formulas computed here on its written predictions."""
    assert yaml.safe_load((run / "config.yaml").read_text())["eval_protocol"] == "mtan" == metrics["protocol"]
    size = DATASETS[name](root).split_size("val")
    pairs = []
    for i in range(size):
        pred = np.load(out / "depth" / f"{i}.npy")[..., 0].astype(np.float64)
        gt = np.load(root / "val" / "depth" / f"{i}.npy")[..., 0].astype(np.float64)
        pairs.append((pred[gt != 0], gt[gt != 0]))
    def pooled(group):  # noqa: E306
        p, g = np.concatenate([a for a, _ in group]), np.concatenate([b for _, b in group])
        return np.mean(np.abs(p - g)), np.mean(np.abs(p - g) / g)
    batches = [pooled(pairs[s : s + 4]) for s in range(0, size, 4)]  # mtl predict's --batch_size 4
    expected = {"mtan": np.mean(batches, axis=0), "libmtl": pooled(pairs)}
    for protocol, (abs_err, rel_err) in expected.items():
        flags = ["--split", "val", "--dataset_root", str(root), "--out", str(tmp_path / protocol), "--eval_protocol", protocol]
        assert main(["predict", "--checkpoint", str(run / "checkpoints" / "best.ckpt"), *flags]) == 0
        depth = json.loads((tmp_path / protocol / "metrics.json").read_text())["tasks"]["depth"]
        depth = depth["depth_metrics"]
        assert depth["mae"] == pytest.approx(abs_err, rel=1e-5) and depth["rel"] == pytest.approx(rel_err, rel=1e-5)


def test_seven_classes_build_a_seven_class_model(generated):
    from mtl.config import parse_config
    from mtl.inference.predictor import Predictor

    root = generated["cityscapes_npy"]
    cfg = parse_config(["--dataset", "cityscapes_npy", "--num_classes", "7", "--dataset_root", str(root), *TRAIN])
    assert DATASETS["cityscapes_npy"].from_flags(cfg).info.task_info["semseg"].num_classes == 7  # the layout has it right
    predictor = Predictor.from_flags(cfg, {"depth": {"mean": 0.2, "std": 0.1}})
    assert predictor.tasks["semseg"].task_info.class_names[-1] == "vehicle"
    assert predictor.tasks["semseg"].output().channels == 7
