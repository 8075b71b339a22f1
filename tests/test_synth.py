"""The procedural street-scene generator: exact geometry, determinism, dataset layout, class coverage,
surface normals."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mtl.data.classes import CLASS_ID, IGNORE_INDEX, NUM_CLASSES
from mtl.data.formats import (
    DMAX,
    DMIN,
    ZMAX,
    ZMIN,
    DataFormatError,
    atomic_write,
    decode_normals,
    encode_depth,
    encode_normals,
    read_depth,
    read_normals,
    read_semseg,
    write_normals,
    write_rgb,
)
from mtl.datasets import DATASETS
from mtl.data.synth import render_sample
from mtl.data.synth.camera import Camera
from mtl.data.synth.materials import Solid
from mtl.data.synth.parts import Part
from mtl.data.synth import render
from mtl.data.synth.audit import audit
from mtl.data.synth.render import Frame, camera_normals
from mtl.data.synth.sample import SPLIT_IDS
from mtl.data.synth.scene import build_scene
from mtl.data.synth.sheet import contact_sheet
from mtl.data.synth.shapes import Box, Cylinder, Ellipsoid

ROAD, SKY, CAR, BUILDING = CLASS_ID["road"], CLASS_ID["sky"], CLASS_ID["car"], CLASS_ID["building"]
MINISCAPES = DATASETS["miniscapes"]


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
    MINISCAPES.generate(root, num_train=3, num_val=2, num_test=2, width=128, height=64, seed=5, workers=2)
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    expected = ["synth.json"]
    for split, n in (("train", 3), ("val", 2)):
        for i in range(n):
            expected += [f"{split}/rgb/{i}.jpg", f"{split}/semseg/{i}.png", f"{split}/depth/{i}.png", f"{split}/normals/{i}.png"]
    for i in range(2):
        expected += [f"test/rgb/{i}.jpg", f"test_gt/semseg/{i}.png", f"test_gt/depth/{i}.png", f"test_gt/normals/{i}.png"]
    assert files == sorted(expected)
    assert json.loads((root / "synth.json").read_text())["seed"] == 5

    for split, gt in (("train", "train"), ("val", "val"), ("test", "test_gt")):
        with Image.open(root / split / "rgb" / "0.jpg") as im:
            assert (im.format, im.mode, im.size) == ("JPEG", "RGB", (128, 64))
        with Image.open(root / gt / "semseg" / "0.png") as im:
            assert (im.format, im.mode, im.size) == ("PNG", "P", (128, 64))
        with Image.open(root / gt / "depth" / "0.png") as im:
            assert (im.format, im.mode, im.size) == ("PNG", "L", (128, 64))
        with Image.open(root / gt / "normals" / "0.png") as im:
            assert (im.format, im.mode, im.size) == ("PNG", "RGB", (128, 64))

    # the files hold exactly what render_sample gives for that (seed, split, index)
    sample = render_sample(5, "val", 1, 128, 64)
    np.testing.assert_array_equal(read_semseg(root / "val/semseg/1.png"), sample.semseg)
    codes = np.asarray(Image.open(root / "val/depth/1.png"))
    np.testing.assert_array_equal(codes, encode_depth(sample.depth, "invalidate"))
    np.testing.assert_array_equal(np.asarray(Image.open(root / "val/normals/1.png")), encode_normals(sample.normals))
    write_rgb(tmp_path / "reference.jpg", sample.rgb)  # same encoder, same bytes
    assert (root / "val/rgb/1.jpg").read_bytes() == (tmp_path / "reference.jpg").read_bytes()
    test_sample = render_sample(5, "test", 0, 128, 64)
    np.testing.assert_array_equal(read_semseg(root / "test_gt/semseg/0.png"), test_sample.semseg)
    assert np.isnan(read_depth(root / "test_gt/depth/0.png")[test_sample.semseg == SKY]).all()

    layout = DATASETS["miniscapes"](root)
    item = layout.read("train", 2, ("semseg", "depth", "normals"))
    assert layout.split_size("train") == 3 and item["rgb"].shape == (64, 128, 3) and item["depth"].shape == (64, 128)
    assert layout.tasks_in("test") == () and layout.split_size("test") == 2

    # normals: (0, 0, 0) exactly where the depth PNG is 0, in every written sample; the audit agrees
    for gt, n in (("train", 3), ("val", 2), ("test_gt", 2)):
        for i in range(n):
            depth_codes = np.asarray(Image.open(root / gt / "depth" / f"{i}.png"))
            normal_codes = np.asarray(Image.open(root / gt / "normals" / f"{i}.png"))
            np.testing.assert_array_equal(~normal_codes.any(axis=-1), depth_codes == 0)
    assert audit(root, "val")["normal_mismatch"] == 0
    assert contact_sheet(5, "val", [0, 1], 128, 64).shape == (128, 4 * 128, 3)  # rgb, semseg, depth, normals


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
        MINISCAPES.generate(tmp_path / "out", **args)
    assert not (tmp_path / "out").exists()


def test_generate_dataset_refuses_a_non_empty_folder(tmp_path: Path):
    (tmp_path / "old.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not an empty folder"):
        MINISCAPES.generate(tmp_path, 1, 0, 0, 128, 64, 0, workers=1)
    assert [p.name for p in tmp_path.iterdir()] == ["old.txt"]


def test_a_failed_write_leaves_neither_the_file_nor_its_temporary(tmp_path: Path):
    target = tmp_path / "0.png"

    def crash(path: Path) -> None:
        path.write_bytes(b"\x89PNG half an image")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(crash, target)
    assert list(tmp_path.iterdir()) == []
    atomic_write(lambda p: p.write_bytes(b"done"), target)
    assert [p.name for p in tmp_path.iterdir()] == ["0.png"] and target.read_bytes() == b"done"


# --- surface normals --------------------------------------------------------------------------------


def _camera_of(seed: int, split: str, index: int, width: int, height: int) -> Camera:
    """The camera render_sample used: the scene is rebuilt from the same random stream."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, SPLIT_IDS[split], index]))
    return build_scene(rng, width, height).camera


