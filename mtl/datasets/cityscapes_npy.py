"""Cityscapes pre-processed as in MTAN (and Auto-Lambda, Nash-MTL, FAMO): 128×256 .npy files (SPEC §9).

``<root>/{train,val}/{image,label_7,label_19,depth}/<i>.npy``; image H×W×3 float in [0, 1]; labels H×W with
−1 = ignore (``--num_classes 7``: the 7 Cityscapes categories flat, construction, object, nature, sky, human,
vehicle, the setting of the published MTL tables; ``--num_classes 19``: the 19 trainIds, the default);
depth H×W×1, 0 = invalid.

**Depth is not in metres.** That copy stores the raw Cityscapes disparity rescaled (values 0…≈0.49, large =
near; the published tables' abs/rel errors are in this stored unit). This layout reads it and scores it *as
stored*, without converting: "depth" metrics (mae, rel, …) of a model trained on it are in that unit, and so are
``mtl data stats``' depth figures (``info.depth_unit`` says so). Note that bigger values are nearer objects.

Other ``label_<n>`` folders (e.g. a 2-class copy) are accepted and checked by `mtl data check`. LibMTL's copy of
the same data (examples/cityscapes) keeps the 7 categories in ``<split>/label``: with ``--num_classes 7`` that
folder is read where there is no ``label_7`` (`mtl data check` says which one it read). Read with
``mtl.datasets.npy``: every bad file is a one-line error naming it.

`mtl data synth --layout cityscapes_npy` writes the generated world in this layout (``write_generated``, train
and val, 256×128 by default): ``label_19`` = trainIds, ``label_7`` = the Cityscapes *category* of each class
(categoryId − 1 of the official table), and LibMTL's ``label`` (the same as ``label_7``), all float32 with −1 =
ignore; depth an inverse depth like the MTAN
copy: the disparity in pixels of the Cityscapes camera at 2048 px width (baseline 0.209313 m, fx 2262.52 px)
divided by 256, i.e. DISPARITY_SCALE / z with DISPARITY_SCALE = 0.209313·2262.52/256 ≈ 1.85 (≈ p/65536 of the
raw disparity PNG; 4 m → 0.46, 300 m → 0.0062), 0 = invalid.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from functools import cache, partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mtl.data.check import CheckResult
from mtl.data.classes import CLASS_COLORS, CLASS_NAMES, IGNORE_INDEX
from mtl.datasets.base import DatasetInfo, register_dataset
from mtl.datasets.cityscapes import CITYSCAPES_BASELINE_M, CITYSCAPES_FX_2048
from mtl.datasets.npy import (
    IMAGE,
    SPLITS,
    NpyLayout,
    decode_labels,
    generated_image,
    generated_labels,
    label_folder_classes,
    save_npy,
    zero_invalid,
)
from mtl.tasks.depth import DepthInfo
from mtl.tasks.semseg import SemsegInfo

if TYPE_CHECKING:
    from mtl.data.synth.sample import Sample

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
LIBMTL_LABELS = "label"  # LibMTL's copy: the 7 categories
DISPARITY_SCALE = CITYSCAPES_BASELINE_M * CITYSCAPES_FX_2048 / 256.0  # stored value · z of the MTAN-style copy


def _info(num_classes: int) -> DatasetInfo:
    names, colors = (CLASS_NAMES, CLASS_COLORS) if num_classes == 19 else zip(*CATEGORIES)
    return DatasetInfo(
        name="cityscapes_npy",
        stored_tasks=("semseg", "depth"),
        default_tasks=("semseg", "depth"),
        task_info={
            "semseg": SemsegInfo(tuple(names), tuple(colors), IGNORE_INDEX),
            # stored units: 0.49 ≈ 3.7 m, 0.006 ≈ 300 m with the Cityscapes camera
            "depth": DepthInfo(value_range=(1e-3, 1.0), unit=DEPTH_UNIT),
        },
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


@cache
def category_of_train_id() -> np.ndarray:
    """256-entry float32 table trainId → Cityscapes category index (categoryId − 1, 0..6), −1 for ignore."""
    from cityscapesscripts.helpers.labels import trainId2label

    table = np.full(256, -1.0, dtype=np.float32)
    for train_id in range(19):
        table[train_id] = trainId2label[train_id].categoryId - 1
    return table


@register_dataset("cityscapes_npy")
class CityscapesNpyLayout(NpyLayout):
    # MTAN's copy; the tables most compared with (MTAN, CAGrad, Nash-MTL, FAMO) come from MTAN's evaluation code.
    eval_protocol = "mtan"
    info = INFOS[19]
    synth_size = (256, 128)
    synth_splits = ("train", "val")

    def __init__(self, root, num_classes: int = 19) -> None:
        super().__init__(root)
        self.info = INFOS[num_classes]  # this dataset's class set (the class attribute is the default's)

    @property
    def folders(self) -> Mapping[str, str]:
        return {"semseg": self.label_folder, "depth": "depth"}

    @property
    def label_folder(self) -> str:
        """MTAN's ``label_<n>``, or LibMTL's ``label`` (its 7 categories) in a copy that has only that."""
        mtan = self.info.extra["label_folder"]
        seven = self.info.task_info["semseg"].num_classes == 7
        present = lambda folder: any((self.root / split / folder).is_dir() for split in SPLITS)  # noqa: E731
        return LIBMTL_LABELS if seven and not present(mtan) and present(LIBMTL_LABELS) else mtan

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

    def folder_decoders(self, split: str) -> dict[str, Callable[[Path, np.ndarray, tuple[int, int]], np.ndarray]]:
        """The stored tasks' folders, then label_7 and label_19 and any other label_<n> present, each read with
        its class count."""
        found = {f.name: label_folder_classes(f.name) for f in (self.root / split).iterdir() if f.is_dir()}
        counts = {f"label_{n}": n for n in NUM_CLASSES}
        counts.update({name: n for name, n in sorted(found.items()) if n is not None})
        if LIBMTL_LABELS in found:
            counts[LIBMTL_LABELS] = 7
        labels = {folder: partial(_decode_labels, num_classes=n) for folder, n in counts.items()}
        return {**super().folder_decoders(split), **labels}

    def find_problems(self, progress: bool = True) -> CheckResult:
        """The .npy check; with 7 classes, which copy's label folder it read (MTAN's label_7 or LibMTL's label)."""
        result = super().find_problems(progress)
        if self.info.task_info["semseg"].num_classes == 7:
            copy = "LibMTL's copy" if self.label_folder == LIBMTL_LABELS else "MTAN's copy"
            result.notes.append(f"{self.root}: semseg labels read from {self.label_folder}/ ({copy})")
        return result

    @classmethod
    def write_generated(cls, root: Path, split: str, index: int, sample: Sample) -> None:
        folder = root / split
        save_npy(folder / IMAGE / f"{index}.npy", generated_image(sample.rgb))
        save_npy(folder / "label_19" / f"{index}.npy", generated_labels(sample.semseg))
        categories = generated_labels(sample.semseg, category_of_train_id())
        save_npy(folder / "label_7" / f"{index}.npy", categories)
        save_npy(folder / LIBMTL_LABELS / f"{index}.npy", categories)
        with np.errstate(divide="ignore", invalid="ignore"):
            inverse = DISPARITY_SCALE / sample.depth.astype(np.float64)
        save_npy(folder / "depth" / f"{index}.npy", zero_invalid(inverse)[..., None])


def _decode_labels(path: Path, array: np.ndarray, size: tuple[int, int], num_classes: int) -> np.ndarray:
    return decode_labels(path, array, size, num_classes, IGNORE_INDEX)
