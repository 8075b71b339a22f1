"""NYUv2 pre-processed as in MTAN and LibMTL (795 train / 654 val at 288×384; SPEC §9): three tasks.

``<root>/{train,val}/{image,label,depth,normal}/<i>.npy``; image H×W×3 float in [0, 1]; label H×W, 13 classes
(NYUv2's 13-class set), −1 = ignore; depth H×W×1 in metres, 0 = invalid; normal H×W×3 unit vectors in
[−1, 1], all-zero = invalid. Tasks semseg, depth and normals (all three by default). Read with
``mtl.datasets.npy``: every bad file is a one-line error naming it.

`mtl data synth --layout nyuv2` writes a generated stand-in in this layout: street scenes, 19 classes merged
into 13 (docs/DATASET.md has the table), depth 4–300 m. The depth range below covers both.
"""

from __future__ import annotations

from mtl.datasets.base import Codec, DatasetInfo, register_dataset
from mtl.datasets.npy import DEPTH_CODEC, NORMALS_CODEC, NpyLayout, label_codec

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
LABELS = label_codec(len(CLASSES), IGNORE_INDEX)


@register_dataset("nyuv2")
class NYUv2Layout(NpyLayout):
    info = DatasetInfo(
        name="nyuv2",
        tasks=TASKS,
        default_tasks=TASKS,
        class_names=tuple(name for name, _ in CLASSES),
        class_colors=tuple(color for _, color in CLASSES),
        ignore_index=IGNORE_INDEX,
        depth_range=(0.1, 300.0),  # real NYUv2 ≈ 0.5–10 m; the generated stand-in 4–300 m
        depth_stats=None,
    )
    FOLDERS = {"semseg": "label", "depth": "depth", "normals": "normal"}
    KINDS = {"semseg": "labels", "depth": "depth", "normals": "normals"}

    @classmethod
    def codec(cls, task: str) -> Codec:
        return {"semseg": LABELS, "depth": DEPTH_CODEC, "normals": NORMALS_CODEC}[task]
