"""NYUv2 pre-processed as in MTAN and LibMTL (795 train / 654 val at 288×384; SPEC §9): three tasks.

``<root>/{train,val}/{image,label,depth,normal}/<i>.npy``; image H×W×3 float in [0, 1]; label H×W, 13 classes
(NYUv2's 13-class set), −1 = ignore; depth H×W×1 in metres, 0 = invalid; normal H×W×3 unit vectors in
[−1, 1], all-zero = invalid. Tasks semseg, depth and normals (all three by default). Read with
``mtl.datasets.npy``: every bad file is a one-line error naming it.

`mtl data synth --layout nyuv2` writes a generated stand-in in this layout (``write_generated``): street
scenes, the 19 classes merged into 13 (``NYU13_OF_TRAIN_ID``, a stand-in of our choosing, not NYU's indoor
classes: each index gets the street classes that loosely play its role, e.g. floor ← road, ceiling ← sky,
wall ← building), depth in metres 4–300 m (not NYU's 0.5–10 m), normals in the camera frame (x right, y down,
z forward); train and val only, 384×288 by default. The depth range below covers both.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mtl.datasets.base import DatasetInfo, register_dataset
from mtl.datasets.npy import IMAGE, NpyLayout, generated_image, generated_labels, save_npy, zero_invalid
from mtl.tasks.depth import DepthInfo
from mtl.tasks.semseg import SemsegInfo

if TYPE_CHECKING:
    from mtl.data.synth.sample import Sample

IGNORE_INDEX = 255
# NYUv2's 13 classes in label order 0..12; colours: a distinct palette of our own.
CLASSES = (
    ("bed", (0, 0, 255)),
    ("books", (232, 88, 47)),
    ("ceiling", (0, 217, 0)),
    ("chair", (148, 0, 240)),
    ("floor", (222, 241, 23)),
    ("furniture", (255, 205, 205)),
    ("objects", (0, 223, 228)),
    ("picture", (106, 135, 204)),
    ("sofa", (116, 28, 41)),
    ("table", (240, 35, 235)),
    ("tv", (0, 166, 156)),
    ("wall", (249, 139, 0)),
    ("window", (225, 228, 194)),
)
TASKS = ("semseg", "depth", "normals")

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


@register_dataset("nyuv2")
class NYUv2Layout(NpyLayout):
    # MTAN's copy; the tables most compared with (MTAN, CAGrad, Nash-MTL, FAMO) come from MTAN's evaluation code.
    eval_protocol = "mtan"
    info = DatasetInfo(
        name="nyuv2",
        stored_tasks=TASKS,
        default_tasks=TASKS,
        task_info={
            "semseg": SemsegInfo(tuple(name for name, _ in CLASSES), tuple(color for _, color in CLASSES), IGNORE_INDEX),
            "depth": DepthInfo(value_range=(0.1, 300.0)),  # real NYUv2 ≈ 0.5–10 m; the generated stand-in 4–300 m
        },
    )
    FOLDERS = {"semseg": "label", "depth": "depth", "normals": "normal"}
    synth_size = (384, 288)
    synth_splits = ("train", "val")

    @classmethod
    def write_generated(cls, root: Path, split: str, index: int, sample: Sample) -> None:
        folder = root / split
        table = np.full(256, -1.0, dtype=np.float32)
        table[:19] = NYU13_OF_TRAIN_ID
        save_npy(folder / IMAGE / f"{index}.npy", generated_image(sample.rgb))
        save_npy(folder / "label" / f"{index}.npy", generated_labels(sample.semseg, table))
        save_npy(folder / "depth" / f"{index}.npy", zero_invalid(sample.depth)[..., None])
        save_npy(folder / "normal" / f"{index}.npy", zero_invalid(sample.normals))
