"""Dataset layout ``folders``: one folder per sample, ``<root>/<split>/<sample>/{image.png,label.png,depth.npy}``.

How many small datasets are shared: a sample is a folder one can copy, delete or look at alone, its files named by
what they hold. Splits are ``train``, ``val`` and ``test``; a split's samples are its sub-folders in name order, and
predictions are written under the sample's folder name. ``image.png`` is RGB; ``label.png`` holds class ids (8-bit,
255 = unlabelled); ``depth.npy`` metres as float32 H×W, 0 = invalid (read with mtl's .npy reader: it never
unpickles, and its errors name the file). A split may lack labels or depth (a test split without ground truth).

Classes: the 19 Cityscapes classes, as the generated world is labelled (a layout whose classes depend on the
dataset gives them per dataset in ``info_for(flags)`` and on its instances, as cityscapes_npy does).

`mtl data synth --layout folders` writes the generated street world in this layout (``write_generated``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from mtl.data.check import CheckResult, size_problems
from mtl.data.classes import CLASS_COLORS, CLASS_NAMES, IGNORE_INDEX
from mtl.data.formats import DataFormatError, atomic_write, read_rgb, read_semseg, write_semseg
from mtl.datasets import Codec, DatasetInfo, DatasetLayout, register_dataset
from mtl.datasets.npy import decode_depth, load_npy, save_npy, zero_invalid
from mtl.tasks.depth import DepthInfo
from mtl.tasks.semseg import SemsegInfo

if TYPE_CHECKING:
    from mtl.data.synth import Sample

SPLITS = ("train", "val", "test")
IMAGE = "image.png"
FILES = {"semseg": "label.png", "depth": "depth.npy"}  # each stored task's file in a sample folder
CITYSCAPES = SemsegInfo(CLASS_NAMES, CLASS_COLORS, IGNORE_INDEX)
DEPTH = DepthInfo(value_range=(0.1, 300.0))  # metres a valid depth may have: indoor scenes to far street scenes


def read_depth(path: Path) -> np.ndarray:
    array = load_npy(path)
    return decode_depth(path, array, array.shape[:2])  # NaN where 0 (the tasks' convention)


def write_depth(path: Path, metres: np.ndarray) -> None:
    save_npy(path, zero_invalid(np.asarray(metres, dtype=np.float32)))


@register_dataset("folders")
class FoldersLayout(DatasetLayout):
    info = DatasetInfo("folders", tuple(FILES), tuple(FILES), task_info={"semseg": CITYSCAPES, "depth": DEPTH})
    # mtl's MiniScapes label reader checks what this layout needs: 8-bit ids of the 19 classes or 255.
    codecs = {"semseg": Codec(".png", read_semseg, write_semseg), "depth": Codec(".npy", read_depth, write_depth)}
    synth_size = (256, 128)

    def __init__(self, root: str | Path) -> None:
        super().__init__(root)
        self.listed: dict[str, list[str]] = {}

    def splits(self) -> tuple[str, ...]:
        return tuple(split for split in SPLITS if (self.root / split).is_dir())

    def samples(self, split: str) -> list[str]:
        """The sample folders of ``split`` in name order, listed once (``read`` runs for every item)."""
        if split not in self.listed:
            folder = self.root / split
            if not folder.is_dir():
                raise FileNotFoundError(f"{folder}: split folder not found (expected <root>/{split}/<sample>/{IMAGE})")
            self.listed[split] = sorted(entry.name for entry in folder.iterdir() if entry.is_dir())
        return self.listed[split]

    def split_size(self, split: str) -> int:
        return len(self.samples(split))

    def sample_name(self, split: str, index: int) -> str:
        return self.samples(split)[index]

    def stored_tasks_in(self, split: str) -> tuple[str, ...]:
        """The tasks whose file some sample of ``split`` has (`mtl data check` names the samples that lack it)."""
        folders = [self.root / split / sample for sample in self.samples(split)]
        return tuple(task for task, name in FILES.items() if any((folder / name).is_file() for folder in folders))

    def read(self, split: str, index: int, tasks: Sequence[str]) -> dict[str, np.ndarray]:
        folder = self.root / split / self.samples(split)[index]
        rgb = read_rgb(folder / IMAGE)
        return {"rgb": rgb, **{task: self.load(folder / FILES[task], task, rgb.shape[:2]) for task in tasks}}

    def load(self, path: Path, task: str, size: tuple[int, int] | None) -> np.ndarray:
        """One ground-truth file, checked against its image's (height, width) when that is known."""
        array = self.codec(task).read(path)
        if size is not None and array.shape[:2] != size:
            found = "x".join(str(n) for n in array.shape[1::-1])
            raise DataFormatError(f"{path}: size {found} differs from its {IMAGE} {size[1]}x{size[0]}")
        return array

    def find_problems(self, progress: bool = True) -> CheckResult:
        """Every bad file on one line starting with its path: stray files, a sample lacking a file that others of
        its split have, files that do not decode, unknown class ids, a file whose size differs from its image's,
        an image whose size differs from most of the dataset's."""
        if not self.root.is_dir():
            return CheckResult([f"{self.root}: dataset root not found"])
        if not self.splits():
            return CheckResult([f"{self.root}: no {', '.join(SPLITS)} folder (expected the folders layout)"])
        result, sizes = CheckResult(), []
        for split in self.splits():
            folder, tasks = self.root / split, self.stored_tasks_in(split)
            expected = (IMAGE, *(FILES[task] for task in tasks))
            strays = [entry for entry in sorted(folder.iterdir()) if not entry.is_dir()]
            result.problems += [f"{entry}: stray file (expected one folder per sample)" for entry in strays]
            if not self.samples(split):
                result.problems.append(f"{folder}: no sample folder")
            for name in self.samples(split):
                sample, size = folder / name, None
                for entry in sorted(sample.iterdir()):
                    if entry.name not in expected:
                        kind = "folder" if entry.is_dir() else "file"
                        result.problems.append(f"{entry}: stray {kind} (expected {', '.join(expected)})")
                try:
                    size = read_rgb(sample / IMAGE).shape[:2]
                    sizes.append((sample / IMAGE, size[::-1]))
                except DataFormatError as exc:  # missing files included: the readers name them
                    result.problems.append(str(exc))
                for task in tasks:
                    try:
                        self.load(sample / FILES[task], task, size)
                    except DataFormatError as exc:
                        result.problems.append(str(exc))
                result.files_checked += len(expected)
        result.problems += size_problems(sizes)
        return result

    @classmethod
    def write_generated(cls, root: Path, split: str, index: int, sample: Sample) -> None:
        # Zero-padded names: name order is index order (for a million samples). Each file is written under a
        # temporary name, then renamed: an interrupted run leaves no half-written file.
        folder = root / split / f"{index:06d}"
        atomic_write(lambda path: Image.fromarray(sample.rgb).save(path), folder / IMAGE)
        atomic_write(lambda path: write_semseg(path, sample.semseg), folder / FILES["semseg"])
        write_depth(folder / FILES["depth"], sample.depth)
