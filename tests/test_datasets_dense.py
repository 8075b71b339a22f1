"""The dense benchmark copies of ASTMT / MTL-PyTorch, nyud_mt and pascal_context: fixtures in their exact file
formats (JPEG, PNG, .npy, .mat), every conversion the reference loaders make, `mtl data check`'s lines, the
generated copies, and one epoch of training on the generated NYUD copy."""

from __future__ import annotations

import argparse
import json
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import pytest
import scipy.io as sio
from conftest import FAST_TRAIN_FLAGS
from PIL import Image

from mtl.cli.main import main
from mtl.data.synth import render_sample
from mtl.datasets import DATASETS
from mtl.datasets.listed import add_to_split_list, label_edges
from mtl.datasets.pascal_context import NORMALS_CLASSES

H, W = 12, 16


def jpeg(path: Path, h: int = H, w: int = W) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((h, w, 3), 100, np.uint8)).save(path, format="JPEG")


def png(path: Path, array: np.ndarray, mode: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode=mode).save(path, format="PNG")


def npy(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, array)


def lists(root: Path, folder: str, splits: dict[str, list[str]]) -> None:
    (root / folder).mkdir(parents=True, exist_ok=True)
    for split, ids in splits.items():
        (root / folder / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))


# ---------------------------------------------------------------------------------------------- NYUD
def nyud_sample(root: Path, sample_id: str, rng: np.random.Generator) -> dict[str, np.ndarray]:
    seg = rng.integers(0, 41, size=(H, W)).astype(np.uint8)
    depth = rng.uniform(0.5, 10, size=(H, W)).astype(np.float32)
    depth[0, :2] = 0
    normals = rng.uniform(-1, 1, size=(H, W, 3)).astype(np.float32)
    normals /= np.linalg.norm(normals, axis=-1, keepdims=True)
    normals[1, :3] = 0
    edge = (rng.random((H, W)) > 0.8).astype(np.float32)
    jpeg(root / "images" / f"{sample_id}.jpg")
    png(root / "segmentation" / f"{sample_id}.png", seg, "L")
    npy(root / "depth" / f"{sample_id}.npy", depth)
    npy(root / "normals" / f"{sample_id}.npy", normals)
    npy(root / "edge" / f"{sample_id}.npy", edge)
    return {"seg": seg, "depth": depth, "normals": normals, "edge": edge}


