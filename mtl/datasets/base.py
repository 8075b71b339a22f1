"""What a dataset layout plug-in provides, and the split reader the training and prediction code share.

A layout knows where a dataset's files are and how each task's files are encoded; it names tasks (that
is its job), but holds no task logic: turning arrays into tensors, losses and metrics belong to the tasks.
Arrays cross this boundary in each task's plain convention: RGB H×W×3 uint8, class ids H×W uint8,
depth H×W float32 metres (NaN = invalid), normals H×W×3 float32 unit vectors (NaN = invalid).

Besides reading, a layout checks itself (``find_problems``: every bad file on one line starting with its
path, for `mtl data check`), says which of its splits hold ground truth, and how predictions are written
(``codec``, ``write_prediction``; ``restore_size`` for a layout that reads its files resized).
A layout whose class set depends on its flags (e.g. 7 or 19 classes) gives it in ``info_for(flags)``; an
instance built by ``from_flags`` carries that ``info`` too.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from mtl.data.check import CheckResult, size_problems
from mtl.data.formats import DataFormatError
from mtl.errors import one_line
from mtl.plugins import Registry

if TYPE_CHECKING:
    from mtl.tasks.base import Task

DATASETS: Registry[type[DatasetLayout]] = Registry("dataset", "mtl.datasets")
register_dataset = DATASETS.register


@dataclass(frozen=True)
class DatasetInfo:
    """The facts about a dataset that tasks, pictures and reports need (no file access)."""

    name: str
    tasks: tuple[str, ...]  # tasks the layout can store
    default_tasks: tuple[str, ...]  # what `--tasks` means when not given
    class_names: tuple[str, ...] = ()
    class_colors: tuple[tuple[int, int, int], ...] = ()
    ignore_index: int = 255
    depth_range: tuple[float, float] = (1e-3, 1e3)  # values (in depth_unit) a valid depth can have; predictions stay near
    depth_stats: tuple[float, float] | None = None  # published (mean, std) of train depth (in depth_unit), if any
    extra: Mapping[str, Any] = field(default_factory=dict)
    depth_unit: str = "m"  # what a depth value is: metres, or what a dataset stores instead (said, never converted)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


@dataclass(frozen=True)
class Codec:
    """How one task's ground truth or prediction is stored in a file of the layout."""

    suffix: str
    read: Callable[[Path], np.ndarray]
    write: Callable[[Path, np.ndarray], None]