def _pixel_rays(camera: Camera) -> np.ndarray:
    """H×W×3 camera-frame rays (u, v, 1) through the pixel centres: the intrinsics of the renderer."""
    u = (np.arange(camera.width) + 0.5 - camera.width / 2) / camera.focal
    v = (np.arange(camera.height) + 0.5 - camera.height / 2) / camera.focal
    return np.stack(np.broadcast_arrays(u[None, :], v[:, None], np.ones((1, 1))), axis=-1)


def _angles_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.degrees(np.arccos(np.clip(np.sum(a * b, axis=-1), -1.0, 1.0)))


def test_normals_of_known_primitives_in_camera_coordinates():
    camera = _level_camera(65, 33)
    box = Part(Box((-3.0, 1.5, 20.0), (4.0, 2.0, 2.0)), CAR, Solid((1, 2, 3)))
    ball = Part(Ellipsoid((0.0, 1.5, 10.0), (1.0, 2.0, 0.5)), CAR, Solid((1, 2, 3)))
    post = Part(Cylinder((3.0, 1.5, 10.0), 0.5, 4.0, axis=1), CAR, Solid((1, 2, 3)))
    frame = _frame([box, ball, post], camera)
    frame.resolve([box, ball, post], ground=_Ground())
    normals = camera_normals(frame, np.isfinite(frame.depth))
    np.testing.assert_allclose(normals[16, 32], (0.0, 0.0, -1.0), atol=1e-6)  # ellipsoid tip on the axis
    x_box = int(round(32.5 + camera.focal * -3.0 / 19.0 - 0.5))  # the box's front face, y down: up is -y
    np.testing.assert_allclose(normals[16, x_box], (0.0, 0.0, -1.0), atol=1e-6)
    x_post = int(round(32.5 + camera.focal * 3.0 / 9.5 - 0.5))  # the cylinder wall faces the camera
    assert normals[16, x_post, 2] < -0.9 and abs(normals[16, x_post, 1]) < 1e-6
    np.testing.assert_allclose(normals[30, 5], (0.0, -1.0, 0.0), atol=1e-6)  # ground: straight up
    assert np.isnan(normals[2, 5]).all()  # sky

    # a pitched, rolled camera sees the ground normal as the world's up axis in camera coordinates
    tilted = Camera.create(64, 32, 70.0, np.array([0.0, 1.5, 0.0]), yaw=0.1, pitch=np.radians(-3.0), roll=np.radians(1.0))
    frame = _frame([], tilted)
    frame.resolve([], ground=_Ground())
    ground = camera_normals(frame, np.isfinite(frame.depth))[np.isfinite(frame.depth)]
    np.testing.assert_allclose(ground, np.broadcast_to(tilted.rotation[1], ground.shape), atol=1e-6)
    assert (ground[:, 1] < -0.99).all() and (ground[:, 2] < 0).all()  # pitched down: tilted towards the camera

    # seen from inside (the far wall of a box around the camera) the normal is turned to face the camera
    room = Part(Box((0.0, 1.5, 0.0), (10.0, 10.0, 10.0)), CAR, Solid((1, 2, 3)))
    frame = _frame([room], camera)
    frame.resolve([room], ground=_Ground())
    normals = camera_normals(frame, np.isfinite(frame.depth))
    np.testing.assert_allclose(normals[16, 32], (0.0, 0.0, -1.0), atol=1e-6)
    assert (np.sum(normals * _pixel_rays(camera), axis=-1) < 0).all()


