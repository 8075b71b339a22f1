"""What the MTAN-style pre-processed layouts share (``cityscapes_npy``, ``nyuv2``): ``<root>/<split>/<folder>/<i>.npy``.

Splits ``train`` and ``val``; ``<i>`` from 0 without padding, the same indices in every folder. Each file is
checked on reading, and every problem is a ``DataFormatError`` whose one-line message starts with the file:
an .npy that does not load (truncated, pickled objects, an .npz archive), a wrong dtype (the arrays are
floats; labels may also be integers), a wrong shape (image H×W×3; labels H×W; depth H×W×1, H×W accepted;
normals H×W×3, with H×W those of the sample's image), non-finite values, image values outside [0, 1], labels
that are not whole numbers in 0..n−1 or −1, negative depth. Decoded arrays follow the tasks' conventions:
RGB uint8 (round(255·x)), class ids uint8 with −1 → the ignore index, depth float32 with 0 → NaN, normals
float32 as stored with all-zero → NaN (not re-normalised: see decode_normals).

A layout module subclasses ``NpyLayout``, sets ``FOLDERS`` (task → folder) and lists its tasks in
``info.stored_tasks``. How each task's array is held is the family's codec table (``NpyCodec``: labels, depth,
normals below); a task plug-in adds its own with ``NpyLayout.add_codec`` for every .npy layout. Predictions
are written as .npy in the same conventions (labels float32 with −1, depth H×W×1, normals H×W×3).

The generated world is written in these layouts as image = RGB/255 (float32, so reading rounds back to the exact
RGB), labels float32 with −1 = ignore, float maps with 0 = invalid (``write_generated`` of each layout).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from tqdm import tqdm

from mtl.data.check import CheckResult, IndexedGroup, count_indexed_files, scan_indexed_group, size_problems
from mtl.data.formats import DataFormatError, atomic_write
from mtl.datasets.base import Codec, DatasetLayout

SPLITS = ("train", "val")
IMAGE = "image"
VALUE_TOLERANCE = 1e-3  # image values may stray this far outside [0, 1] (float rounding of a conversion)


# ------------------------------------------------------------------------------------------- decoding
def load_npy(path: Path) -> np.ndarray:
    """The array of an .npy file, never unpickling anything; one-line errors naming the file."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"{path}: missing file")
    try:
        array = np.load(path, allow_pickle=False)
    except Exception as exc:  # truncated, not an .npy, object arrays: numpy raises many types
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataFormatError(f"{path}: cannot read .npy ({reason})") from exc
    if not isinstance(array, np.ndarray):  # an .npz archive under an .npy name
        array.close()
        raise DataFormatError(f"{path}: is an .npz archive, expected one array saved with numpy.save")
    return array


def _require_float(path: Path, what: str, array: np.ndarray, integers: bool = False) -> None:
    ok = array.dtype.kind == "f" or (integers and array.dtype.kind in "iu")
    if not ok:
        expected = "floats or integers" if integers else "floats"
        raise DataFormatError(f"{path}: {what} has dtype {array.dtype}, expected {expected}")


def _require_shape(path: Path, what: str, array: np.ndarray, expected: Sequence[tuple[int, ...]]) -> None:
    if array.shape not in [tuple(e) for e in expected]:
        raise DataFormatError(f"{path}: {what} has shape {array.shape}, expected {tuple(expected[0])}")


def _require_finite(path: Path, what: str, array: np.ndarray) -> None:
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise DataFormatError(f"{path}: {what} holds NaN or infinite values")


def decode_image(path: Path, array: np.ndarray) -> np.ndarray:
    """H×W×3 floats in [0, 1] → H×W×3 uint8 RGB."""
    _require_float(path, "image", array)
    if array.ndim != 3 or array.shape[-1] != 3:
        raise DataFormatError(f"{path}: image has shape {array.shape}, expected (H, W, 3)")
    _require_finite(path, "image", array)
    lo, hi = float(array.min(initial=0.0)), float(array.max(initial=0.0))
    if lo < -VALUE_TOLERANCE or hi > 1 + VALUE_TOLERANCE:
        raise DataFormatError(f"{path}: image values span [{lo:g}, {hi:g}], expected [0, 1]")
    return np.round(np.clip(array.astype(np.float64), 0.0, 1.0) * 255.0).astype(np.uint8)


def decode_labels(path: Path, array: np.ndarray, size: tuple[int, int], num_classes: int, ignore: int) -> np.ndarray:
    """H×W class ids (integers or whole floats) 0..n−1, −1 = ignore → uint8 with the ignore index."""
    _require_float(path, "label", array, integers=True)
    _require_shape(path, "label", array, [size])
    _require_finite(path, "label", array)
    values = np.unique(array)
    bad = values[(values != np.round(values)) | (values < -1) | (values >= num_classes)]
    if bad.size:
        shown = ", ".join(f"{v:g}" for v in bad[:5].tolist())
        raise DataFormatError(f"{path}: label holds values [{shown}] outside 0..{num_classes - 1} and -1")
    ids = array.astype(np.int64)
    return np.where(ids < 0, ignore, ids).astype(np.uint8)


