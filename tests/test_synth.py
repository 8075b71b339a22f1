"""The procedural street-scene generator: exact geometry, determinism, dataset layout, class coverage."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mtl.data.classes import CLASS_ID, IGNORE_INDEX, NUM_CLASSES
from mtl.data.formats import ZMAX, ZMIN, encode_depth, read_depth, read_semseg, write_rgb
from mtl.data.miniscapes import MiniScapes
from mtl.data.synth import generate_dataset, render_sample
from mtl.data.synth.camera import Camera
from mtl.data.synth.dataset import _atomic
from mtl.data.synth.materials import Solid
from mtl.data.synth.parts import Part
from mtl.data.synth import render
from mtl.data.synth.render import Frame
from mtl.data.synth.shapes import Box, Cylinder, Ellipsoid

ROAD, SKY, CAR = CLASS_ID["road"], CLASS_ID["sky"], CLASS_ID["car"]


def _level_camera(width: int = 64, height: int = 32, cam_height: float = 1.5) -> Camera:
    return Camera.create(width, height, hfov_deg=90.0, position=np.array([0.0, cam_height, 0.0]), yaw=0.0, pitch=0.0, roll=0.0)


def _frame(parts: list[Part], camera: Camera) -> Frame:
    frame = Frame(camera)
    frame.draw_parts(parts)
    return frame


# --- exact geometry -------------------------------------------------------------------------------


def test_ground_depth_is_camera_z_of_the_ground_plane():
    camera = _level_camera()
    frame = _frame([], camera)
    rows = np.arange(camera.height)
    v = rows + 0.5 - camera.height / 2  # pixel offset below the principal point
    expected = np.where(v > 0, 1.5 * camera.focal / np.where(v > 0, v, 1.0), np.inf)
    np.testing.assert_allclose(frame.depth[:, 10], expected, rtol=1e-5)
    assert np.isinf(frame.depth[: camera.height // 2]).all()  # level camera: upper half is sky


@pytest.mark.parametrize(
    "shape, front_z",
    [
        (Box((0.0, 1.5, 20.0), (4.0, 2.0, 2.0)), 19.0),
        (Box((0.0, 1.5, 20.0), (2.0, 2.0, 2.0), yaw=np.pi / 4), 20.0 - np.sqrt(2.0)),
        (Ellipsoid((0.0, 1.5, 10.0), (1.0, 1.0, 1.0)), 9.0),
        (Ellipsoid((0.0, 1.5, 10.0), (1.0, 2.0, 0.5)), 9.5),
        (Cylinder((0.0, 1.5, 10.0), 1.0, 4.0, axis=1), 9.0),
        (Cylinder((0.0, 1.5, 10.0), 1.0, 3.0, axis=2), 8.5),
    ],
)
def test_depth_at_the_principal_ray_is_the_nearest_surface(shape, front_z):
    """Odd image size: the centre pixel's ray is the optical axis itself."""
    camera = _level_camera(65, 33)
    frame = _frame([Part(shape, CAR, Solid((200, 0, 0)))], camera)
    assert frame.depth[16, 32] == pytest.approx(front_z, rel=1e-5)
    assert frame.part[16, 32] == 0


def test_nearer_part_wins_whatever_the_drawing_order():
    camera = _level_camera()
    near = Part(Box((0.0, 1.5, 10.0), (2.0, 2.0, 2.0)), CAR, Solid((0, 0, 200)))
    far = Part(Box((0.0, 1.5, 30.0), (60.0, 20.0, 2.0)), CLASS_ID["building"], Solid((100, 100, 100)))
    for parts in ([near, far], [far, near]):
        frame = _frame(parts, camera)
        frame.resolve(parts, ground=_Ground())
        assert frame.label[16, 32] == CAR
        assert frame.depth[16, 32] == pytest.approx(9.0, rel=1e-3)
        assert frame.label[16, 5] == CLASS_ID["building"]
        assert frame.depth[16, 5] == pytest.approx(29.0, rel=1e-3)


def test_many_small_parts_batched_match_one_by_one(monkeypatch):
    """Small parts are intersected in batches; the z-buffer must come out as when drawn one by one."""
    rng = np.random.default_rng(3)
    camera = _level_camera(128, 64)
    parts = []
    for _ in range(60):
        center = (rng.uniform(-6, 6), rng.uniform(0.2, 3), rng.uniform(8, 40))
        kind = rng.integers(3)
        shape = (
            Box(center, rng.uniform(0.2, 1.0, 3), yaw=rng.uniform(0, np.pi))
            if kind == 0
            else Ellipsoid(center, rng.uniform(0.2, 0.8, 3))
            if kind == 1
            else Cylinder(center, rng.uniform(0.1, 0.4), rng.uniform(0.3, 2.0), axis=int(rng.integers(3)), yaw=rng.uniform(0, np.pi))
        )
        parts.append(Part(shape, CAR, Solid((1, 2, 3))))
    monkeypatch.setattr(render, "BATCH_AREA", 10**9)
    batched = _frame(parts, camera)
    monkeypatch.setattr(render, "BATCH_AREA", 0)
    single = _frame(parts, camera)
    assert (batched.part >= 0).sum() > 500
    np.testing.assert_allclose(batched.depth, single.depth, rtol=1e-6)
    np.testing.assert_array_equal(batched.part, single.part)


