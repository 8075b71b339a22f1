"""`mtl data check` finds each defect by path; `mtl data stats` equals an independent computation."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import make_tiny_dataset
from PIL import Image

from mtl.cli.main import main
from mtl.data.formats import DataFormatError
from mtl.data.miniscapes_files import split_size
from mtl.datasets import DATASETS
from mtl.data.stats import compute_stats
from mtl.datasets import DATASETS


def check(capsys, root: Path) -> tuple[int, list[str]]:
    rc = main(["data", "check", "--root", str(root)])
    return rc, capsys.readouterr().out.splitlines()


def test_clean_dataset_passes(tiny_dataset, capsys):
    rc, lines = check(capsys, tiny_dataset)
    assert rc == 0
    assert lines == [f"{tiny_dataset}: OK, 24 files checked, no problem found"]  # 4·3 + 2·3 + 2 rgb + 2·2 test_gt


def test_test_split_without_ground_truth_passes(tmp_path, capsys):
    root = make_tiny_dataset(tmp_path / "d", test_gt=False)
    assert not (root / "test_gt").exists()
    assert check(capsys, root)[0] == 0


def save_l(path: Path, array: np.ndarray, mode: str = "L") -> None:
    Image.fromarray(np.asarray(array, dtype=np.uint8), mode="L").convert(mode).save(path)


def save_as(path: Path, fmt: str) -> None:
    """Rewrite an image in another file format under the same name (same pixels, same mode)."""
    with Image.open(path) as image:
        image.load()
    image.save(path, format=fmt)


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


DEFECTS = {
    "missing file": (lambda r: (r / "train/semseg/2.png").unlink(), ["train/semseg/2.png: missing file"]),
    "index gap": (
        lambda r: [(r / f"train/{m}/1.{e}").unlink() for m, e in (("rgb", "jpg"), ("semseg", "png"), ("depth", "png"))],
        ["train/rgb/1.jpg: missing file", "train/semseg/1.png: missing file", "train/depth/1.png: missing file"],
    ),
    "missing folder": (lambda r: shutil.rmtree(r / "val/depth"), ["val/depth: missing folder"]),
    "truncated jpeg": (lambda r: truncate(r / "val/rgb/1.jpg"), ["val/rgb/1.jpg: cannot decode image"]),
    "truncated png": (lambda r: truncate(r / "train/depth/3.png"), ["train/depth/3.png: cannot decode image"]),
    "wrong mode depth": (
        lambda r: save_l(r / "train/depth/0.png", np.full((32, 64), 9), "RGB"),
        ["train/depth/0.png: depth image has mode 'RGB', expected 'L'"],
    ),
    "wrong mode rgb": (
        lambda r: save_l(r / "val/rgb/0.jpg", np.zeros((32, 64))),
        ["val/rgb/0.jpg: RGB image has mode 'L', expected 'RGB'"],
    ),
    "size mismatch": (
        lambda r: save_l(r / "train/semseg/3.png", np.zeros((32, 60))),
        ["train/semseg/3.png: size 60x32, but the dataset's images are 64x32"],
    ),
    "out-of-range ids": (
        lambda r: save_l(r / "val/semseg/0.png", np.full((32, 64), 19)),
        ["val/semseg/0.png: semseg holds values [19] outside 0..18 and 255"],
    ),
    "stray files": (
        lambda r: [
            (r / "train/rgb/notes.txt").write_text("x"),
            shutil.copy(r / "train/rgb/0.jpg", r / "train/rgb/07.jpg"),
            (r / "val/extra").mkdir(),
            (r / "val/semseg/old").mkdir(),
        ],
        [
            "train/rgb/notes.txt: not a sample name",
            "train/rgb/07.jpg: not a sample name",
            "val/extra: stray folder",
            "val/semseg/old: stray folder",
        ],
    ),
    "index aliases": (
        lambda r: [shutil.copy(r / "val/rgb/1.jpg", r / f"val/rgb/{name}") for name in ("01.jpg", "\u0663.jpg", "2.JPG")],
        ["val/rgb/01.jpg: not a sample name", "val/rgb/\u0663.jpg: not a sample name", "val/rgb/2.JPG: not a sample name"],
    ),
    "png named .jpg": (lambda r: save_as(r / "train/rgb/2.jpg", "PNG"), ["train/rgb/2.jpg: content is PNG"]),
    "gif named .png": (lambda r: save_as(r / "val/semseg/1.png", "GIF"), ["val/semseg/1.png: content is GIF"]),
    "jpeg named .png": (lambda r: save_as(r / "test_gt/depth/0.png", "JPEG"), ["test_gt/depth/0.png: content is JPEG"]),
    "16-bit depth": (
        lambda r: Image.fromarray(np.full((32, 64), 1000, dtype=np.uint16)).save(r / "train/depth/1.png"),
        ["train/depth/1.png: depth image is 16-bit (mode 'I;16')"],
    ),
    "test_gt mismatch": (
        lambda r: [
            (r / "test_gt/depth/1.png").unlink(),
            shutil.copy(r / "test_gt/semseg/0.png", r / "test_gt/semseg/2.png"),
        ],
        ["test_gt/depth/1.png: missing file", "test_gt/semseg/2.png: no matching"],
    ),
    "test_gt size": (
        lambda r: save_l(r / "test_gt/depth/0.png", np.full((16, 64), 100)),
        ["test_gt/depth/0.png: size 64x16, but the dataset's images are 64x32"],
    ),
}


@pytest.mark.parametrize("defect", list(DEFECTS))
def test_each_defect_is_reported_by_path(tiny_dataset, capsys, defect):
    damage, expected = DEFECTS[defect]
    damage(tiny_dataset)
    rc, lines = check(capsys, tiny_dataset)
    assert rc == 1
    problems = lines[:-1]
    summary = rf"{re.escape(str(tiny_dataset))}: {len(problems)} problem\(s\) found, \d+ files checked"
    assert re.fullmatch(summary, lines[-1])
    for fragment in expected:
        assert any(fragment in line for line in problems), (fragment, lines)
    assert all(line.startswith(str(tiny_dataset)) for line in problems)
    assert len(problems) == len(expected)  # nothing else is flagged


def test_missing_root_is_a_problem(tmp_path, capsys):
    rc, lines = check(capsys, tmp_path / "nowhere")
    assert rc == 1 and lines[0] == f"{tmp_path / 'nowhere'}: dataset root not found"
    (tmp_path / "empty").mkdir()
    rc, lines = check(capsys, tmp_path / "empty")
    assert rc == 1 and "no train, val, test or test_gt folder" in lines[0]


def independent_stats(root: Path, split: str, indices: list[int]) -> dict:
    dmin, dmax = 1 / 300, 1 / 4
    depths, ids = [], []
    for i in indices:
        codes = np.asarray(Image.open(root / split / "depth" / f"{i}.png")).astype(np.float64)
        z = (1 / ((dmax - dmin) * (codes - 1) / 254 + dmin)).astype(np.float32).astype(np.float64)
        depths.append(z[codes > 0])
        ids.append(np.asarray(Image.open(root / split / "semseg" / f"{i}.png")).ravel())
    depth, labels = np.concatenate(depths), np.concatenate(ids)
    labelled = labels[labels != 255]
    return {
        "depth_mean": depth.mean(),
        "depth_std": depth.std(),
        "depth_min": depth.min(),
        "depth_max": depth.max(),
        "class_frequency": [np.mean(labelled == c) for c in range(19)],
        "histogram_counts": np.histogram(np.clip(depth, 4, 300), bins=np.geomspace(4, 300, 65))[0].tolist(),
        "depth_valid_pixels": depth.size,
    }


def test_stats_equal_an_independent_computation(tiny_dataset):
    stats = compute_stats(DATASETS["miniscapes"](tiny_dataset), "train", progress=False)
    expected = independent_stats(tiny_dataset, "train", [0, 1, 2, 3])
    for key in ("depth_mean", "depth_std", "depth_min", "depth_max"):
        assert stats[key] == pytest.approx(expected[key], rel=1e-9), key
    assert stats["class_frequency"] == pytest.approx(expected["class_frequency"], abs=1e-12)
    assert stats["histogram_counts"] == expected["histogram_counts"]
    assert stats["depth_valid_pixels"] == expected["depth_valid_pixels"] == sum(stats["histogram_counts"])
    assert stats["num_images"] == 4 and len(stats["class_pixels"]) == 19


def test_stats_on_evenly_spaced_images(tiny_dataset):
    stats = compute_stats(DATASETS["miniscapes"](tiny_dataset), "train", max_images=2, progress=False)
    expected = independent_stats(tiny_dataset, "train", [0, 3])
    assert stats["num_images"] == 2
    assert stats["depth_mean"] == pytest.approx(expected["depth_mean"], rel=1e-9)
    assert stats["depth_std"] == pytest.approx(expected["depth_std"], rel=1e-9)
    with pytest.raises(ValueError, match="max_images must be positive"):
        compute_stats(DATASETS["miniscapes"](tiny_dataset), "train", max_images=0)


def test_stats_command_prints_and_writes_files(tiny_dataset, tmp_path, capsys, monkeypatch):
    before = sorted(tiny_dataset.rglob("*"))
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    rc = main(["data", "stats", "--root", str(tiny_dataset), "--split", "val", "--json", str(tmp_path / "s.json")])
    out = capsys.readouterr().out
    assert rc == 0
    assert sorted(tiny_dataset.rglob("*")) == before  # the dataset is only read
    saved = json.loads((tmp_path / "s.json").read_text())
    expected = independent_stats(tiny_dataset, "val", [0, 1])
    assert saved["depth_mean"] == pytest.approx(expected["depth_mean"], rel=1e-9)
    assert f"mean {expected['depth_mean']:.4f}  std {expected['depth_std']:.4f}" in out
    road = next(line for line in out.splitlines() if line.startswith("road "))
    assert road.split()[-1] == f"{100 * expected['class_frequency'][0]:.3f}"
    assert "histogram: depth_histogram_val.png" in out.splitlines()
    with Image.open(tmp_path / "work" / "depth_histogram_val.png") as image:  # the current folder by default
        assert image.format == "PNG" and image.size[0] > 100
    for flag, name in (("--out", "h.png"), ("--histogram", "old_flag.PNG")):  # --histogram: the former name
        assert main(["data", "stats", "--root", str(tiny_dataset), "--split", "val", flag, str(tmp_path / name)]) == 0
        with Image.open(tmp_path / name) as image:
            assert image.format == "PNG"


def test_stats_of_a_split_without_ground_truth_fail_clearly(tiny_dataset, capsys):
    rc = main(["data", "stats", "--root", str(tiny_dataset), "--split", "test"])
    assert rc == 1
    assert "no ['semseg', 'depth'] folder" in capsys.readouterr().err


ALIAS_HINT = "not a sample name (expected <i>{ext} with i = 0, 1, 2, ... in ASCII digits without leading zeros)"


def test_exact_lines_for_mislabelled_files_and_aliases(tiny_dataset, capsys):
    r = tiny_dataset
    save_as(r / "train/rgb/0.jpg", "PNG")
    save_as(r / "train/semseg/3.png", "GIF")
    save_as(r / "val/depth/1.png", "JPEG")
    Image.fromarray(np.full((32, 64), 7, dtype=np.uint16)).save(r / "train/depth/2.png")
    shutil.copy(r / "train/rgb/1.jpg", r / "train/rgb/03.jpg")
    shutil.copy(r / "train/rgb/1.jpg", r / "train/rgb/\u0663.jpg")  # ARABIC-INDIC THREE: isdigit() and int() accept it
    rc, lines = check(capsys, r)
    assert rc == 1
    assert lines == [
        f"{r}/train/rgb/03.jpg: {ALIAS_HINT.format(ext='.jpg')}",
        f"{r}/train/rgb/\u0663.jpg: {ALIAS_HINT.format(ext='.jpg')}",
        f"{r}/train/rgb/0.jpg: content is PNG, but the .jpg extension requires JPEG",
        f"{r}/train/semseg/3.png: content is GIF, but the .png extension requires PNG",
        f"{r}/train/depth/2.png: depth image is 16-bit (mode 'I;16'), expected 8-bit disparity codes (mode 'L')",
        f"{r}/val/depth/1.png: content is JPEG, but the .png extension requires PNG",
        f"{r}: 6 problem(s) found, 24 files checked",
    ]


def test_depth_without_valid_pixel_is_a_warning(tiny_dataset, capsys):
    """Warnings follow the problems, are counted apart in the summary and alone leave the exit code 0."""
    save_l(tiny_dataset / "train/depth/1.png", np.zeros((32, 64)))
    save_l(tiny_dataset / "test_gt/depth/0.png", np.zeros((32, 64)))
    rc, lines = check(capsys, tiny_dataset)
    assert rc == 0
    warning = "warning: no valid depth pixel (every value is 0 = invalid)"
    assert lines == [
        f"{tiny_dataset}/train/depth/1.png: {warning}",
        f"{tiny_dataset}/test_gt/depth/0.png: {warning}",
        f"{tiny_dataset}: OK, 24 files checked, no problem found, 2 warning(s)",
    ]
    (tiny_dataset / "val/semseg/1.png").unlink()
    rc, lines = check(capsys, tiny_dataset)
    assert rc == 1
    assert lines == [
        f"{tiny_dataset}/val/semseg/1.png: missing file",
        f"{tiny_dataset}/train/depth/1.png: {warning}",
        f"{tiny_dataset}/test_gt/depth/0.png: {warning}",
        f"{tiny_dataset}: 1 problem(s) found, 23 files checked, 2 warning(s)",
    ]


def test_undecodable_file_name_is_printed_escaped(tiny_dataset, capsys):
    name = os.fsdecode(b"\xff.jpg")  # not UTF-8: Python holds it as a lone surrogate, which print() would refuse
    shutil.copy(tiny_dataset / "val/rgb/0.jpg", tiny_dataset / "val/rgb" / name)
    rc, lines = check(capsys, tiny_dataset)
    assert rc == 1
    assert lines[0] == f"{tiny_dataset}/val/rgb/\\udcff.jpg: {ALIAS_HINT.format(ext='.jpg')}"
    assert len(lines) == 2


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (["03.jpg"], "{f}/03.jpg: " + ALIAS_HINT.format(ext=".jpg")),
        (["\u0663.jpg"], "{f}/\u0663.jpg: " + ALIAS_HINT.format(ext=".jpg")),
        (["00.jpg", "+1.jpg", "3.JPG"], "{f}/+1.jpg: " + ALIAS_HINT.format(ext=".jpg") + "; also 00.jpg, 3.JPG"),
    ],
)
def test_split_size_names_index_aliases(tiny_dataset, names, message):
    """Training reads the split size from split_size: an alias is named, not reported as an empty gap list."""
    folder = tiny_dataset / "train" / "rgb"
    for name in names:
        shutil.copy(folder / "0.jpg", folder / name)
    with pytest.raises(DataFormatError) as info:
        split_size(tiny_dataset, "train")
    assert str(info.value) == message.format(f=folder)
    with pytest.raises(DataFormatError, match=re.escape(names[0] if len(names) == 1 else "+1.jpg")):
        DATASETS["miniscapes"](tiny_dataset).split_size("train")  # what training reads


def test_split_size_ignores_other_files_and_names_a_gap(tiny_dataset):
    folder = tiny_dataset / "train" / "rgb"
    (folder / "notes.txt").write_text("x")
    shutil.copy(folder / "0.jpg", folder / "cover.jpg")  # not a number: not meant as a sample
    assert split_size(tiny_dataset, "train") == 4
    (folder / "1.jpg").rename(folder / "9.jpg")
    with pytest.raises(DataFormatError) as info:
        split_size(tiny_dataset, "train")
    assert str(info.value) == (
        f"{folder}/1.jpg: missing file (indices must run 0..N-1; found 4 files up to 9.jpg, missing [1] and 5 more)"
    )


def test_stats_name_the_alias_on_one_line(tiny_dataset, capsys):
    shutil.copy(tiny_dataset / "val/rgb/0.jpg", tiny_dataset / "val/rgb/\u0661.jpg")
    rc = main(["data", "stats", "--root", str(tiny_dataset), "--split", "val"])
    assert rc == 1
    err = capsys.readouterr().err
    assert err == f"mtl data stats: error: {tiny_dataset}/val/rgb/\u0661.jpg: {ALIAS_HINT.format(ext='.jpg')}\n"


def test_optional_normals_folders_are_checked_not_stray(tiny_dataset, capsys):
    """The generator writes normals/ (train, val, test_gt); the check reads them with read_normals."""
    from mtl.data.formats import write_normals

    rng = np.random.default_rng(0)
    for gt, n in (("train", 4), ("val", 2), ("test_gt", 2)):
        (tiny_dataset / gt / "normals").mkdir()
        for i in range(n):
            write_normals(tiny_dataset / gt / "normals" / f"{i}.png", rng.normal(size=(32, 64, 3)))
    rc, lines = check(capsys, tiny_dataset)
    assert rc == 0 and lines == [f"{tiny_dataset}: OK, 32 files checked, no problem found"]
    save_l(tiny_dataset / "val/normals/1.png", np.zeros((32, 64)))
    (tiny_dataset / "train/normals/3.png").unlink()
    rc, lines = check(capsys, tiny_dataset)
    assert rc == 1
    assert lines[:-1] == [
        f"{tiny_dataset}/train/normals/3.png: missing file",
        f"{tiny_dataset}/val/normals/1.png: normals image has mode 'L', expected 'RGB'",
    ]


def test_stats_describe_normals_too(tiny_dataset, capsys):
    from mtl.data.formats import write_normals

    (tiny_dataset / "val" / "normals").mkdir()
    for i in range(2):
        normals = np.ones((32, 64, 3))
        normals[:8] = np.nan  # invalid rows
        write_normals(tiny_dataset / "val" / "normals" / f"{i}.png", normals)
    stats = compute_stats(DATASETS["miniscapes"](tiny_dataset), "val", progress=False)
    assert stats["kinds"] == {"semseg": "classes", "depth": "scalar", "normals": "vectors"}
    assert stats["normals_valid_pixels"] == 2 * 24 * 64 and stats["normals_valid_fraction"] == 0.75
