"""`mtl predict`: the four files per image at the input's size, TTA against a hand computation, split mode, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import FAST_TRAIN_FLAGS, make_tiny_dataset, val_split
from PIL import Image

from mtl.cli.main import main
from mtl.data.classes import CLASS_COLORS, palette
from mtl.data.formats import encode_depth, read_semseg, write_semseg
from mtl.datasets import DATASETS
from mtl.inference.evaluate import evaluate_split
from mtl.inference.images import load_image
from mtl.inference.predictor import load_predictor
from mtl.inference.tta import TestTimeAugmentation
from mtl.tasks import TASKS

pytestmark = pytest.mark.slow

TRAIN_FLAGS = [
    *FAST_TRAIN_FLAGS,
    "--num_epochs", "1",
    "--prepare_submission", "no",
    "--optimizer", "adam",
    "--optimizer_lr", "0.001",
]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_dataset(tmp_path_factory.mktemp("predict") / "data", {"train": 4, "val": 3, "test": 2}, 64, 64)


@pytest.fixture(scope="module")
def checkpoint(dataset: Path) -> Path:
    """One tiny real training run, shared by every test of this file."""
    run = dataset.parent / "run"
    assert main(["train", "--dataset_root", str(dataset), "--log_dir", str(run), *TRAIN_FLAGS]) == 0
    return run / "checkpoints" / "last.ckpt"


@pytest.fixture(scope="module")
def module(checkpoint: Path) -> torch.nn.Module:
    """As `mtl predict` loads it (--precision auto: what the hardware calls for)."""
    return load_predictor(checkpoint)


@pytest.fixture(scope="module")
def fp32_module(checkpoint: Path) -> torch.nn.Module:
    """In fp32, the precision of the hand computations below (the others: tests/test_precision_paths.py)."""
    return load_predictor(checkpoint, precision="32")


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Odd-sized RGB PNGs, a grayscale JPEG and an RGBA PNG (the last two need converting).

    In name order: alpha (45×70), grey (48×64), odd and odd2 (45×70): with --batch_size 4 the CLI predicts
    alpha, grey, then odd + odd2 as one batch.
    """
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, (45, 70, 3), dtype=np.uint8)).save(folder / "odd.png")
    Image.fromarray(rng.integers(0, 256, (45, 70, 3), dtype=np.uint8)).save(folder / "odd2.png")
    Image.fromarray(rng.integers(0, 256, (48, 64), dtype=np.uint8)).save(folder / "grey.jpg")
    Image.fromarray(rng.integers(0, 256, (45, 70, 4), dtype=np.uint8)).save(folder / "alpha.png")
    (folder / "notes.txt").write_text("not an image, and not picked up from a folder")
    return folder


def rgb_tensor(path: Path) -> torch.Tensor:
    return torch.from_numpy(np.array(Image.open(path).convert("RGB"))).permute(2, 0, 1)[None]


def test_predict_writes_four_files_per_image_at_the_input_size(
    checkpoint: Path, module: torch.nn.Module, images: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "out"
    flags = ["--input", str(images), "--out", str(out), "--device", "cpu", "--batch_size", "4"]
    code = main(["predict", "--checkpoint", str(checkpoint), *flags])
    assert code == 0
    err = capsys.readouterr().err
    assert f"{images / 'grey.jpg'}: mode L converted to RGB" in err
    assert f"{images / 'alpha.png'}: mode RGBA converted to RGB (transparency dropped)" in err
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"{stem}_{kind}.png"
        for stem in ("odd", "odd2", "grey", "alpha")
        for kind in ("semseg", "depth", "depth_color", "overview")
    )
    lut = np.array(CLASS_COLORS, dtype=np.float64)
    # Predicted in the CLI's batches, so that the reference sees the same kernels.
    batches = [["alpha.png"], ["grey.jpg"], ["odd.png", "odd2.png"]]
    for names in batches:
        batch = torch.cat([rgb_tensor(images / name) for name in names])
        predicted = module.predict(batch)
        for j, name in enumerate(names):
            stem, (height, width) = Path(name).stem, batch.shape[-2:]
            rgb = batch[j : j + 1]
            expected = {k: v[j : j + 1] for k, v in predicted.items()}
            check_outputs(out, stem, width, height, rgb, expected, lut)