class DatasetLayout:
    """A dataset on disk. Subclasses set ``info`` and implement the file access."""

    name: ClassVar[str]
    info: ClassVar[DatasetInfo]
    headline: ClassVar[str] = "total"  # the score printed after each validation

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    @classmethod
    def add_arguments(cls, group: argparse._ArgumentGroup) -> None:
        """Flags of this layout (e.g. a class set); none by default."""

    @classmethod
    def from_flags(cls, flags: argparse.Namespace) -> DatasetLayout:
        return cls(flags.dataset_root)

    @classmethod
    def info_for(cls, flags: argparse.Namespace) -> DatasetInfo:
        """The dataset's facts under these flags (the class set may depend on them); ``info`` by default."""
        return cls.info

    def splits(self) -> tuple[str, ...]:
        """Splits present on disk, in canonical order."""
        raise NotImplementedError

    def split_size(self, split: str) -> int:
        raise NotImplementedError

    def sample_name(self, split: str, index: int) -> str:
        """The stem under which a sample's predictions are written."""
        return str(index)

    def tasks_in(self, split: str) -> tuple[str, ...]:
        """Tasks whose ground truth this split has."""
        raise NotImplementedError

    def read(self, split: str, index: int, tasks: Sequence[str]) -> dict[str, np.ndarray]:
        """``rgb`` and the ground truth of ``tasks`` of one sample, checked for size."""
        raise NotImplementedError

    @classmethod
    def codec(cls, task: str) -> Codec:
        raise NotImplementedError

    def image_size(self, split: str) -> tuple[int, int]:
        """(height, width) of the split's first image (the training crop is checked against it)."""
        return self.read(split, 0, ())["rgb"].shape[:2]

    def require_ground_truth(self, split: str) -> tuple[str, ...]:
        """``tasks_in(split)``, or FileNotFoundError naming what is missing when the split has no ground truth."""
        tasks = self.tasks_in(split)
        if not tasks:
            raise FileNotFoundError(f"{self.root}: the {split} split has no ground truth")
        return tasks

    def find_problems(self, progress: bool = True) -> CheckResult:
        """Everything wrong with the dataset, one line per bad file starting with its path (`mtl data check`).

        This generic version reads every sample of every split with the ground truth the split has, so it
        reports the first bad file of each sample and images whose size differs from most; layouts override it
        to name every file, stray and missing ones included."""
        result = CheckResult()
        if not self.root.is_dir():
            result.problems.append(f"{self.root}: dataset root not found")
            return result
        splits = self.splits()
        if not splits:
            result.problems.append(f"{self.root}: no split of the {self.info.name} layout found")
            return result
        sizes: list[tuple[Path, tuple[int, int]]] = []
        for split in splits:
            try:
                size = self.split_size(split)
            except (DataFormatError, OSError) as exc:
                result.problems.append(one_line(exc))
                continue
            tasks = self.tasks_in(split)
            for index in range(size):
                try:
                    arrays = self.read(split, index, tasks)
                except (DataFormatError, OSError, ValueError) as exc:
                    result.problems.append(one_line(exc))
                    continue
                height, width = arrays["rgb"].shape[:2]
                sizes.append((self.root / split / self.sample_name(split, index), (width, height)))
                result.files_checked += 1 + len(tasks)
        result.problems += size_problems(sizes, "the dataset's samples")
        return result

    def restore_size(self, split: str, index: int, array: np.ndarray) -> np.ndarray:
        """A prediction at the size ``read`` gives → the size of the sample's files on disk (nearest neighbour),
        for a layout that reads its files resized; unchanged otherwise."""
        return array

    @classmethod
    def prediction_stem(cls, stem: str) -> str:
        """The prediction name of a user's image file called ``<stem>.<ext>`` (e.g. without a layout's suffix)."""
        return stem

    @classmethod
    def prediction_path(cls, folder: Path, task: str, name: str) -> Path:
        """Where a prediction of ``task`` for sample ``name`` goes in a predictions folder."""
        return Path(folder) / task / f"{name}{cls.codec(task).suffix}"

    @classmethod
    def write_prediction(cls, folder: Path, task: str, name: str, value: np.ndarray) -> Path:
        path = cls.prediction_path(folder, task, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        cls.codec(task).write(path, value)
        return path

    @classmethod
    def scores(cls, summary: Mapping[str, float], higher_is_better: Mapping[str, bool]) -> dict[str, float]:
        """Benchmark scores from each task's summary metric. ``total`` adds the summaries with the sign
        that makes higher better; a dataset with an official score (a grader) adds it."""
        return {"total": sum(v if higher_is_better[t] else -v for t, v in summary.items())}

    @classmethod
    def checkpoint_rank(cls, scores: Mapping[str, float]) -> float:
        """Orders validation results for best.ckpt (higher is better)."""
        return scores["total"]


def build_dataset(flags: argparse.Namespace) -> DatasetLayout:
    return DATASETS[flags.dataset].from_flags(flags)


class SplitDataset:
    """One split as a map-style dataset of tensors for a torch DataLoader.

    Items: ``rgb`` uint8 3×H×W, one tensor per task with ground truth here (``Task.to_tensor``), ``index``.
    """

    def __init__(self, layout: DatasetLayout, split: str, tasks: Mapping[str, Task], targets: bool = True) -> None:
        if split not in layout.splits():
            raise FileNotFoundError(f"{layout.root}: no {split} split")
        self.layout = layout
        self.split = split
        self.size = layout.split_size(split)
        available = layout.tasks_in(split) if targets else ()
        self.tasks = {name: task for name, task in tasks.items() if name in available}

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> dict[str, Any]:
        import torch

        if not 0 <= index < self.size:
            raise IndexError(index)
        arrays = self.layout.read(self.split, index, tuple(self.tasks))
        item: dict[str, Any] = {"index": index, "rgb": torch.from_numpy(arrays["rgb"]).permute(2, 0, 1).contiguous()}
        for name, task in self.tasks.items():
            item[name] = task.to_tensor(arrays[name])
        return item