def test_shadow_of_a_floating_box_under_a_high_sun():
    camera = _level_camera(128, 64)
    box = Part(Box((0.0, 2.0, 10.0), (2.0, 0.5, 4.0)), CAR, Solid((200, 200, 200)))
    frame = _frame([box], camera)
    frame.resolve([box], ground=_Ground())
    sun = np.array([0.0, 1.0, 0.0])
    shadow = frame.shadows([box], sun)
    world_x = camera.position[0] + frame.depth * frame.rays[..., 0]
    world_z = camera.position[2] + frame.depth * frame.rays[..., 2]
    ground = frame.part == -1
    under = ground & (np.abs(world_x) < 0.6) & (np.abs(world_z - 10.0) < 1.6)
    clear = ground & ((np.abs(world_x) > 1.4) | (np.abs(world_z - 10.0) > 2.4)) & np.isfinite(frame.depth)
    assert under.sum() > 20 and shadow[under].all()
    assert not shadow[clear].any()


class _Ground:
    """Stands in for the scene's ground painter: everything on the plane is road, mid grey."""

    def paint(self, x, z, depth):
        return np.full(len(x), ROAD, np.uint8), np.full((len(x), 3), 0.2, np.float32)


# --- samples ----------------------------------------------------------------------------------------


def test_render_sample_is_a_pure_function_of_its_arguments():
    a = render_sample(7, "train", 3, 128, 64)
    b = render_sample(7, "train", 3, 128, 64)
    for name in ("rgb", "semseg"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    np.testing.assert_array_equal(a.depth, b.depth)  # NaN-aware equality
    others = [render_sample(7, "train", 4, 128, 64), render_sample(7, "val", 3, 128, 64), render_sample(8, "train", 3, 128, 64)]
    for other in others:
        assert not np.array_equal(a.rgb, other.rgb)


def test_sample_arrays_and_invariants():
    for index in range(4):
        s = render_sample(0, "val", index, 192, 96)
        assert s.rgb.shape == (96, 192, 3) and s.rgb.dtype == np.uint8
        assert s.semseg.shape == (96, 192) and s.semseg.dtype == np.uint8
        assert s.depth.shape == (96, 192) and s.depth.dtype == np.float32
        assert set(np.unique(s.semseg)) <= set(range(NUM_CLASSES)) | {IGNORE_INDEX}
        valid = np.isfinite(s.depth)
        assert ((s.depth[valid] >= ZMIN) & (s.depth[valid] <= ZMAX)).all()
        assert not valid[s.semseg == SKY].any()  # sky is never valid depth
        assert not valid[s.semseg == IGNORE_INDEX].any()  # nor the ego car's bonnet
        assert s.rgb.std() > 20  # a picture, not a flat fill


def test_road_depth_grows_towards_the_horizon_in_every_column():
    s = render_sample(0, "train", 0, 256, 128)
    checked = 0
    for col in range(0, 256, 8):
        rows = np.flatnonzero((s.semseg[:, col] == ROAD) & np.isfinite(s.depth[:, col]))
        if len(rows) < 2:
            continue
        depth = s.depth[rows, col]
        assert (np.diff(depth) <= 1e-3).all(), f"column {col}: road depth not decreasing downwards"
        checked += 1
    assert checked > 10


def test_class_coverage_and_valid_depth_on_a_small_split():
    """Scaled-down acceptance check (the full-size one is in docs/DATASET.md): every class shows up in
    a 40-image split and most non-sky pixels carry valid depth."""
    seen = np.zeros(NUM_CLASSES, dtype=bool)
    valid = non_sky = 0
    for index in range(40):
        s = render_sample(0, "val", index, 256, 128)
        seen[np.unique(s.semseg[s.semseg < NUM_CLASSES])] = True
        scene = (s.semseg != SKY) & (s.semseg != IGNORE_INDEX)
        non_sky += scene.sum()
        valid += (scene & np.isfinite(s.depth)).sum()
    missing = [name for name, ok in zip(CLASS_ID, seen) if not ok]
    assert not missing, f"classes never rendered: {missing}"
    assert valid / non_sky > 0.8


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(split="training"), "unknown split"),
        (dict(index=-1), "index"),
        (dict(width=32, height=32), "at least 64"),
        (dict(width=640, height=128), "aspect"),
        (dict(width=128, height=256), "aspect"),
        (dict(seed=-1), "seed"),
    ],
)
def test_render_sample_rejects_bad_arguments(kwargs, message):
    args = dict(seed=0, split="train", index=0, width=128, height=64) | kwargs
    with pytest.raises(ValueError, match=message):
        render_sample(**args)