def check_outputs(
    out: Path, stem: str, width: int, height: int, rgb: torch.Tensor, expected: dict, lut: np.ndarray
) -> None:
    """The four files of one image against the module's own prediction and an independent overlay blend."""
    ids = expected["semseg"][0].numpy()
    metres = expected["depth"][0].numpy()

    semseg = Image.open(out / f"{stem}_semseg.png")
    assert semseg.mode == "P" and semseg.size == (width, height)
    assert semseg.getpalette()[: 3 * 19] == palette()[: 3 * 19]
    np.testing.assert_array_equal(np.asarray(semseg), ids)

    depth = Image.open(out / f"{stem}_depth.png")
    assert depth.mode == "L" and depth.size == (width, height)
    np.testing.assert_array_equal(np.asarray(depth), encode_depth(metres, "clamp"))

    color = np.asarray(Image.open(out / f"{stem}_depth_color.png"))
    depth_task = TASKS["depth"](DATASETS["miniscapes"].info)
    np.testing.assert_array_equal(color, depth_task.picture(torch.from_numpy(metres)))

    overview = np.asarray(Image.open(out / f"{stem}_overview.png"))
    assert overview.shape == (height, 3 * width, 3)
    photo = rgb[0].permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(overview[:, :width], photo)
    blend = np.round(0.5 * photo + 0.5 * lut[ids]).astype(np.uint8)
    np.testing.assert_array_equal(overview[:, width : 2 * width], blend)
    np.testing.assert_array_equal(overview[:, 2 * width :], color)


def test_tta_with_scale_one_and_no_flip_equals_plain_prediction(module: torch.nn.Module, images: Path) -> None:
    rgb = torch.cat([rgb_tensor(images / "odd.png"), rgb_tensor(images / "alpha.png")])
    plain = module.predict(rgb)
    tta = TestTimeAugmentation(module, scales=(1.0,), flip=False).predict(rgb)
    assert torch.equal(tta["semseg"], plain["semseg"])
    assert torch.equal(tta["depth"], plain["depth"])


def test_tta_averages_probabilities_and_metres_over_flips_and_scales(fp32_module: torch.nn.Module, images: Path) -> None:
    module = fp32_module
    rgb = rgb_tensor(images / "odd.png")
    size = (45, 70)
    probs, metres = [], []
    with torch.no_grad():
        for view_size in [size, (round(45 * 0.6), round(70 * 0.6))]:
            for flip in (False, True):
                x = F.interpolate(rgb.float(), size=view_size, mode="bilinear", align_corners=False)
                x = x.flip(3) if flip else x
                out = module(x)
                logits, depth = out["semseg"], module.tasks["depth"].unit.decode(out["depth"])
                logits, depth = (logits.flip(3), depth.flip(3)) if flip else (logits, depth)
                logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
                depth = F.interpolate(depth, size=size, mode="bilinear", align_corners=False)
                probs.append(torch.softmax(logits, dim=1))
                metres.append(depth[:, 0])
    got = TestTimeAugmentation(module, scales=(1.0, 0.6), flip=True).predict(rgb)
    expected_probs = torch.stack(probs).mean(0)
    top2 = expected_probs.topk(2, dim=1).values
    clear = (top2[:, 0] - top2[:, 1]) > 1e-5  # leave out pixels where rounding may break a near tie
    assert clear.float().mean() > 0.95
    assert torch.equal(got["semseg"][clear], expected_probs.argmax(1)[clear])
    torch.testing.assert_close(got["depth"], torch.stack(metres).mean(0), rtol=1e-5, atol=1e-4)
    assert got["depth"].shape == (1, 45, 70)
    # Flips and scales really change the result: the average differs from the plain prediction.
    assert not torch.equal(got["depth"], module.predict(rgb)["depth"])


def test_predict_cli_tta_identity_writes_the_plain_files(checkpoint: Path, images: Path, tmp_path: Path) -> None:
    image = images / "odd.png"
    plain, tta = tmp_path / "plain", tmp_path / "tta"
    assert main(["predict", "--checkpoint", str(checkpoint), "--input", str(image), "--out", str(plain)]) == 0
    flags = ["--tta", "--tta_scales", "1", "--tta_flip", "false"]
    assert main(["predict", "--checkpoint", str(checkpoint), "--input", str(image), "--out", str(tta), *flags]) == 0
    for kind in ("semseg", "depth", "depth_color", "overview"):
        assert (plain / f"odd_{kind}.png").read_bytes() == (tta / f"odd_{kind}.png").read_bytes(), kind