@pytest.fixture
def nyud(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "NYUD_MT"
    samples = {i: nyud_sample(root, i, rng) for i in ("0003", "0001", "0002")}
    lists(root, "gt_sets", {"train": ["0003", "0001"], "val": ["0002"]})
    return root, samples


def test_nyud_reads_as_the_reference(nyud):
    root, samples = nyud
    layout = DATASETS["nyud_mt"](root)
    assert layout.splits() == ("train", "val") and layout.split_size("train") == 2
    assert layout.sample_name("train", 0) == "0003"  # the list's order, not sorted
    assert layout.stored_tasks_in("train") == ("semseg", "depth", "normals", "edges")
    arrays = layout.read("train", 0, ("semseg", "depth", "normals", "edges"))
    stored = samples["0003"]
    expected_seg = stored["seg"].astype(np.int64) - 1  # 1..40 → 0..39, 0 → ignored
    expected_seg[stored["seg"] == 0] = 255
    np.testing.assert_array_equal(arrays["semseg"], expected_seg.astype(np.uint8))
    assert np.isnan(arrays["depth"][0, :2]).all() and np.array_equal(arrays["depth"][1], stored["depth"][1])
    assert np.isnan(arrays["normals"][1, :3]).all() and np.array_equal(arrays["normals"][2], stored["normals"][2])
    assert arrays["edges"].dtype == np.uint8 and np.array_equal(arrays["edges"], stored["edge"].astype(np.uint8))
    info = layout.info
    assert info.task_info["semseg"].num_classes == 40 and info.task_info["semseg"].class_names[0] == "wall"
    assert info.task_info["edges"].tolerance == 0.011


def test_nyud_stats_measure_depth_and_each_class_task(nyud, tmp_path):
    """`mtl data stats`: depth in metres over the valid pixels, class frequencies of semseg and of edges apart."""
    from mtl.data.stats import compute_stats

    root, samples = nyud
    stats = compute_stats(DATASETS["nyud_mt"](root), "train", progress=False)
    depth = np.concatenate([samples[i]["depth"].ravel() for i in ("0003", "0001")]).astype(np.float64)
    depth = depth[depth > 0]
    assert stats["depth_mean"] == pytest.approx(depth.mean()) and stats["depth_std"] == pytest.approx(depth.std())
    seg = np.concatenate([samples[i]["seg"].ravel() for i in ("0003", "0001")])
    assert stats["semseg_class_pixels"] == [int((seg == c + 1).sum()) for c in range(40)]
    assert stats["semseg_ignore_pixels"] == int((seg == 0).sum())
    edge = np.concatenate([samples[i]["edge"].ravel() for i in ("0003", "0001")])
    assert stats["edges_class_pixels"] == [int((edge == 0).sum()), int((edge == 1).sum())]


def test_nyud_predictions_use_the_references_formats(tmp_path):
    """Predicted ids are written unshifted (0..39), depth as a .mat variable 'depth'."""
    layout = DATASETS["nyud_mt"]
    ids = np.arange(40, dtype=np.uint8).reshape(5, 8)
    path = layout.write_prediction(tmp_path, "semseg", "0001", ids)
    assert path.name == "0001.png" and np.array_equal(np.array(Image.open(path)), ids)
    depth = np.linspace(0.5, 9, 40, dtype=np.float32).reshape(5, 8)
    path = layout.write_prediction(tmp_path, "depth", "0001", depth)
    assert path.suffix == ".mat" and np.array_equal(sio.loadmat(path)["depth"], depth)


def test_nyud_check_names_every_bad_file(nyud, capsys):
    root, _ = nyud
    (root / "depth" / "0001.npy").unlink()
    seg = np.array(Image.open(root / "segmentation" / "0003.png"))
    seg[0, 0] = 41
    png(root / "segmentation" / "0003.png", seg, "L")
    npy(root / "normals" / "0002.npy", np.zeros((H, W + 1, 3), np.float32))
    npy(root / "edge" / "0003.npy", np.full((H, W), 0.5, np.float32))
    (root / "gt_sets" / "val.txt").write_text("0002\n0009\n")
    (root / "depth" / "notes.txt").write_text("x")
    assert main(["data", "check", "--dataset", "nyud_mt", "--root", str(root)]) == 1
    out = capsys.readouterr()
    text = out.out + out.err
    for line in (
        f"{root / 'depth' / '0001.npy'}: missing file (named in {root / 'gt_sets' / 'train.txt'})",
        f"{root / 'segmentation' / '0003.png'}: segmentation holds values [41] outside 0..40 (0 = unlabelled)",
        f"{root / 'normals' / '0002.npy'}: normals is 17x12, its image 16x12",
        f"{root / 'edge' / '0003.npy'}: edges hold values [0.5], expected 0 and 1",
        f"{root / 'images' / '0009.jpg'}: missing file (named in {root / 'gt_sets' / 'val.txt'})",
        f"{root / 'depth' / 'notes.txt'}: stray file (expected <id>.npy)",
    ):
        assert line in text, line


# -------------------------------------------------------------------------------------------- PASCAL
def part_anno(objects: list[tuple[int, list[tuple[str, np.ndarray]]]], h: int = H, w: int = W) -> dict:
    """A PASCAL-Part ``anno`` struct as its .mat files hold it (saved with scipy.io.savemat)."""
    part_dtype = [("part_name", "O"), ("mask", "O")]
    obj_dtype = [("class", "O"), ("class_ind", "O"), ("mask", "O"), ("parts", "O")]
    objs = np.zeros((1, len(objects)), dtype=obj_dtype)
    for j, (class_ind, parts) in enumerate(objects):
        if parts:
            table = np.zeros((1, len(parts)), dtype=part_dtype)
            for k, (name, mask) in enumerate(parts):
                table[0, k] = (name, mask.astype(np.uint8))
        else:
            table = np.zeros((0, 0))
        whole = np.zeros((h, w), np.uint8)
        for _, mask in parts:
            whole |= mask.astype(np.uint8)
        objs[0, j] = ("person" if class_ind == 15 else "other", np.array([[class_ind]], np.uint8), whole, table)
    return {"anno": {"imname": "x", "objects": objs}}


@pytest.fixture
def pascal(tmp_path):
    root = tmp_path / "PASCAL_MT"
    ids = ["2008_000001", "2008_000002", "2008_000003"]
    labels = np.full((H, W), 7, np.uint16)  # 7: not a NYUD class
    labels[:, 8:] = 3  # 3: one
    labels[4:8, 2:5] = 460
    for i in ids:
        jpeg(root / "JPEGImages" / f"{i}.jpg")
        (root / "pascal-context" / "trainval").mkdir(parents=True, exist_ok=True)
        sio.savemat(root / "pascal-context" / "trainval" / f"{i}.mat", {"LabelMap": labels})
        sal = np.zeros((H, W), np.uint8)
        sal[0, :4] = (127, 128, 200, 255)
        png(root / "sal_distill" / f"{i}.png", sal, "L")
        codes = np.zeros((H, W, 3), np.uint8)
        codes[..., 0], codes[..., 1], codes[..., 2] = 10, 128, 250
        png(root / "normals_distill" / f"{i}.png", codes, "RGB")
    head, arm, foot = (np.zeros((H, W), bool) for _ in range(3))
    head[0:2, 0:2], arm[2:4, 0:2], foot[10:12, 0:2] = True, True, True
    other = np.zeros((H, W), bool)
    other[5:7, 10:12] = True
    annos = {
        ids[0]: part_anno([(15, [("head", head), ("luarm", arm), ("rfoot", foot)]), (2, [("lwing", other)])]),
        ids[1]: part_anno([(2, [("lwing", other)])]),  # no person
        ids[2]: part_anno([(15, [])]),  # a person without part annotations
    }
    for i, anno in annos.items():
        (root / "human_parts").mkdir(exist_ok=True)
        sio.savemat(root / "human_parts" / f"{i}.mat", anno)
    voc = np.zeros((H, W), np.uint8)
    voc[0, :] = 255
    voc[3, 3] = 15
    png(root / "semseg" / "VOC12" / f"{ids[0]}.png", voc, "L")
    for i in ids[1:]:
        png(root / "semseg" / "pascal-context" / f"{i}.png", np.full((H, W), 20, np.uint8), "L")
    lists(root, "ImageSets/Context", {"train": ids[:2], "val": ids[2:]})
    return root, ids, labels, (head, arm, foot)


def laplacian_mask(labels: np.ndarray) -> np.ndarray:
    """Where OpenCV's default Laplacian (4 neighbours, border reflected without repeating the edge) is not 0."""
    p = np.pad(labels.astype(np.float64), 1, mode="reflect")
    lap = p[:-2, 1:-1] + p[2:, 1:-1] + p[1:-1, :-2] + p[1:-1, 2:] - 4 * p[1:-1, 1:-1]
    return lap != 0


def test_pascal_reads_as_the_reference(pascal):
    root, ids, labels, (head, arm, foot) = pascal
    layout = DATASETS["pascal_context"](root)
    assert layout.stored_tasks_in("train") == ("semseg", "human_parts", "saliency", "normals", "edges")
    tasks = layout.stored_tasks_in("train")
    first = layout.read("train", 0, tasks)
    # semseg: VOC12's PNG first (255 kept), else pascal-context's
    assert first["semseg"][3, 3] == 15 and (first["semseg"][0] == 255).all()
    assert (layout.read("train", 1, ("semseg",))["semseg"] == 20).all()
    # human parts: head → 1, left upper arm → 3, right foot → 6, a non-person object's parts ignored
    expected = np.zeros((H, W), np.uint8)
    expected[head], expected[arm], expected[foot] = 1, 3, 6
    np.testing.assert_array_equal(first["human_parts"], expected)
    assert (layout.read("train", 1, ("human_parts",))["human_parts"] == 255).all()  # no person
    assert (layout.read("val", 0, ("human_parts",))["human_parts"] == 255).all()  # a person without parts
    # saliency: value/255 > 0.5
    assert first["saliency"][0, :4].tolist() == [0, 1, 1, 1] and first["saliency"].dtype == np.uint8
    # normals: 2v/255 − 1 on Context classes that NYUD has (3 yes, 7 and 460 no)
    assert 3 in NORMALS_CLASSES and 7 not in NORMALS_CLASSES
    normals = first["normals"]
    np.testing.assert_allclose(normals[0, 10], [2 * 10 / 255 - 1, 2 * 128 / 255 - 1, 2 * 250 / 255 - 1], atol=1e-6)
    assert np.isnan(normals[:, :8]).all() and np.isfinite(normals[:, 8:]).all()
    # edges: the Laplacian's non-zero pixels, thinned
    mask = laplacian_mask(labels)
    edges = first["edges"]
    assert edges.dtype == np.uint8 and not (edges.astype(bool) & ~mask).any()
    # the two-pixel-wide boundary between columns 7 and 8 → one pixel (its end at the image border may erode)
    assert (edges[1:-1, 7:9].sum(axis=1) == 1).all()
    info = layout.info
    assert info.task_info["semseg"].num_classes == 21 and info.task_info["human_parts"].num_classes == 7
    assert info.task_info["edges"].tolerance == 0.0075


def test_pascal_check_names_every_bad_file(pascal, capsys):
    root, ids, _, _ = pascal
    (root / "sal_distill" / f"{ids[1]}.png").unlink()
    png(root / "normals_distill" / f"{ids[0]}.png", np.zeros((H, W), np.uint8), "L")
    png(root / "semseg" / "pascal-context" / f"{ids[2]}.png", np.full((H, W), 21, np.uint8), "L")
    (root / "human_parts" / f"{ids[1]}.mat").write_bytes(b"not a mat file")
    (root / "semseg" / "VOC12" / "readme.txt").write_text("x")
    png(root / "semseg" / "VOC12" / "2007_000032.png", np.zeros((H, W), np.uint8), "L")
    assert main(["data", "check", "--dataset", "pascal_context", "--root", str(root)]) == 1
    text = "".join(capsys.readouterr())
    for line in (
        f"{root / 'sal_distill' / (ids[1] + '.png')}: missing file",
        f"{root / 'normals_distill' / (ids[0] + '.png')}: normals image has mode 'L', expected 'RGB'",
        f"{root / 'semseg' / 'pascal-context' / (ids[2] + '.png')}: semseg holds values [21] outside 0..20 and 255",
        f"{root / 'human_parts' / (ids[1] + '.mat')}: cannot read .mat",
        f"{root / 'semseg' / 'VOC12' / 'readme.txt'}: stray file (expected <id>.png)",
        f"{root / 'semseg' / 'VOC12'}: warning: 1 file(s) named in no split list, e.g. 2007_000032.png",
    ):
        assert line in text, line


# ---------------------------------------------------------------------------------------- generated
@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    roots = {}
    for name in ("nyud_mt", "pascal_context"):
        root = tmp_path_factory.mktemp(name) / "data"
        DATASETS[name].generate(root, 2, 1, 0, 96, 64, seed=3, workers=1)
        roots[name] = root
    return roots


def test_generated_copies_round_trip(generated, capsys):
    nyud = DATASETS["nyud_mt"](generated["nyud_mt"])
    sample = render_sample(3, "train", 1, 96, 64)
    assert nyud.sample_name("train", 1) == "train_000001"
    arrays = nyud.read("train", 1, nyud.stored_tasks_in("train"))
    np.testing.assert_array_equal(arrays["semseg"], sample.semseg)
    np.testing.assert_array_equal(np.isnan(arrays["depth"]), np.isnan(sample.depth))
    np.testing.assert_array_equal(arrays["edges"], label_edges(sample.semseg))
    assert nyud.info.task_info["semseg"].num_classes == 19 and nyud.info.extra["generated"]
    pascal = DATASETS["pascal_context"](generated["pascal_context"])
    assert "human_parts" not in pascal.stored_tasks_in("train")
    arrays = pascal.read("train", 1, pascal.stored_tasks_in("train"))
    np.testing.assert_array_equal(arrays["semseg"], sample.semseg)
    np.testing.assert_array_equal(arrays["saliency"], np.isin(sample.semseg, range(11, 19)).astype(np.uint8))
    np.testing.assert_array_equal(np.isnan(arrays["normals"][..., 0]), np.isnan(sample.normals[..., 0]))
    valid = ~np.isnan(sample.normals[..., 0])
    assert np.abs(arrays["normals"][valid] - sample.normals[valid]).max() < 0.01
    for name, root in generated.items():  # the class set follows the copy's synth.json, flags or instance
        layout = DATASETS[name]
        assert layout.info_for(argparse.Namespace(dataset_root=str(root))).task_info["semseg"].num_classes == 19
        real = layout.info_for(argparse.Namespace(dataset_root=str(root.parent / "elsewhere")))
        assert real.task_info["semseg"].num_classes == {"nyud_mt": 40, "pascal_context": 21}[name]
        capsys.readouterr()
        assert main(["data", "check", "--dataset", name, "--root", str(root)]) == 0
        assert "a generated copy (synth.json): 19 street classes" in capsys.readouterr().out


def _add(job: tuple[str, str]) -> None:
    add_to_split_list(Path(job[0]), job[1])


def test_split_lists_written_by_parallel_workers_hold_every_id_sorted(tmp_path):
    path = tmp_path / "gt_sets" / "train.txt"
    ids = [f"train_{i:06d}" for i in range(40)]
    with Pool(2) as pool:
        pool.map(_add, [(str(path), i) for i in reversed(ids)], chunksize=1)
    assert path.read_text() == "".join(f"{i}\n" for i in ids)


@pytest.mark.slow
def test_one_epoch_on_the_generated_nyud_copy(generated, tmp_path):
    """Trains on the 19 street classes of the copy; predictions come out named by id in the reference's formats."""
    root, run, out = generated["nyud_mt"], tmp_path / "run", tmp_path / "pred"
    flags = [*FAST_TRAIN_FLAGS, "--num_epochs", "1", "--aug_input_crop_size", "64"]
    assert main(["train", "--dataset", "nyud_mt", "--dataset_root", str(root),
                 "--tasks", "semseg,depth,normals", "--log_dir", str(run), *flags]) == 0
    assert main(["predict", "--checkpoint", str(run / "checkpoints" / "best.ckpt"), "--split", "val",
                 "--dataset_root", str(root), "--out", str(out), "--device", "cpu"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["tasks"]["semseg"]["iou_per_class"]) == 19
    ids = np.array(Image.open(out / "semseg" / "val_000000.png"))
    assert ids.shape == (64, 96) and ids.max() < 19
    assert sio.loadmat(out / "depth" / "val_000000.mat")["depth"].shape == (64, 96)
    assert Image.open(out / "normals" / "val_000000.png").mode == "RGB"
