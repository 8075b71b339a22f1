"""NYUD-v2 as ASTMT and MTL-PyTorch distribute it for multi-task learning (``NYUD_MT``): four tasks.

``<root>/images/<id>.jpg``; ``segmentation/<id>.png`` (mode L or P, the 40 NYUD classes stored 1..40, 0 =
unlabelled; read as 0..39 with 0 → 255 ignored, as the reference's ``_load_semseg`` shifts them);
``depth/<id>.npy`` (H×W floats, metres, 0 = invalid → NaN); ``normals/<id>.npy`` (H×W×3 floats in [−1, 1],
x the horizontal component (the reference's flip negates channel 0), all-zero = invalid → NaN; not re-normalised:
the reference's evaluation normalises the label); ``edge/<id>.npy`` (H×W, 0/1 → uint8, 1 = boundary); splits
``gt_sets/{train,val}.txt`` (795 / 654 ids). A file whose size differs from its image is an error (the
reference resizes it silently).

Predictions are written as MTL-PyTorch's ``save_model_predictions`` writes them, which differs from the ground
truth: semseg a PNG of the predicted ids 0..39 (not shifted by one), depth a ``.mat`` with the variable
``depth`` (metres), normals an RGB PNG of round((n + 1)·255/2).

`mtl data synth --layout nyud_mt` writes the generated street world in these formats (``write_generated``):
the 19 Cityscapes trainIds stored as 1..19 (0 = ignore), depth in metres (4–300 m, 0 = invalid), camera-frame
unit normals, edges = the thinned label boundaries (``label_edges``); ids ``<split>_<index:06d>``. Its
``synth.json`` names the layout: a copy that has it is read with the 19 street classes (``info_for``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image
from scipy import io as sio

from mtl.data import formats
from mtl.data.classes import CLASS_COLORS, CLASS_NAMES
from mtl.data.formats import DataFormatError
from mtl.datasets.base import Codec, DatasetInfo, register_dataset
from mtl.datasets.listed import (
    ListedLayout,
    add_to_split_list,
    generated_id,
    label_edges,
    read_png_array,
    require_size,
    write_png,
)
from mtl.datasets.npy import load_npy, save_npy, zero_invalid
from mtl.tasks.depth import DepthInfo
from mtl.tasks.edges import EdgesInfo
from mtl.tasks.semseg import SemsegInfo

if TYPE_CHECKING:
    from mtl.data.synth.sample import Sample

IGNORE_INDEX = 255
# The 40 NYUD-v2 classes of Gupta et al. in label order (stored 1..40), as ASTMT's eval_semseg names them.
CLASS_NAMES_40 = (
    "wall", "floor", "cabinet", "bed", "chair", "sofa", "table", "door", "window", "bookshelf",
    "picture", "counter", "blinds", "desk", "shelves", "curtain", "dresser", "pillow", "mirror", "floor mat",
    "clothes", "ceiling", "books", "refridgerator", "television", "paper", "towel", "shower curtain", "box",
    "whiteboard", "person", "night stand", "toilet", "sink", "lamp", "bathtub", "bag", "otherstructure",
    "otherfurniture", "otherprop",
)  # fmt: skip
NORMALS_TOLERANCE = 1e-3  # stored components may stray this far outside [−1, 1]
TASKS = ("semseg", "depth", "normals", "edges")
DEFAULT_TASKS = ("semseg", "depth")  # MTL-PyTorch's NYUD task_dictionary; edges and normals are its auxiliary tasks
FOLDERS = {"semseg": ("segmentation", ".png"), "depth": ("depth", ".npy"), "normals": ("normals", ".npy"),
           "edges": ("edge", ".npy")}  # fmt: skip


def voc_colormap(count: int) -> tuple[tuple[int, int, int], ...]:
    """The PASCAL VOC devkit's palette (bits of the index spread over the high bits of R, G, B)."""
    colors = []
    for index in range(count):
        r = g = b = 0
        c = index
        for shift in range(7, -1, -1):
            r |= (c & 1) << shift
            g |= (c >> 1 & 1) << shift
            b |= (c >> 2 & 1) << shift
            c >>= 3
        colors.append((r, g, b))
    return tuple(colors)