# --- the dataset on disk ----------------------------------------------------------------------------


def test_generate_dataset_writes_the_miniscapes_layout(tmp_path: Path):
    root = tmp_path / "synth"
    generate_dataset(root, num_train=3, num_val=2, num_test=2, width=128, height=64, seed=5, workers=2)
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    expected = ["synth.json"]
    for split, n in (("train", 3), ("val", 2)):
        for i in range(n):
            expected += [f"{split}/rgb/{i}.jpg", f"{split}/semseg/{i}.png", f"{split}/depth/{i}.png"]
    for i in range(2):
        expected += [f"test/rgb/{i}.jpg", f"test_gt/semseg/{i}.png", f"test_gt/depth/{i}.png"]
    assert files == sorted(expected)
    assert json.loads((root / "synth.json").read_text())["seed"] == 5

    for split, gt in (("train", "train"), ("val", "val"), ("test", "test_gt")):
        with Image.open(root / split / "rgb" / "0.jpg") as im:
            assert (im.format, im.mode, im.size) == ("JPEG", "RGB", (128, 64))
        with Image.open(root / gt / "semseg" / "0.png") as im:
            assert (im.format, im.mode, im.size) == ("PNG", "P", (128, 64))
        with Image.open(root / gt / "depth" / "0.png") as im:
            assert (im.format, im.mode, im.size) == ("PNG", "L", (128, 64))

    # the files hold exactly what render_sample gives for that (seed, split, index)
    sample = render_sample(5, "val", 1, 128, 64)
    np.testing.assert_array_equal(read_semseg(root / "val/semseg/1.png"), sample.semseg)
    codes = np.asarray(Image.open(root / "val/depth/1.png"))
    np.testing.assert_array_equal(codes, encode_depth(sample.depth, "invalidate"))
    write_rgb(tmp_path / "reference.jpg", sample.rgb)  # same encoder, same bytes
    assert (root / "val/rgb/1.jpg").read_bytes() == (tmp_path / "reference.jpg").read_bytes()
    test_sample = render_sample(5, "test", 0, 128, 64)
    np.testing.assert_array_equal(read_semseg(root / "test_gt/semseg/0.png"), test_sample.semseg)
    assert np.isnan(read_depth(root / "test_gt/depth/0.png")[test_sample.semseg == SKY]).all()

    train = MiniScapes(root, "train")
    item = train[2]
    assert len(train) == 3 and item["rgb"].shape == (3, 64, 128) and item["depth"].shape == (64, 128)
    test = MiniScapes(root, "test")
    assert test.modalities == ("rgb",) and len(test) == 2


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(num_train=-1), "--num-train"),
        (dict(num_val=-2), "--num-val"),
        (dict(num_train=0, num_val=0, num_test=0), "nothing to generate"),
        (dict(width=48, height=24), "at least 64"),
        (dict(width=512, height=128), "aspect"),
        (dict(seed=-3), "--seed"),
        (dict(workers=0), "--workers"),
    ],
)
def test_generate_dataset_rejects_bad_arguments(tmp_path: Path, kwargs, message):
    args = dict(num_train=1, num_val=1, num_test=1, width=128, height=64, seed=0, workers=1) | kwargs
    with pytest.raises(ValueError, match=message):
        generate_dataset(tmp_path / "out", **args)
    assert not (tmp_path / "out").exists()


def test_generate_dataset_refuses_a_non_empty_folder(tmp_path: Path):
    (tmp_path / "old.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not an empty folder"):
        generate_dataset(tmp_path, 1, 0, 0, 128, 64, 0, workers=1)
    assert [p.name for p in tmp_path.iterdir()] == ["old.txt"]


def test_a_failed_write_leaves_neither_the_file_nor_its_temporary(tmp_path: Path):
    target = tmp_path / "0.png"

    def crash(path: Path) -> None:
        path.write_bytes(b"\x89PNG half an image")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        _atomic(crash, target)
    assert list(tmp_path.iterdir()) == []
    _atomic(lambda p: p.write_bytes(b"done"), target)
    assert [p.name for p in tmp_path.iterdir()] == ["0.png"] and target.read_bytes() == b"done"
