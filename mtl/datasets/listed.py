"""What the ASTMT / MTL-PyTorch benchmark copies share (``nyud_mt``, ``pascal_context``): samples named by split lists.

A split is a text file of sample ids, one a line (``gt_sets/<split>.txt`` in NYUD, ``ImageSets/Context/<split>.txt``
in PASCAL); a sample's files are ``<folder>/<id><suffix>`` in one folder per modality, shared by all splits. The
index of a sample is its line in the list. A layout module subclasses ``ListedLayout``, says where each stored
task's file of a sample is (``task_path``) and how it decodes (``decode``: a one-line ``DataFormatError`` naming
the file for anything wrong), and the check (``find_problems``) follows from that.

Also here: the semantic edges of the PASCAL copy (Laplacian of the label map, thinned), used by both generated
copies, and the split-list writer the generators share.
"""

from __future__ import annotations

import fcntl
from abc import abstractmethod
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import ClassVar

import numpy as np
from PIL import Image
from scipy import ndimage

from mtl.data import formats
from mtl.data.check import CheckResult, size_problems
from mtl.data.formats import DataFormatError
from mtl.data.thinning import thin
from mtl.datasets.base import DatasetLayout

SPLITS = ("train", "val")


# ----------------------------------------------------------------------------------------- edges
def label_edges(labels: np.ndarray) -> np.ndarray:
    """Edges of a label map as MTL-PyTorch computes PASCAL-Context's: pixels where the 4-neighbour Laplacian of
    the ids is not 0 (OpenCV's ``Laplacian`` with its default 3-tap kernel and mirrored border, i.e. SciPy's
    ``laplace`` with mode ``mirror``), thinned. uint8, 1 = boundary."""
    laplacian = ndimage.laplace(np.asarray(labels, dtype=np.float64), mode="mirror")
    return thin(laplacian != 0).astype(np.uint8)


# ------------------------------------------------------------------------------------------ files
def read_png_array(path: Path, what: str, modes: Sequence[str]) -> np.ndarray:
    """A PNG's values, its mode one of ``modes``; one-line errors naming the file."""
    image = formats.open_image(path)
    if image.format != "PNG":
        raise DataFormatError(f"{path}: is a {image.format} file, expected a PNG")
    if image.mode not in modes:
        raise DataFormatError(f"{path}: {what} image has mode {image.mode!r}, expected {' or '.join(map(repr, modes))}")
    return np.array(image)


def read_jpeg_rgb(path: Path) -> np.ndarray:
    return formats.read_rgb(path)


def require_size(path: Path, what: str, array: np.ndarray, size: tuple[int, int]) -> None:
    if array.shape[:2] != tuple(size):
        raise DataFormatError(
            f"{path}: {what} is {array.shape[1]}x{array.shape[0]}, its image {size[1]}x{size[0]}"
        )


