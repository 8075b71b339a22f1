"""Cityscapes pre-processed as in MTAN (and Auto-Lambda, Nash-MTL, FAMO): 128×256 .npy files (SPEC §9).

``<root>/{train,val}/{image,label_7,label_19,depth}/<i>.npy``; image H×W×3 float in [0, 1]; labels H×W with
−1 = ignore (``--num_classes 7``: the 7 Cityscapes categories flat, construction, object, nature, sky, human,
vehicle, the setting of the published MTL tables; ``--num_classes 19``: the 19 trainIds, the default);
depth H×W×1, 0 = invalid.

**Depth is not in metres.** That copy stores the raw Cityscapes disparity rescaled (values 0…≈0.49, large =
near; the published tables' abs/rel errors are in this stored unit). This layout reads it and scores it *as
stored*, without converting: "depth" metrics (mae, rel, …) of a model trained on it are in that unit, and so are
``mtl data stats``' depth figures (``info.depth_unit`` says so). Note that bigger values are nearer objects.

Other ``label_<n>`` folders (e.g. a 2-class copy) are accepted and checked by `mtl data check`. Read with
``mtl.datasets.npy``: every bad file is a one-line error naming it.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping

from mtl.data.classes import CLASS_COLORS, CLASS_NAMES, IGNORE_INDEX
from mtl.datasets.base import Codec, DatasetInfo, register_dataset
from mtl.datasets.npy import DEPTH_CODEC, IMAGE, NpyLayout, label_codec, label_folder_classes

NUM_CLASSES = (7, 19)
# The Cityscapes categories in categoryId order (void excluded), i.e. label_7 ids 0..6; colours: one class of each.
CATEGORIES = (
    ("flat", (128, 64, 128)),
    ("construction", (70, 70, 70)),
    ("object", (220, 220, 0)),
    ("nature", (107, 142, 35)),
    ("sky", (70, 130, 180)),
    ("human", (220, 20, 60)),
    ("vehicle", (0, 0, 142)),
)
DEPTH_UNIT = "stored inverse depth, not metres"


def _info(num_classes: int) -> DatasetInfo:
    names, colors = (CLASS_NAMES, CLASS_COLORS) if num_classes == 19 else zip(*CATEGORIES)
    return DatasetInfo(
        name="cityscapes_npy",
        tasks=("semseg", "depth"),
        default_tasks=("semseg", "depth"),
        class_names=tuple(names),
        class_colors=tuple(colors),
        ignore_index=IGNORE_INDEX,
        depth_range=(1e-3, 1.0),  # stored units: 0.49 ≈ 3.7 m, 0.006 ≈ 300 m with the Cityscapes camera
        depth_stats=None,
        depth_unit=DEPTH_UNIT,
        extra={"label_folder": f"label_{num_classes}"},
    )


INFOS = {n: _info(n) for n in NUM_CLASSES}


def num_classes_value(value: str) -> int:
    """``--num_classes``: 7 or 19."""
    try:
        number = int(value)
    except ValueError:
        number = None
    if number not in NUM_CLASSES:
        raise argparse.ArgumentTypeError(f"expected 7 or 19 (the label_7 or label_19 folder), got {value!r}")
    return number


@register_dataset("cityscapes_npy")
class CityscapesNpyLayout(NpyLayout):
    info = INFOS[19]
    KINDS = {"semseg": "labels", "depth": "depth"}

    def __init__(self, root, num_classes: int = 19) -> None:
        super().__init__(root)
        self.info = INFOS[num_classes]  # this dataset's class set (the class attribute is the default's)

    @property
    def folders(self) -> Mapping[str, str]:
        return {"semseg": self.info.extra["label_folder"], "depth": "depth"}

    @classmethod
    def add_arguments(cls, group: argparse._ArgumentGroup) -> None:
        group.add_argument(
            "--num_classes", type=num_classes_value, default=19, metavar="{7,19}",
            help="cityscapes_npy: class set, the label_7 (Cityscapes categories, as in the MTAN/Nash-MTL/FAMO "
            "tables) or label_19 (trainIds) folder",
        )

    @classmethod
    def from_flags(cls, flags: argparse.Namespace) -> CityscapesNpyLayout:
        return cls(flags.dataset_root, getattr(flags, "num_classes", 19))

    @classmethod
    def info_for(cls, flags: argparse.Namespace) -> DatasetInfo:
        return INFOS[getattr(flags, "num_classes", 19)]

    @classmethod
    def codec(cls, task: str) -> Codec:
        if task == "semseg":
            return label_codec(19, IGNORE_INDEX)  # reads any class count up to 19
        return DEPTH_CODEC

    def label_folders(self, split: str) -> dict[str, int]:
        """label_7 and label_19, and any other label_<n> present, each with its class count."""
        found = {f.name: label_folder_classes(f.name) for f in (self.root / split).iterdir() if f.is_dir()}
        folders = {f"label_{n}": n for n in NUM_CLASSES}
        folders.update({name: n for name, n in sorted(found.items()) if n is not None})
        return folders

    def required_folders(self, split: str) -> tuple[str, ...]:
        return (IMAGE, self.folders["semseg"], "depth")