def test_split_mode_writes_dataset_files_and_prints_metrics(
    checkpoint: Path, module: torch.nn.Module, dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "val"
    flags = ["--split", "val", "--dataset_root", str(dataset), "--out", str(out), "--batch_size", "2"]
    assert main(["predict", "--checkpoint", str(checkpoint), *flags]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert json.loads((out / "metrics.json").read_text()) == printed
    # keyed by task, the dataset's scores apart: no task's names merge with another's or with the scores
    assert list(printed) == ["protocol", "scores", "tasks"] and list(printed["scores"]) == ["grader", "total"]
    assert printed["protocol"] == "course"  # the dataset's own (miniscapes)
    assert list(printed["tasks"]) == ["semseg", "depth"]
    assert list(printed["tasks"]["semseg"]) == ["miou", "pixel_accuracy", "iou_per_class"]
    assert list(printed["tasks"]["depth"]) == ["si_log_rmse", "depth_metrics"]
    val = val_split(dataset, module)
    reference = evaluate_split(module, val, batch_size=2)  # the CLI's batches
    miou, si = printed["tasks"]["semseg"]["miou"], printed["tasks"]["depth"]["si_log_rmse"]
    assert miou == pytest.approx(reference["tasks"]["semseg"]["miou"], abs=1e-9)
    assert si == pytest.approx(reference["tasks"]["depth"]["si_log_rmse"], abs=1e-9)
    # the course grader and total of the two summaries, computed here
    assert printed["scores"]["grader"] == pytest.approx(max(miou - 50, 0) + max(50 - si, 0), abs=1e-9)
    assert printed["scores"]["total"] == pytest.approx(miou - si, abs=1e-9)
    assert sorted(p.name for p in (out / "semseg").iterdir()) == ["0.png", "1.png", "2.png"]
    for batch in ([0, 1], [2]):
        pred = module.predict(torch.stack([val[i]["rgb"] for i in batch]))
        for j, i in enumerate(batch):
            np.testing.assert_array_equal(read_semseg(out / "semseg" / f"{i}.png"), pred["semseg"][j].numpy())
            depth = Image.open(out / "depth" / f"{i}.png")
            assert depth.mode == "L"
            np.testing.assert_array_equal(np.asarray(depth), encode_depth(pred["depth"][j].numpy(), "clamp"))


def test_split_mode_without_ground_truth_writes_files_only(
    checkpoint: Path, dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "test"
    flags = ["--split", "test", "--dataset_root", str(dataset), "--out", str(out)]
    flags += ["--tta", "--tta_scales", "0.5,1", "--tta_flip", "no"]
    assert main(["predict", "--checkpoint", str(checkpoint), *flags]) == 0
    assert "has no ground truth" in capsys.readouterr().out
    assert sorted(p.name for p in (out / "depth").iterdir()) == ["0.png", "1.png"]
    assert not (out / "metrics.json").exists()


def test_unreadable_image_is_an_error_naming_the_file(
    checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(folder / "a.png")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 this is not a JPEG")
    code = main(["predict", "--checkpoint", str(checkpoint), "--input", str(folder), "--out", str(tmp_path / "out")])
    assert code == 1
    assert f"{folder / 'broken.jpg'}: cannot read as an image" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--split", "val"], "--split needs --dataset_root"),
        (["--input", "x.png", "--tta_scales", "1"], "--tta_scales and --tta_flip need --tta"),
        (["--input", "x.png", "--tta", "--tta_scales", "1,-0.5"], "--tta_scales must be positive numbers"),
    ],
)
def test_flag_errors_name_the_flag(
    extra: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert main(["predict", "--checkpoint", "none.ckpt", "--out", str(tmp_path), *extra]) == 2
    assert message in capsys.readouterr().err


def test_input_problems_are_clear_errors(checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    base = ["predict", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "out")]
    assert main([*base, "--input", str(tmp_path / "missing")]) == 1
    assert f"--input {tmp_path / 'missing'}: no such file or folder" in capsys.readouterr().err
    twins = tmp_path / "twins"
    twins.mkdir()
    for name in ("a.jpg", "a.png"):
        Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(twins / name)
    assert main([*base, "--input", str(twins)]) == 1
    assert "a.jpg and a.png would write the same outputs" in capsys.readouterr().err
    missing = ["predict", "--checkpoint", str(tmp_path / "no.ckpt"), "--input", str(twins), "--out", str(tmp_path)]
    assert main(missing) == 1
    assert f"checkpoint not found: {tmp_path / 'no.ckpt'}" in capsys.readouterr().err


def test_sixteen_bit_and_palette_images_become_eight_bit_rgb(tmp_path: Path) -> None:
    values = np.array([[0, 257, 65535], [1000, 30000, 50000]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "deep.png")
    rgb, note = load_image(tmp_path / "deep.png")
    expected = np.round(values / 257).astype(np.uint8)
    assert rgb.shape == (2, 3, 3) and rgb.dtype == np.uint8
    assert all(np.array_equal(rgb[..., c], expected) for c in range(3))
    assert note is not None and "16-bit" in note and "deep.png" in note

    ids = np.array([[0, 13], [10, 2]], dtype=np.uint8)
    write_semseg(tmp_path / "palette.png", ids)
    rgb, note = load_image(tmp_path / "palette.png")
    np.testing.assert_array_equal(rgb, np.array(CLASS_COLORS, dtype=np.uint8)[ids])
    assert note == f"{tmp_path / 'palette.png'}: mode P converted to RGB"