def decode_depth(path: Path, array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """H×W×1 (or H×W) non-negative floats, 0 = invalid → H×W float32, NaN where invalid."""
    _require_float(path, "depth", array)
    _require_shape(path, "depth", array, [(*size, 1), size])
    _require_finite(path, "depth", array)
    depth = array.reshape(size).astype(np.float32)
    if (depth < 0).any():
        raise DataFormatError(f"{path}: depth holds negative values (min {float(depth.min()):g}); 0 marks invalid pixels")
    return np.where(depth > 0, depth, np.float32(np.nan)).astype(np.float32)


def decode_normals(path: Path, array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """H×W×3 floats, all-zero = invalid → H×W×3 float32 as stored, NaN where invalid. Not re-normalised here: the
    evaluation protocol decides (the course's re-normalises; MTAN's and LibMTL's code use the stored vector), and
    the normals loss uses unit vectors."""
    _require_float(path, "normal", array)
    _require_shape(path, "normal", array, [(*size, 3)])
    _require_finite(path, "normal", array)
    valid = np.any(array != 0, axis=-1, keepdims=True)
    return np.where(valid, array, np.nan).astype(np.float32)


# ----------------------------------------------------------------------------------------- the codecs
def zero_invalid(values: np.ndarray) -> np.ndarray:
    """float32 with 0 where a value is not finite (NaN = invalid in the tasks' convention)."""
    return np.where(np.isfinite(values), values, 0.0).astype(np.float32)


def encode_labels(ids: np.ndarray, classes: Any) -> np.ndarray:
    """Class ids → float32 labels with −1 where the ids are the ignore index."""
    ids = np.asarray(ids)
    return np.where(ids == classes.ignore_index, -1.0, ids.astype(np.float32)).astype(np.float32)


@dataclass(frozen=True)
class NpyCodec:
    """How one task's array is held in the .npy files of these layouts: ``decode(path, array, image size, the
    task's facts)`` checks a loaded array and returns the task's array (errors name the file); ``encode(value,
    the task's facts)`` is the array saved for a prediction."""

    decode: Callable[[Path, np.ndarray, tuple[int, int], Any], np.ndarray]
    encode: Callable[[np.ndarray, Any], np.ndarray]


LABELS = NpyCodec(
    lambda path, array, size, classes: decode_labels(path, array, size, classes.num_classes, classes.ignore_index),
    encode_labels,
)
DEPTH = NpyCodec(
    lambda path, array, size, _: decode_depth(path, array, size),
    lambda depth, _: zero_invalid(np.asarray(depth, dtype=np.float32))[..., None],
)
NORMALS = NpyCodec(
    lambda path, array, size, _: decode_normals(path, array, size),
    lambda normals, _: zero_invalid(np.asarray(normals, dtype=np.float32)),
)


def save_npy(path: Path, array: np.ndarray) -> None:
    """One array as ``path`` (written under a temporary name, then renamed)."""
    atomic_write(lambda p: np.save(p, np.ascontiguousarray(array)), path)


def generated_image(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB → float32 in [0, 1], as the generated world stores it (reading rounds back to the same RGB)."""
    return (rgb.astype(np.float32) / np.float32(255.0)).astype(np.float32)


def generated_labels(train_ids: np.ndarray, table: np.ndarray | None = None) -> np.ndarray:
    """trainIds (255 = ignore) → float32 labels with −1 = ignore, through ``table`` (256 entries) when given."""
    if table is not None:
        return table[train_ids]
    return np.where(train_ids == 255, -1.0, train_ids.astype(np.float32)).astype(np.float32)


# ------------------------------------------------------------------------------------------ the layout
class NpyLayout(DatasetLayout):
    """``<root>/<split>/<folder>/<i>.npy`` with an ``image`` folder and one folder per stored task (``folders``)."""

    FOLDERS: ClassVar[Mapping[str, str]]  # task → folder, in the layout's task order
    codecs = {"semseg": LABELS, "depth": DEPTH, "normals": NORMALS}

    @property
    def folders(self) -> Mapping[str, str]:
        """The folder of each stored task (a task without one in ``FOLDERS`` is in a folder named after it)."""
        return {task: self.FOLDERS.get(task, task) for task in self.info.stored_tasks}

    @classmethod
    def codec(cls, task: str) -> Codec:
        """The .npy codec of ``task`` with the layout's facts (e.g. its class count) for its predictions."""
        entry = cls.codec_entry(task)
        if not isinstance(entry, NpyCodec):
            return entry
        facts = cls.info.task_info.get(task)

        def read(path: Path) -> np.ndarray:
            array = load_npy(path)
            return entry.decode(path, array, array.shape[:2], facts)

        def write(path: Path, value: np.ndarray) -> None:
            np.save(path, np.ascontiguousarray(entry.encode(value, facts)))

        return Codec(".npy", read, write)

    def splits(self) -> tuple[str, ...]:
        return tuple(s for s in SPLITS if (self.root / s / IMAGE).is_dir())

    def split_size(self, split: str) -> int:
        folder = self.root / split / IMAGE
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: split folder not found (expected <root>/{split}/{IMAGE}/<i>.npy)")
        return count_indexed_files(folder, ".npy")

    def stored_tasks_in(self, split: str) -> tuple[str, ...]:
        return tuple(t for t, folder in self.folders.items() if (self.root / split / folder).is_dir())

    def require_ground_truth(self, split: str) -> tuple[str, ...]:
        tasks = self.tasks_in(split)
        if not tasks:
            raise FileNotFoundError(f"{self.root / split}: no {', '.join(self.folders.values())} folder")
        return tasks

    def path(self, split: str, folder: str, index: int) -> Path:
        return self.root / split / folder / f"{index}.npy"

    def decoder(self, task: str) -> Callable[[Path, np.ndarray, tuple[int, int]], np.ndarray]:
        """``task``'s ground truth: (path, loaded array, image size) → its array, through its codec."""
        entry, facts = self.codec_entry(task), self.info.task_info.get(task)
        return lambda path, array, size: entry.decode(path, array, size, facts)

    def read(self, split: str, index: int, tasks: Sequence[str]) -> dict[str, np.ndarray]:
        image_path = self.path(split, IMAGE, index)
        rgb = decode_image(image_path, load_npy(image_path))
        out = {"rgb": rgb}
        for task in tasks:
            path = self.path(split, self.folders[task], index)
            out[task] = self.decoder(task)(path, load_npy(path), rgb.shape[:2])
        return out

    # ---------------------------------------------------------------------------------- the check
    def folder_decoders(self, split: str) -> dict[str, Callable[[Path, np.ndarray, tuple[int, int]], np.ndarray]]:
        """Every folder to check in a split, with how its files decode (each stored task's, by default)."""
        return {folder: self.decoder(task) for task, folder in self.folders.items()}

    def required_folders(self, split: str) -> tuple[str, ...]:
        return (IMAGE, *self.folders.values())

    def find_problems(self, progress: bool = True) -> CheckResult:
        """Every bad file on one line starting with its path: missing folders and files (index gaps), stray
        files and folders, names that are not ``<i>.npy``, files that do not load, and every decoding error
        above; sizes: each file against its image, the images against the dataset's most common size.
        A float map (depth, normals) without a valid pixel is a warning."""
        root = self.root
        if not root.is_dir():
            return CheckResult([f"{root}: dataset root not found"])
        if not any((root / s).is_dir() for s in SPLITS):
            return CheckResult([f"{root}: no {' or '.join(SPLITS)} folder (expected the {self.info.name} layout)"])
        result = CheckResult()
        sizes: list[tuple[Path, tuple[int, int]]] = []
        for split in SPLITS:
            if not (root / split).is_dir():
                continue
            decoders = self.folder_decoders(split)
            task_of = {folder: task for task, folder in self.folders.items()}
            required = self.required_folders(split)
            optional = tuple(f for f in decoders if f not in required)
            group = IndexedGroup(root / split, {f: ".npy" for f in (IMAGE, *decoders)}, required, optional)
            files: list[tuple[Path, str]] = []
            scan_indexed_group(group, result.problems, files)
            by_index: dict[int, dict[str, Path]] = {}
            for path, folder in files:
                by_index.setdefault(int(path.stem), {})[folder] = path
            for index in tqdm(sorted(by_index), desc=f"checking {split}", unit="sample", file=sys.stderr,
                              delay=2.0, disable=not progress):
                sample = by_index[index]
                result.files_checked += len(sample)
                size = None
                if IMAGE in sample:
                    try:
                        rgb = decode_image(sample[IMAGE], load_npy(sample[IMAGE]))
                        size = rgb.shape[:2]
                        sizes.append((sample[IMAGE], (size[1], size[0])))
                    except DataFormatError as exc:
                        result.problems.append(str(exc))
                for folder, path in sample.items():
                    if folder == IMAGE:
                        continue
                    try:
                        array = load_npy(path)
                        shape = size if size is not None else array.shape[:2]
                        decoded = decoders[folder](path, array, shape)
                    except DataFormatError as exc:
                        result.problems.append(str(exc))
                        continue
                    if decoded.dtype.kind == "f" and not np.isfinite(decoded).any():
                        what = task_of.get(folder, folder)
                        warning = f"{path}: warning: no valid {what} pixel (every value is 0 = invalid)"
                        result.warnings.append(warning)
        result.problems += size_problems(sizes)
        return result


def label_folder_classes(folder: str) -> int | None:
    """``label_<n>`` → n (the class count of a label folder of the MTAN Cityscapes copy), else None."""
    match = re.fullmatch(r"label_([1-9][0-9]*)", folder)
    return int(match.group(1)) if match else None