def generated_copy(root: str | Path | None, layout: str) -> bool:
    """Whether ``root`` holds the generated world written in ``layout`` (its ``synth.json`` names the layout)."""
    if root is None:
        return False
    try:
        meta = json.loads((Path(root) / "synth.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and meta.get("layout") == layout


def _info(generated: bool) -> DatasetInfo:
    # colours: the VOC palette from index 1 (index 0 is black, kept for nothing)
    names, colors = (CLASS_NAMES, CLASS_COLORS) if generated else (CLASS_NAMES_40, voc_colormap(41)[1:])
    return DatasetInfo(
        name="nyud_mt",
        stored_tasks=TASKS,
        default_tasks=DEFAULT_TASKS,
        task_info={
            "semseg": SemsegInfo(tuple(names), tuple(colors), IGNORE_INDEX),
            # real NYUD-v2 ≈ 0.7–10 m (Kinect); the generated street world 4–300 m
            "depth": DepthInfo(value_range=(4.0, 300.0) if generated else (0.1, 10.0)),
            "edges": EdgesInfo(0.011),
        },
        extra={"generated": generated},
    )


INFOS = {False: _info(False), True: _info(True)}


def _read_ids(path: Path) -> np.ndarray:
    return read_png_array(path, "prediction", ("L", "P"))


def _write_ids(path: Path, ids: np.ndarray) -> None:
    Image.fromarray(np.asarray(ids, dtype=np.uint8), mode="L").save(path, format="PNG")


def _read_depth_mat(path: Path) -> np.ndarray:
    try:
        depth = sio.loadmat(path)["depth"]
    except Exception as exc:  # scipy raises many types for a bad file
        raise DataFormatError(f"{path}: cannot read the depth .mat ({type(exc).__name__}: {exc})") from exc
    return np.asarray(depth, dtype=np.float32)


def _write_depth_mat(path: Path, depth: np.ndarray) -> None:
    sio.savemat(path, {"depth": np.asarray(depth, dtype=np.float32)})


# predictions in the reference's formats (the ground truth of semseg and depth is stored otherwise)
CODECS = {
    "semseg": Codec(".png", _read_ids, _write_ids),
    "depth": Codec(".mat", _read_depth_mat, _write_depth_mat),
    "normals": Codec(".png", formats.read_normals, formats.write_normals),
}


@register_dataset("nyud_mt")
class NYUDMTLayout(ListedLayout):
    info = INFOS[False]
    codecs = CODECS
    LIST_FOLDER = "gt_sets"
    eval_protocol = "mtl_pytorch"  # the benchmark's tables (MTI-Net, MTL-PyTorch): docs/PROTOCOLS.md
    IMAGE_FOLDER = "images"
    synth_size = (320, 240)  # NYUD-v2's 640×480 halved
    synth_splits = ("train", "val")

    def __init__(self, root: str | Path) -> None:
        super().__init__(root)
        self.info = INFOS[generated_copy(root, "nyud_mt")]

    @classmethod
    def info_for(cls, flags: argparse.Namespace) -> DatasetInfo:
        return INFOS[generated_copy(getattr(flags, "dataset_root", None), "nyud_mt")]

    def task_folders(self) -> dict[str, tuple[str, str]]:
        return FOLDERS

    def task_path(self, task: str, sample_id: str) -> Path:
        folder, suffix = FOLDERS[task]
        return self.root / folder / f"{sample_id}{suffix}"

    def decode(self, task: str, sample_id: str, size: tuple[int, int]) -> np.ndarray:
        path = self.task_path(task, sample_id)
        if task == "semseg":
            return decode_semseg(path, size, self.info.task_info["semseg"].num_classes)
        array = load_npy(path)
        require_size(path, task, array, size)
        return {"depth": decode_depth, "normals": decode_normals, "edges": decode_edges}[task](path, array)

    def check_notes(self) -> list[str]:
        if self.info.extra["generated"]:
            return [f"{self.root}: a generated copy (synth.json): 19 street classes, not NYUD's 40"]
        return []

    @classmethod
    def write_generated(cls, root: Path, split: str, index: int, sample: Sample) -> None:
        sample_id = generated_id(split, index)
        formats.atomic_write(lambda p: formats.write_rgb(p, sample.rgb), root / "images" / f"{sample_id}.jpg")
        stored = np.where(sample.semseg == IGNORE_INDEX, 0, sample.semseg.astype(np.int64) + 1).astype(np.uint8)
        write_png(root / "segmentation" / f"{sample_id}.png", stored)
        save_npy(root / "depth" / f"{sample_id}.npy", zero_invalid(sample.depth))
        save_npy(root / "normals" / f"{sample_id}.npy", zero_invalid(sample.normals))
        save_npy(root / "edge" / f"{sample_id}.npy", label_edges(sample.semseg).astype(np.float32))
        add_to_split_list(root / "gt_sets" / f"{split}.txt", sample_id)


def decode_semseg(path: Path, size: tuple[int, int], num_classes: int) -> np.ndarray:
    """Stored 1..n, 0 = unlabelled → 0..n−1 with 255."""
    stored = read_png_array(path, "segmentation", ("L", "P"))
    require_size(path, "segmentation", stored, size)
    bad = np.unique(stored[stored > num_classes])
    if bad.size:
        raise DataFormatError(f"{path}: segmentation holds values {bad[:5].tolist()} outside 0..{num_classes} (0 = unlabelled)")
    return np.where(stored == 0, IGNORE_INDEX, stored.astype(np.int64) - 1).astype(np.uint8)


def _require(path: Path, what: str, array: np.ndarray, shapes: tuple[int, ...]) -> None:
    if array.ndim not in shapes or array.dtype.kind not in "fiub":
        raise DataFormatError(f"{path}: {what} has shape {array.shape} and dtype {array.dtype}, expected a float array")
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise DataFormatError(f"{path}: {what} holds NaN or infinite values")


def decode_depth(path: Path, array: np.ndarray) -> np.ndarray:
    """Metres, H×W (or H×W×1), 0 = invalid → float32 with NaN."""
    _require(path, "depth", array, (2, 3))
    if array.ndim == 3 and array.shape[2] != 1:
        raise DataFormatError(f"{path}: depth has shape {array.shape}, expected (H, W)")
    depth = array.reshape(array.shape[:2]).astype(np.float32)
    if (depth < 0).any():
        raise DataFormatError(f"{path}: depth holds negative values (min {float(depth.min()):g}); 0 marks invalid pixels")
    return np.where(depth > 0, depth, np.float32(np.nan)).astype(np.float32)


def decode_normals(path: Path, array: np.ndarray) -> np.ndarray:
    """H×W×3 in [−1, 1], all-zero = invalid → float32 with NaN (not re-normalised)."""
    _require(path, "normals", array, (3,))
    if array.shape[2] != 3:
        raise DataFormatError(f"{path}: normals have shape {array.shape}, expected (H, W, 3)")
    if np.abs(array).max(initial=0) > 1 + NORMALS_TOLERANCE:
        raise DataFormatError(f"{path}: normals hold components up to {float(np.abs(array).max()):g}, expected [-1, 1]")
    valid = np.any(array != 0, axis=-1, keepdims=True)
    return np.where(valid, array, np.nan).astype(np.float32)


def decode_edges(path: Path, array: np.ndarray) -> np.ndarray:
    """H×W of 0 and 1 → uint8."""
    _require(path, "edges", array, (2,))
    bad = np.unique(array[(array != 0) & (array != 1)])
    if bad.size:
        raise DataFormatError(f"{path}: edges hold values {bad[:5].tolist()}, expected 0 and 1")
    return array.astype(np.uint8)
