"""`mtl data` refuses flag values that cannot work, before writing anything, with one line naming the flag."""

from __future__ import annotations

import re

import pytest

from mtl.cli import data as data_cli
from mtl.cli.main import main


def refused(capsys, argv: list[str]) -> str:
    """Run a command that must be refused; return its one error line (no usage dump above it)."""
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "Traceback" not in captured.err
    assert len(captured.err.splitlines()) == 1
    return captured.err.splitlines()[0]


SYNTH_BAD = [
    ("--num-train", "-5", "expected an integer ≥ 0"),
    ("--num-val", "-1", "expected an integer ≥ 0"),
    ("--num-test", "x", "expected an integer, got 'x'"),
    ("--num-train", "1e3", "expected an integer, got '1e3'"),
    ("--workers", "0", "expected a positive integer"),
    ("--workers", "-2", "expected a positive integer"),
    ("--seed", "-1", "expected an integer ≥ 0"),
    ("--width", "10", "expected an integer ≥ 64 (pixels), got 10"),
    ("--height", "0", "expected an integer ≥ 64 (pixels), got 0"),
    ("--height", "nan", "invalid image_side value: 'nan'"),
    ("--width", "inf", "invalid image_side value: 'inf'"),
]


@pytest.mark.parametrize(("flag", "value", "reason"), SYNTH_BAD, ids=[f"{f}={v}" for f, v, _ in SYNTH_BAD])
def test_synth_refuses_bad_values_by_flag(tmp_path, capsys, flag, value, reason):
    out = tmp_path / "out"
    line = refused(capsys, ["data", "synth", "--out", str(out), flag, value])
    assert line.startswith(f"mtl data synth: error: argument {flag}: ")
    assert reason in line
    assert not out.exists()


def test_synth_refuses_bad_flag_combinations(tmp_path, capsys):
    out = tmp_path / "out"
    zero = ["--num-train", "0", "--num-val", "0", "--num-test", "0"]
    assert refused(capsys, ["data", "synth", "--out", str(out), *zero]) == (
        "mtl data synth: error: nothing to generate: --num-train, --num-val and --num-test are all 0"
    )
    assert refused(capsys, ["data", "synth", "--out", str(out), "--width", "64", "--height", "128"]) == (
        "mtl data synth: error: --width/--height: image size 64x128 has aspect 0.50; width/height must lie in "
        "[1, 3] (MiniScapes is 2:1)"
    )
    assert not out.exists()
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert refused(capsys, ["data", "synth", "--out", str(out)]) == (
        f"mtl data synth: error: argument --out: {out} exists and is not an empty folder; choose a new one"
    )
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_synth_with_valid_flags_runs(tmp_path):
    out = tmp_path / "out"
    argv = ["--num-train", "1", "--num-val", "0", "--num-test", "0", "--width", "64", "--height", "64", "--workers", "1"]
    assert main(["data", "synth", "--out", str(out), *argv]) == 0
    assert (out / "train" / "rgb" / "0.jpg").is_file()
    assert not (out / "val").exists()


def test_stats_refuses_bad_values_by_flag(tiny_dataset, capsys):
    root = ["data", "stats", "--root", str(tiny_dataset)]
    line = refused(capsys, [*root, "--split", "training"])
    assert line.startswith("mtl data stats: error: argument --split: invalid choice: 'training' (choose from ")
    for value in ("hist.jpg", "hist", ".png"):
        line = refused(capsys, [*root, "--out", value])
        assert line == f"mtl data stats: error: argument --out/--histogram: expected a path to a .png file, got {value!r}"
    assert not list(tiny_dataset.glob("*.png"))


def test_cli_constants_agree_with_their_sources():
    from mtl.data.miniscapes_files import SPLITS
    from mtl.data.synth.sample import MIN_SIZE

    assert data_cli.MIN_IMAGE_SIDE == MIN_SIZE
    assert data_cli.SPLITS == SPLITS
    assert list(data_cli.synth_layouts()) == ["cityscapes", "cityscapes_npy", "miniscapes", "nyud_mt", "nyuv2", "pascal_context"]


def test_synth_and_check_refuse_unknown_layouts_and_splits(tmp_path, capsys):
    out = tmp_path / "out"
    line = refused(capsys, ["data", "synth", "--out", str(out), "--layout", "kitti"])
    assert line.startswith("mtl data synth: error: argument --layout: invalid choice: 'kitti'")
    assert refused(capsys, ["data", "synth", "--out", str(out), "--layout", "nyuv2", "--num-test", "3"]) == (
        "mtl data synth: error: argument --num-test: the nyuv2 layout has only train and val splits; use --num-test 0"
    )
    assert not out.exists()
    line = refused(capsys, ["data", "check", "--root", str(tmp_path), "--dataset", "kitti"])
    assert line.startswith("mtl data check: error: argument --dataset: invalid choice: 'kitti'")
    line = refused(capsys, ["data", "stats", "--root", str(tmp_path), "--dataset", "cityscapes_npy", "--num_classes", "8"])
    assert line == "mtl data stats: error: argument --num_classes: expected 7 or 19 (the label_7 or label_19 folder), got '8'"


def test_synth_layouts_use_their_published_sizes(tmp_path):
    out = tmp_path / "nyu"
    assert main(["data", "synth", "--out", str(out), "--layout", "nyuv2", "--num-train", "1", "--num-val", "0", "--workers", "1"]) == 0
    import numpy as np

    assert np.load(out / "train" / "image" / "0.npy").shape == (288, 384, 3)
    assert sorted(p.name for p in (out / "train").iterdir()) == ["depth", "image", "label", "normal"]


def test_check_and_stats_on_a_missing_root_are_one_line(tmp_path, capsys):
    nowhere = tmp_path / "nowhere"
    assert main(["data", "check", "--root", str(nowhere)]) == 1
    assert capsys.readouterr().out.splitlines() == [
        f"{nowhere}: dataset root not found",
        f"{nowhere}: 1 problem(s) found, 0 files checked",
    ]
    assert main(["data", "stats", "--root", str(nowhere)]) == 1
    err = capsys.readouterr().err
    assert re.fullmatch(rf"mtl data stats: error: {re.escape(str(nowhere))}/train/rgb: split folder not found .*\n", err)
