"""Writers of the generated world in other datasets' layouts: Cityscapes (raw), MTAN's Cityscapes .npy and
NYUv2 .npy. Each converts one rendered sample (RGB, 19 trainIds, depth in metres, normals in the camera
frame) into the files that layout's readers (``mtl.datasets.cityscapes``, ``cityscapes_npy``, ``nyuv2``) expect;
the formats are those of SPEC §9, the numbers below are this generator's choices.

- **cityscapes**: ``leftImg8bit/<split>/synth/synth_000000_<i:06d>_leftImg8bit.png`` (RGB PNG); for train and
  val ``gtFine/…_gtFine_labelIds.png`` (trainIds → labelIds through the official table in
  ``cityscapesscripts.helpers.labels``: each trainId has one labelId; the ego car's bonnet, 255, is labelId 1
  "ego vehicle"), ``gtFine/…_gtFine_instanceIds.png`` (16-bit, equal to the labelIds: no instances, which is
  what the official evaluator reads next to the labels), ``disparity/…_disparity.png`` (16-bit,
  p = round(256·d) + 1 with d = baseline·fx/z pixels, 0 where the depth is invalid) and
  ``camera/…_camera.json`` with the Cityscapes stereo baseline 0.209313 m and the sample's own focal length
  (fx = fy = W / (2·tan(hfov/2)), principal point at the centre). The test split gets leftImg8bit only, like the
  real one (no public labels).
- **cityscapes_npy**: ``<split>/{image,label_7,label_19,depth}/<i>.npy``: image H×W×3 float32 in [0, 1]; label_19
  the trainIds, label_7 the Cityscapes *category* of each class (flat, construction, object, nature, sky, human,
  vehicle = categoryId − 1 of the official table), both float32 with −1 = ignore; depth H×W×1 float32 holding
  an inverse depth like the MTAN copy: the disparity in pixels of the Cityscapes camera at 2048 px width
  (baseline 0.209313 m, fx 2262.52 px) divided by 256, i.e. DISPARITY_SCALE / z with
  DISPARITY_SCALE = 0.209313·2262.52/256 ≈ 1.85 (≈ p/65536 of the raw disparity PNG; 4 m → 0.46, 300 m →
  0.0062), 0 = invalid. Train and val only.
- **nyuv2**: ``<split>/{image,label,depth,normal}/<i>.npy``: image as above; label float32, the 19 street classes
  merged into 13 (``NYU13_OF_TRAIN_ID``, a stand-in of our choosing, not NYU's indoor classes: each index gets
  the street classes that loosely play its role, e.g. floor ← road, ceiling ← sky, wall ← building), −1 = ignore;
  depth H×W×1 float32 metres (4–300 m, not NYU's 0.5–10 m), 0 = invalid; normal H×W×3 float32 unit vectors in
  the camera frame (x right, y down, z forward), all-zero = invalid. Train and val only.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image

from mtl.data.formats import atomic_write
from mtl.data.synth.render import render
from mtl.data.synth.sample import SPLIT_IDS, Sample, check_size
from mtl.data.synth.scene import build_scene


CITYSCAPES_BASELINE_M = 0.209313  # the Cityscapes stereo rig's baseline
CITYSCAPES_FX_2048 = 2262.52  # its focal length in pixels at the full 2048-pixel width
DISPARITY_SCALE = CITYSCAPES_BASELINE_M * CITYSCAPES_FX_2048 / 256.0  # stored value · z of the MTAN-style copy
SYNTH_CITY = "synth"

# 19 trainIds → 13 stand-in classes, indexed like NYUv2's 13 (bed, books, ceiling, chair, floor, furniture,
# objects, picture, sofa, table, tv, wall, window).
NYU13_OF_TRAIN_ID = (
    4,  # road → floor
    9,  # sidewalk → table (a raised flat surface)
    11,  # building → wall
    12,  # wall → window
    12,  # fence → window (you see through it)
    5,  # pole → furniture (street furniture)
    7,  # traffic light → picture
    7,  # traffic sign → picture
    6,  # vegetation → objects (NYU puts plants there)
    1,  # terrain → books
    2,  # sky → ceiling
    10,  # person → tv
    10,  # rider → tv
    8,  # car → sofa (seats)
    0,  # truck → bed (large)
    0,  # bus → bed
    0,  # train → bed
    3,  # motorcycle → chair (you sit on it)
    3,  # bicycle → chair
)


def sample_prefix(index: int) -> str:
    """The Cityscapes name ``<city>_<seq>_<frame>`` of generated sample ``index``."""
    return f"{SYNTH_CITY}_000000_{index:06d}"


def render_with_focal(seed: int, split: str, index: int, width: int, height: int) -> tuple[Sample, float]:
    """``render_sample`` and the focal length (pixels) of its camera, from one scene build."""
    check_size(width, height)
    rng = np.random.default_rng(np.random.SeedSequence([seed, SPLIT_IDS[split], index]))
    scene = build_scene(rng, width, height)
    rgb, semseg, depth, normals = render(scene)
    return Sample(rgb, semseg, depth, normals), float(scene.camera.focal)


# -------------------------------------------------------------------------------------------- tables
@cache
def label_id_of_train_id() -> np.ndarray:
    """256-entry uint8 table trainId → labelId from the official Cityscapes table (255 → "ego vehicle")."""
    from cityscapesscripts.helpers.labels import labels, name2label

    table = np.full(256, name2label["ego vehicle"].id, dtype=np.uint8)
    for label in labels:
        if 0 <= label.trainId < 255 and not label.ignoreInEval:
            table[label.trainId] = label.id
    return table


@cache
def category_of_train_id() -> np.ndarray:
    """256-entry float32 table trainId → Cityscapes category index (categoryId − 1, 0..6), −1 for ignore."""
    from cityscapesscripts.helpers.labels import trainId2label

    table = np.full(256, -1.0, dtype=np.float32)
    for train_id in range(19):
        table[train_id] = trainId2label[train_id].categoryId - 1
    return table


def _labels(train_ids: np.ndarray, table: np.ndarray | None = None) -> np.ndarray:
    """trainIds → float32 labels with −1 = ignore (through ``table`` when given)."""
    if table is not None:
        return table[train_ids]
    return np.where(train_ids == 255, -1.0, train_ids.astype(np.float32)).astype(np.float32)


def _image(rgb: np.ndarray) -> np.ndarray:
    return (rgb.astype(np.float32) / np.float32(255.0)).astype(np.float32)


def _zero_invalid(values: np.ndarray) -> np.ndarray:
    return np.where(np.isfinite(values), values, 0.0).astype(np.float32)


def encode_disparity(depth_m: np.ndarray, baseline: float, fx: float) -> np.ndarray:
    """Metres (NaN = invalid) → 16-bit Cityscapes disparity codes p = round(256·baseline·fx/z) + 1, 0 = invalid."""
    with np.errstate(divide="ignore", invalid="ignore"):
        disparity = baseline * fx / depth_m.astype(np.float64)
    codes = np.round(disparity * 256.0) + 1.0
    codes = np.where(np.isfinite(codes), np.clip(codes, 0.0, 65535.0), 0.0)
    return codes.astype(np.uint16)


# ------------------------------------------------------------------------------------------- writers
def cityscapes_folders(root: Path, split: str) -> list[Path]:
    kinds = ("leftImg8bit",) if split == "test" else ("leftImg8bit", "gtFine", "disparity", "camera")
    return [root / kind / split / SYNTH_CITY for kind in kinds]


def write_cityscapes(root: Path, seed: int, split: str, index: int, width: int, height: int) -> None:
    sample, focal = render_with_focal(seed, split, index, width, height)
    prefix = sample_prefix(index)
    where = lambda kind: root / kind / split / SYNTH_CITY  # noqa: E731
    atomic_write(lambda p: Image.fromarray(sample.rgb).save(p), where("leftImg8bit") / f"{prefix}_leftImg8bit.png")
    if split == "test":
        return
    label_ids = label_id_of_train_id()[sample.semseg]
    atomic_write(lambda p: Image.fromarray(label_ids).save(p), where("gtFine") / f"{prefix}_gtFine_labelIds.png")
    instance_ids = label_ids.astype(np.uint16)
    atomic_write(lambda p: Image.fromarray(instance_ids).save(p), where("gtFine") / f"{prefix}_gtFine_instanceIds.png")
    codes = encode_disparity(sample.depth, CITYSCAPES_BASELINE_M, focal)
    atomic_write(lambda p: Image.fromarray(codes).save(p), where("disparity") / f"{prefix}_disparity.png")
    camera = {
        "extrinsic": {"baseline": CITYSCAPES_BASELINE_M},
        "intrinsic": {"fx": focal, "fy": focal, "u0": width / 2, "v0": height / 2},
    }
    text = json.dumps(camera, indent=4) + "\n"
    atomic_write(lambda p: p.write_text(text), where("camera") / f"{prefix}_camera.json")


def _save_npy(path: Path, array: np.ndarray) -> None:
    atomic_write(lambda p: np.save(p, array), path)


def write_cityscapes_npy(root: Path, seed: int, split: str, index: int, width: int, height: int) -> None:
    sample, _ = render_with_focal(seed, split, index, width, height)
    folder = root / split
    _save_npy(folder / "image" / f"{index}.npy", _image(sample.rgb))
    _save_npy(folder / "label_19" / f"{index}.npy", _labels(sample.semseg))
    _save_npy(folder / "label_7" / f"{index}.npy", _labels(sample.semseg, category_of_train_id()))
    with np.errstate(divide="ignore", invalid="ignore"):
        inverse = DISPARITY_SCALE / sample.depth.astype(np.float64)
    _save_npy(folder / "depth" / f"{index}.npy", _zero_invalid(inverse)[..., None])


def write_nyuv2(root: Path, seed: int, split: str, index: int, width: int, height: int) -> None:
    sample, _ = render_with_focal(seed, split, index, width, height)
    folder = root / split
    table = np.full(256, -1.0, dtype=np.float32)
    table[:19] = NYU13_OF_TRAIN_ID
    _save_npy(folder / "image" / f"{index}.npy", _image(sample.rgb))
    _save_npy(folder / "label" / f"{index}.npy", _labels(sample.semseg, table))
    _save_npy(folder / "depth" / f"{index}.npy", _zero_invalid(sample.depth)[..., None])
    _save_npy(folder / "normal" / f"{index}.npy", _zero_invalid(sample.normals))


WRITERS: dict[str, Callable[[Path, int, str, int, int, int], None]] = {
    "cityscapes": write_cityscapes,
    "cityscapes_npy": write_cityscapes_npy,
    "nyuv2": write_nyuv2,
}
SPLITS_OF = {"cityscapes": ("train", "val", "test"), "cityscapes_npy": ("train", "val"), "nyuv2": ("train", "val")}