def add_to_split_list(path: Path, sample_id: str) -> None:
    """Add ``sample_id`` to a split list, kept sorted; locked, as the generator's workers write concurrently."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        handle.seek(0)
        ids = set(handle.read().split())
        ids.add(sample_id)
        handle.seek(0)
        handle.truncate()
        handle.write("".join(f"{i}\n" for i in sorted(ids)))


def write_png(path: Path, array: np.ndarray) -> None:
    formats.atomic_write(lambda p: Image.fromarray(array).save(p, format="PNG"), path)


def generated_id(split: str, index: int) -> str:
    """The id of a generated sample: its split and index, zero-padded so that the sorted list is in index order."""
    return f"{split}_{index:06d}"


# ------------------------------------------------------------------------------------------ layout
class ListedLayout(DatasetLayout):
    """Split lists of ids, one folder per modality (see the module docstring)."""

    LIST_FOLDER: ClassVar[str]  # where <split>.txt are
    IMAGE_FOLDER: ClassVar[str]
    IMAGE_SUFFIX: ClassVar[str] = ".jpg"

    def list_path(self, split: str) -> Path:
        return self.root / self.LIST_FOLDER / f"{split}.txt"

    @cached_property
    def _ids(self) -> dict[str, list[str]]:
        out = {}
        for split in SPLITS:
            path = self.list_path(split)
            if path.is_file():
                out[split] = path.read_text().split()
        return out

    def ids(self, split: str) -> list[str]:
        if split not in self._ids:
            raise FileNotFoundError(f"{self.list_path(split)}: split list not found")
        return self._ids[split]

    def splits(self) -> tuple[str, ...]:
        return tuple(s for s in SPLITS if s in self._ids)

    def split_size(self, split: str) -> int:
        return len(self.ids(split))

    def sample_name(self, split: str, index: int) -> str:
        return self.ids(split)[index]

    def image_path(self, sample_id: str) -> Path:
        return self.root / self.IMAGE_FOLDER / f"{sample_id}{self.IMAGE_SUFFIX}"

    @abstractmethod
    def task_folders(self) -> dict[str, tuple[str, str]]:
        """Stored task → (folder, suffix) of its files (the folders whose presence says a task is there)."""

    @abstractmethod
    def task_path(self, task: str, sample_id: str) -> Path:
        """The file holding ``task``'s ground truth of a sample."""

    @abstractmethod
    def decode(self, task: str, sample_id: str, size: tuple[int, int]) -> np.ndarray:
        """``task``'s ground truth of a sample (image size ``size``) in the task's convention."""

    def stored_tasks_in(self, split: str) -> tuple[str, ...]:
        folders = self.task_folders()
        return tuple(t for t in self.info.stored_tasks if t in folders and (self.root / folders[t][0]).is_dir())

    def read(self, split: str, index: int, tasks: Sequence[str]) -> dict[str, np.ndarray]:
        sample_id = self.ids(split)[index]
        rgb = read_jpeg_rgb(self.image_path(sample_id))
        out = {"rgb": rgb}
        for task in tasks:
            out[task] = self.decode(task, sample_id, rgb.shape[:2])
        return out

    def check_notes(self) -> list[str]:
        """What the check says about the copy besides problems (e.g. a generated copy's missing tasks)."""
        return []

    def find_problems(self, progress: bool = True) -> CheckResult:
        """Every bad file on one line starting with its path: a missing split list, a list naming a sample whose
        image or a stored task's file is missing, files that do not decode or hold values out of range, a file
        whose size differs from its image; files with another suffix in a modality folder (stray files).
        Files named by no split list are one warning per folder (the released copies hold a few)."""
        root = self.root
        if not root.is_dir():
            return CheckResult([f"{root}: dataset root not found"])
        result = CheckResult(notes=self.check_notes())
        splits = self.splits()
        if not splits:
            result.problems.append(f"{root / self.LIST_FOLDER}: no split list (expected {', '.join(f'{s}.txt' for s in SPLITS)})")
            return result
        tasks = self.stored_tasks_in(splits[0])
        listed: set[str] = set()
        sizes: list[tuple[Path, tuple[int, int]]] = []
        for split in splits:
            ids = self.ids(split)
            duplicates = sorted({i for i in ids if ids.count(i) > 1}) if len(set(ids)) != len(ids) else []
            if duplicates:
                result.problems.append(f"{self.list_path(split)}: ids listed twice: {', '.join(duplicates[:5])}")
            listed.update(ids)
            for sample_id in ids:
                image = self.image_path(sample_id)
                if not image.is_file():
                    result.problems.append(f"{image}: missing file (named in {self.list_path(split)})")
                    size = None
                else:
                    try:
                        size = read_jpeg_rgb(image).shape[:2]
                        sizes.append((image, (size[1], size[0])))
                    except DataFormatError as exc:
                        result.problems.append(str(exc))
                        size = None
                    result.files_checked += 1
                for task in tasks:
                    path = self.task_path(task, sample_id)
                    if not path.is_file():
                        result.problems.append(f"{path}: missing file (named in {self.list_path(split)})")
                        continue
                    result.files_checked += 1
                    if size is None:
                        continue
                    try:
                        self.decode(task, sample_id, size)
                    except (DataFormatError, OSError, ValueError) as exc:
                        result.problems.append(str(exc).splitlines()[0])
        for folder, suffix in self.check_folders(tasks):
            self._stray(root / folder, suffix, listed, result)
        result.problems += size_problems(sizes)
        return result

    def _stray(self, folder: Path, suffix: str, listed: set[str], result: CheckResult) -> None:
        if not folder.is_dir():
            return
        unlisted = []
        for path in sorted(folder.iterdir()):
            if path.is_dir() or not path.name.endswith(suffix):
                result.problems.append(f"{path}: stray {'folder' if path.is_dir() else 'file'} (expected <id>{suffix})")
            elif path.name[: -len(suffix)] not in listed:
                unlisted.append(path.name)
        if unlisted:
            result.warnings.append(
                f"{folder}: warning: {len(unlisted)} file(s) named in no split list, e.g. {', '.join(unlisted[:3])}"
            )

    def check_folders(self, tasks: Sequence[str]) -> list[tuple[str, str]]:
        """The folders scanned for stray and unlisted files, with their files' suffix."""
        return sorted({(self.IMAGE_FOLDER, self.IMAGE_SUFFIX), *(self.task_folders()[t] for t in tasks)})