def test_normals_are_unit_facing_the_camera_and_valid_exactly_where_depth_is():
    for index in range(3):
        s = render_sample(0, "val", index, 192, 96)
        assert s.normals.shape == (96, 192, 3) and s.normals.dtype == np.float32
        invalid = np.isnan(s.normals)
        assert (invalid.all(axis=-1) == invalid.any(axis=-1)).all()
        np.testing.assert_array_equal(invalid[..., 0], np.isnan(s.depth))
        valid = ~invalid[..., 0]
        n = s.normals[valid]
        np.testing.assert_allclose(np.linalg.norm(n, axis=-1), 1.0, atol=1e-5)
        assert (np.sum(n * _pixel_rays(_camera_of(0, "val", index, 192, 96))[valid], axis=-1) <= 1e-6).all()
        # the 8-bit codes: (0, 0, 0) exactly where the depth code is 0, unit length within quantisation
        codes = encode_normals(s.normals)
        np.testing.assert_array_equal(~codes.any(axis=-1), encode_depth(s.depth, "invalidate") == 0)
        raw = codes[valid].astype(np.float64) / 255 * 2 - 1
        assert np.abs(np.linalg.norm(raw, axis=-1) - 1.0).max() < 0.01
        assert _angles_deg(decode_normals(codes)[valid], n).max() < 0.5


def _normals_from_depth(depth: np.ndarray, camera: Camera) -> np.ndarray:
    """(H−1)×(W−1)×3 normals of the triangles (p[r, c], p[r, c+1], p[r+1, c]) of back-projected points,
    turned to face the camera."""
    points = depth[..., None].astype(np.float64) * _pixel_rays(camera)
    n = np.cross(points[:-1, 1:] - points[:-1, :-1], points[1:, :-1] - points[:-1, :-1])
    with np.errstate(invalid="ignore"):
        n /= np.linalg.norm(n, axis=-1, keepdims=True)
        n *= np.where(np.sum(n * points[:-1, :-1], axis=-1) > 0, -1.0, 1.0)[..., None]
    return n


