"""PASCAL-Context as ASTMT and MTL-PyTorch distribute it for multi-task learning (``PASCAL_MT``): five tasks.

Files (``<id>`` as ``2008_000002``), read as MTL-PyTorch's ``data/pascal_context.py`` reads them:

- ``JPEGImages/<id>.jpg``; splits ``ImageSets/Context/{train,val}.txt`` (4998 / 5105 ids).
- semseg: ``semseg/VOC12/<id>.png``, else ``semseg/pascal-context/<id>.png`` (mode L or P): the 21 classes
  background + the 20 VOC classes, 255 = ignored (VOC's object borders). This is the only class set the
  reference trains and evaluates (its ``SemsegMeter``: 20 classes + background); the 59- and 459-class
  Context sets are not read.
- edges: from ``pascal-context/trainval/<id>.mat`` (variable ``LabelMap``, the 459 Context classes): pixels
  where the 4-neighbour Laplacian of the ids is not 0, thinned (``label_edges``); uint8, 1 = boundary.
- human_parts: ``human_parts/<id>.mat`` (PASCAL-Part's ``anno``): the part masks of every person object
  (class 15) with parts, grouped into head, torso, upper arm, lower arm, upper leg, lower leg (1..6; the
  reference's 6-part table ``PART_GROUP``), 0 elsewhere; later parts overwrite earlier ones. An image with no
  part pixel (no person, or persons without part annotations) is all 255 (the reference's ``AddIgnoreRegions``).
  Whether an image has people is decided from the .mat itself; the reference caches the same answer in
  ``ImageSets/Parts/<split>.txt``, which is not needed here.
- saliency: ``sal_distill/<id>.png`` (mode L), 1 where value/255 > 0.5.
- normals: ``normals_distill/<id>.png`` (mode RGB) → 2·v/255 − 1 per channel (not re-normalised), valid only on
  pixels whose Context class (``LabelMap``) is one of NYUD's classes (``NORMALS_CLASSES``, the reference's
  ``normals_valid_classes``), NaN elsewhere.

Sizes must match the image (the reference resizes silently). Predictions: semseg and human_parts PNGs of the
predicted ids, normals an RGB PNG of round((n + 1)·255/2), as the reference writes them; edges and saliency use
the codecs their task modules add.

`mtl data synth --layout pascal_context` writes the generated street world in these files: JPEGs, semseg in
``semseg/pascal-context`` as the 19 trainIds (255 ignore), ``LabelMap`` = trainId + 1 (0 on the ignored ego car),
saliency 255 on vehicles and people (trainIds 11–18), normals as RGB codes with (0, 0, 0) = invalid (its
normals are masked by those codes, not by Context classes), no human_parts (the generator draws no body parts).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
from mtl.datasets.nyud_mt import generated_copy, voc_colormap
from mtl.tasks.edges import EdgesInfo
from mtl.tasks.semseg import SemsegInfo

if TYPE_CHECKING:
    from mtl.data.synth.sample import Sample

IGNORE_INDEX = 255
VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip
PART_NAMES = ("background", "head", "torso", "upper arm", "lower arm", "upper leg", "lower leg")
PERSON_CLASS = 15  # PASCAL's class index of person
# PASCAL-Part's person part names → the 6 groups (MTL-PyTorch's HUMAN_PART[6])
PART_GROUP = {
    "hair": 1, "head": 1, "lear": 1, "lebrow": 1, "leye": 1, "mouth": 1, "nose": 1, "rear": 1, "rebrow": 1,
    "reye": 1, "neck": 2, "torso": 2, "luarm": 3, "ruarm": 3, "lhand": 4, "llarm": 4, "rhand": 4, "rlarm": 4,
    "luleg": 5, "ruleg": 5, "lfoot": 6, "llleg": 6, "rfoot": 6, "rlleg": 6,
}  # fmt: skip
# Context class ids (LabelMap values) where distilled normals count: the Context classes whose names are NYUD
# classes, plus tvmonitor (MTL-PyTorch: nyu_classes.json ∩ context_classes.json, 'unknown' excluded).
NORMALS_CLASSES = frozenset((
    3, 4, 6, 9, 10, 11, 13, 15, 17, 18, 22, 23, 29, 30, 33, 34, 36, 37, 38, 39, 41, 43, 46, 49, 50, 51, 53, 55, 56,
    59, 61, 62, 65, 66, 68, 69, 72, 73, 78, 83, 84, 85, 87, 88, 95, 96, 101, 104, 105, 107, 111, 113, 115, 122,
    124, 135, 141, 142, 143, 146, 150, 154, 157, 158, 159, 165, 172, 174, 181, 183, 184, 191, 193, 195, 197, 199,
    202, 213, 215, 216, 219, 220, 223, 225, 228, 230, 232, 233, 238, 239, 242, 243, 246, 250, 251, 252, 255, 260,
    261, 263, 269, 272, 273, 275, 281, 283, 284, 285, 286, 287, 288, 290, 291, 292, 293, 295, 304, 307, 309, 310,
    314, 315, 319, 323, 329, 330, 331, 336, 342, 345, 349, 350, 351, 352, 355, 357, 368, 370, 371, 374, 379, 380,
    383, 384, 397, 401, 403, 405, 407, 408, 411, 412, 413, 414, 417, 419, 421, 423, 427, 429, 430, 432, 440, 441,
    442, 443, 444, 446, 454, 457,
))  # fmt: skip
SALIENT_TRAIN_IDS = tuple(range(11, 19))  # generated copy: person, rider, car, truck, bus, train, motorcycle, bicycle
TASKS = ("semseg", "human_parts", "saliency", "normals", "edges")
CONTEXT_LABELS = "pascal-context/trainval"
SEMSEG_SOURCES = ("VOC12", "pascal-context")  # semseg/<source>/<id>.png, the first present is read
FOLDERS = {"semseg": ("semseg", ".png"), "edges": (CONTEXT_LABELS, ".mat"), "human_parts": ("human_parts", ".mat"),
           "saliency": ("sal_distill", ".png"), "normals": ("normals_distill", ".png")}  # fmt: skip


def _info(generated: bool) -> DatasetInfo:
    names, colors = (CLASS_NAMES, CLASS_COLORS) if generated else (VOC_CLASSES, voc_colormap(21))
    return DatasetInfo(
        name="pascal_context",
        stored_tasks=TASKS,
        default_tasks=TASKS,
        task_info={
            "semseg": SemsegInfo(tuple(names), tuple(colors), IGNORE_INDEX),
            "human_parts": SemsegInfo(PART_NAMES, voc_colormap(len(PART_NAMES)), IGNORE_INDEX),
            "edges": EdgesInfo(0.0075),
        },
        extra={"generated": generated},
    )


INFOS = {False: _info(False), True: _info(True)}


def _read_ids(path: Path) -> np.ndarray:
    return read_png_array(path, "prediction", ("L", "P"))


def _write_ids(path: Path, ids: np.ndarray) -> None:
    Image.fromarray(np.asarray(ids, dtype=np.uint8), mode="L").save(path, format="PNG")


CODECS = {
    "semseg": Codec(".png", _read_ids, _write_ids),
    "human_parts": Codec(".png", _read_ids, _write_ids),
    "normals": Codec(".png", formats.read_normals, formats.write_normals),
}


def load_mat(path: Path, variable: str) -> Any:
    """One variable of a .mat file; one-line errors naming the file."""
    if not path.is_file():
        raise DataFormatError(f"{path}: missing file")
    try:
        content = sio.loadmat(path)
    except Exception as exc:  # scipy raises many types for a bad file
        raise DataFormatError(f"{path}: cannot read .mat ({type(exc).__name__}: {exc})") from exc
    if variable not in content:
        raise DataFormatError(f"{path}: no variable {variable!r} (has {', '.join(k for k in content if not k.startswith('__'))})")
    return content[variable]


def read_label_map(path: Path, size: tuple[int, int]) -> np.ndarray:
    labels = np.asarray(load_mat(path, "LabelMap"))
    if labels.ndim != 2 or labels.dtype.kind not in "iuf":
        raise DataFormatError(f"{path}: LabelMap has shape {labels.shape} and dtype {labels.dtype}, expected H×W ids")
    require_size(path, "LabelMap", labels, size)
    return labels


def decode_human_parts(path: Path, size: tuple[int, int]) -> np.ndarray:
    """The 6 part groups of the people of a PASCAL-Part ``anno`` (fields by position, as the reference reads them:
    anno → objects; object → class, class_ind, mask, parts; part → part_name, mask); all 255 without a part pixel."""
    anno = load_mat(path, "anno")
    target = np.zeros(size, dtype=np.uint8)
    try:
        objects = anno[0][0][1][0]
        for obj in objects:
            if int(np.asarray(obj[1]).flat[0]) != PERSON_CLASS or len(obj[3]) == 0:
                continue
            for part in obj[3][0]:
                name = str(np.asarray(part[0]).flat[0])
                if name not in PART_GROUP:
                    raise DataFormatError(f"{path}: unknown person part {name!r}")
                mask = np.asarray(part[1]).astype(bool)
                require_size(path, f"mask of part {name!r}", mask, size)
                target[mask] = PART_GROUP[name]
    except (IndexError, TypeError, ValueError) as exc:
        if isinstance(exc, DataFormatError):
            raise
        raise DataFormatError(f"{path}: not a PASCAL-Part annotation ({type(exc).__name__}: {exc})") from exc
    if not target.any():
        target[:] = IGNORE_INDEX
    return target


@register_dataset("pascal_context")
class PascalContextLayout(ListedLayout):
    info = INFOS[False]
    codecs = CODECS
    LIST_FOLDER = "ImageSets/Context"
    eval_protocol = "mtl_pytorch"  # the benchmark's tables (MTI-Net, MTL-PyTorch): docs/PROTOCOLS.md
    IMAGE_FOLDER = "JPEGImages"
    synth_size = (320, 240)  # PASCAL images are about 500×375
    synth_splits = ("train", "val")

    def __init__(self, root: str | Path) -> None:
        super().__init__(root)
        self.info = INFOS[generated_copy(root, "pascal_context")]
        self._last_labels: tuple[str, np.ndarray] | None = None  # edges and normals of one sample read it once

    def label_map(self, sample_id: str, size: tuple[int, int]) -> np.ndarray:
        """The sample's Context ``LabelMap`` (the edges' source and the normals' mask)."""
        if self._last_labels is None or self._last_labels[0] != sample_id:
            self._last_labels = (sample_id, read_label_map(self.task_path("edges", sample_id), size))
        require_size(self.task_path("edges", sample_id), "LabelMap", self._last_labels[1], size)
        return self._last_labels[1]

    @classmethod
    def info_for(cls, flags: argparse.Namespace) -> DatasetInfo:
        return INFOS[generated_copy(getattr(flags, "dataset_root", None), "pascal_context")]

    def task_folders(self) -> dict[str, tuple[str, str]]:
        return FOLDERS

    def check_folders(self, tasks: Sequence[str]) -> list[tuple[str, str]]:
        """semseg's files are in its two sub-folders (VOC12's first, then pascal-context's)."""
        folders = [entry for entry in super().check_folders(tasks) if entry[0] != "semseg"]
        if "semseg" in tasks:
            folders += [(f"semseg/{source}", ".png") for source in SEMSEG_SOURCES]
        return folders

    def task_path(self, task: str, sample_id: str) -> Path:
        if task == "semseg":
            paths = [self.root / "semseg" / source / f"{sample_id}.png" for source in SEMSEG_SOURCES]
            return next((path for path in paths if path.is_file()), paths[-1])
        folder, suffix = FOLDERS[task]
        return self.root / folder / f"{sample_id}{suffix}"

    def decode(self, task: str, sample_id: str, size: tuple[int, int]) -> np.ndarray:
        path = self.task_path(task, sample_id)
        if task == "semseg":
            ids = read_png_array(path, "semseg", ("L", "P"))
            require_size(path, "semseg", ids, size)
            num_classes = self.info.task_info["semseg"].num_classes
            bad = np.unique(ids[(ids >= num_classes) & (ids != IGNORE_INDEX)])
            if bad.size:
                raise DataFormatError(f"{path}: semseg holds values {bad[:5].tolist()} outside 0..{num_classes - 1} and 255")
            return ids.astype(np.uint8)
        if task == "edges":
            return label_edges(self.label_map(sample_id, size))
        if task == "human_parts":
            return decode_human_parts(path, size)
        if task == "saliency":
            values = read_png_array(path, "saliency", ("L",))
            require_size(path, "saliency", values, size)
            return (values.astype(np.float32) / 255.0 > 0.5).astype(np.uint8)
        codes = read_png_array(path, "normals", ("RGB",))
        require_size(path, "normals", codes, size)
        normals = 2.0 * codes.astype(np.float32) / 255.0 - 1.0
        if self.info.extra["generated"]:
            valid = codes.any(axis=-1)
        else:
            valid = np.isin(self.label_map(sample_id, size), tuple(NORMALS_CLASSES))
        return np.where(valid[..., None], normals, np.float32(np.nan)).astype(np.float32)

    def check_notes(self) -> list[str]:
        if self.info.extra["generated"]:
            return [f"{self.root}: a generated copy (synth.json): 19 street classes, no human_parts (the generator "
                    "draws no body parts)"]  # fmt: skip
        return []

    @classmethod
    def write_generated(cls, root: Path, split: str, index: int, sample: Sample) -> None:
        sample_id = generated_id(split, index)
        formats.atomic_write(lambda p: formats.write_rgb(p, sample.rgb), root / "JPEGImages" / f"{sample_id}.jpg")
        write_png(root / "semseg" / "pascal-context" / f"{sample_id}.png", sample.semseg.astype(np.uint8))
        labels = np.where(sample.semseg == IGNORE_INDEX, 0, sample.semseg.astype(np.int64) + 1).astype(np.uint16)
        mat = root / CONTEXT_LABELS / f"{sample_id}.mat"
        mat.parent.mkdir(parents=True, exist_ok=True)
        formats.atomic_write(lambda p: sio.savemat(p, {"LabelMap": labels}), mat)
        salient = np.isin(sample.semseg, SALIENT_TRAIN_IDS).astype(np.uint8) * 255
        write_png(root / "sal_distill" / f"{sample_id}.png", salient)
        write_png(root / "normals_distill" / f"{sample_id}.png", formats.encode_normals(sample.normals))
        add_to_split_list(root / "ImageSets" / "Context" / f"{split}.txt", sample_id)