def test_normals_agree_with_normals_estimated_from_depth():
    """Road (the ground plane) and building facades: the cross product of neighbouring back-projected
    depth points (exact float depth, the renderer's intrinsics) matches the stored normal. Facade
    pixels are those whose two neighbours carry the same normal (one face, no edge between)."""
    angles = {ROAD: [], BUILDING: []}
    for index in range(4):
        s = render_sample(0, "val", index, 256, 128)
        camera = _camera_of(0, "val", index, 256, 128)
        estimate = _normals_from_depth(s.depth, camera)
        n = s.normals[:-1, :-1]
        same = (np.abs(n - s.normals[:-1, 1:]).max(axis=-1) < 1e-4) & (np.abs(n - s.normals[1:, :-1]).max(axis=-1) < 1e-4)
        for label in angles:
            mask = (s.semseg[:-1, :-1] == label) & (s.semseg[:-1, 1:] == label) & (s.semseg[1:, :-1] == label)
            mask &= np.isfinite(estimate).all(axis=-1) & same
            if label == BUILDING:
                mask &= np.abs(np.sum(n * camera.rotation[1], axis=-1)) < 0.1  # vertical faces: horizontal normal
            angles[label].append(_angles_deg(estimate[mask], n[mask]))
        road = s.normals[(s.semseg == ROAD) & np.isfinite(s.depth)]
        up = camera.rotation[1]  # the world's up axis in camera coordinates: -y tilted by pitch and roll
        assert (road[:, 1] < -0.99).all()
        np.testing.assert_allclose(road, np.broadcast_to(up, road.shape), atol=1e-5)
    for label, name in ((ROAD, "road"), (BUILDING, "facade")):
        a = np.concatenate(angles[label])
        assert len(a) > 2000, name
        assert np.median(a) < 1.0 and np.percentile(a, 95) < 3.0, (name, np.median(a), np.percentile(a, 95))


def test_normals_png_agree_with_a_plane_fitted_to_the_depth_png(tmp_path: Path):
    """What a user of the files sees: on the road, disparity 1/z is affine in the pixel ray (u, v, 1)
    with coefficients along the plane's normal, so a least-squares fit to the 8-bit depth PNG gives
    the road normal, to compare with the normals PNG (and their masks must coincide)."""
    root = tmp_path / "synth"
    MINISCAPES.generate(root, num_train=0, num_val=3, num_test=0, width=256, height=128, seed=0, workers=1)
    for index in range(3):
        codes = np.asarray(Image.open(root / f"val/depth/{index}.png"))
        normals = read_normals(root / f"val/normals/{index}.png")
        np.testing.assert_array_equal(np.isnan(normals).any(axis=-1), codes == 0)
        road = (read_semseg(root / f"val/semseg/{index}.png") == ROAD) & (codes > 0)
        rays = _pixel_rays(_camera_of(0, "val", index, 256, 128))[road]
        disparity = DMIN + (DMAX - DMIN) * (codes[road] - 0.5) / 254  # the middle of each truncated code
        plane = np.linalg.lstsq(rays, disparity, rcond=None)[0]
        plane *= -np.sign(plane[1]) / np.linalg.norm(plane)  # facing the camera: up, -y
        assert road.sum() > 1000
        angles = _angles_deg(normals[road], plane)
        assert np.median(angles) < 1.0 and np.percentile(angles, 95) < 2.0, (index, np.median(angles))


def test_normals_encoding_round_trip_and_invalid_codes(tmp_path: Path):
    rng = np.random.default_rng(0)
    n = rng.normal(size=(50, 40, 3))
    n /= np.linalg.norm(n, axis=-1, keepdims=True)
    n[0, 0] = np.nan
    n[0, 1] = 0.0
    n[0, 2] = (np.inf, 0.0, 0.0)
    n[1, :8] = np.array(list(np.ndindex(2, 2, 2))) * 2.0 - 1.0  # the corners (±1, ±1, ±1), unnormalised
    n[2, 0] = (-1.0, -1.0, -1.0 + 1e-9)
    codes = encode_normals(n)
    assert codes.dtype == np.uint8 and codes.shape == (50, 40, 3)
    invalid = ~codes.any(axis=-1)
    assert invalid.sum() == 3 and invalid[0, :3].all()  # NaN, zero and infinite vectors only
    np.testing.assert_array_equal(codes[1, 0], (54, 54, 54))  # (−1, −1, −1)/√3 is far from (0, 0, 0)
    np.testing.assert_array_equal(codes[3, 5], np.floor((n[3, 5] + 1) / 2 * 255 + 0.5))
    decoded = decode_normals(codes)
    assert decoded.dtype == np.float32 and np.isnan(decoded[invalid]).all()
    valid = ~invalid
    unit = n[valid] / np.linalg.norm(n[valid], axis=-1, keepdims=True)
    assert _angles_deg(decoded[valid], unit).max() < 0.5
    np.testing.assert_allclose(np.linalg.norm(decoded[valid], axis=-1), 1.0, atol=1e-6)
    # renormalising moves a decoded vector by less than a code: re-encoding is within one step, and
    # an invalid code stays invalid
    assert np.abs(encode_normals(decoded).astype(int) - codes).max() <= 1
    np.testing.assert_array_equal(~encode_normals(decoded).any(axis=-1), invalid)
    assert not encode_normals(n, valid=np.zeros((50, 40), bool)).any()

    write_normals(tmp_path / "n.png", n)
    with Image.open(tmp_path / "n.png") as im:
        assert (im.format, im.mode, im.size) == ("PNG", "RGB", (40, 50))
    np.testing.assert_array_equal(read_normals(tmp_path / "n.png"), decoded)
    Image.fromarray(codes[..., 0]).save(tmp_path / "gray.png")
    with pytest.raises(DataFormatError, match=r"gray\.png: normals image has mode 'L', expected 'RGB'"):
        read_normals(tmp_path / "gray.png")
    with pytest.raises(DataFormatError, match="missing file"):
        read_normals(tmp_path / "absent.png")
    with pytest.raises(ValueError, match="uint8"):
        decode_normals(codes.astype(np.int32))
    with pytest.raises(ValueError, match="3 channels"):
        encode_normals(np.zeros((4, 4, 2)))


# RGB, semseg and depth codes of a few samples (SHA-256, first 16 hex digits of the uint8 arrays), pinned so
# that a change to the generator's output is always deliberate. Recorded before normals were added (adding an
# output must not change the existing ones); re-recorded on purpose when the rare classes (traffic light,
# rider, train, motorcycle, bicycle) were made more frequent (scene.py, "RARE_CLASSES"; docs/DATASET.md),
# which changes every sample, and when the depth encoder began truncating v + 1e-4 (mtl/data/formats.py),
# which moves about 1 valid depth pixel in 10 000 up by one code. These are platform-sensitive in principle
# (float rounding of NumPy's SIMD paths): if one fails after a NumPy upgrade or on another CPU, check whether
# the difference comes from the platform before re-recording.
_REFERENCE = {
    (0, "train", 0, 512, 256): ("5244a4cd8a6dbfcc", "baa00f410c6029ea", "521ebd3ac6274a7e"),
    (3, "val", 2, 256, 128): ("680682990d6147d7", "a98ace358818a699", "8aac0a2a3de5f588"),
    (7, "test", 5, 320, 160): ("7620270da8df80d9", "0bdc3684ca5b8cd7", "dd6ec5bc190593eb"),
    (1, "train", 11, 128, 64): ("7cc599457497cf5a", "43b9d55a58855b44", "7959c83c4c93cde7"),
}


@pytest.mark.parametrize("args", list(_REFERENCE))
def test_rgb_semseg_and_depth_are_unchanged_by_the_normals(args):
    s = render_sample(*args)
    digests = tuple(
        hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()[:16]
        for a in (s.rgb, s.semseg, encode_depth(s.depth, "invalidate"))
    )
    assert digests == _REFERENCE[args]
