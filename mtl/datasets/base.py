"""What a dataset layout plug-in provides, and the split reader the training and prediction code share.

A layout knows where a dataset's files are and how each task's files are encoded; it names tasks (that
is its job), but holds no task logic: turning arrays into tensors, losses and metrics belong to the tasks,
and so do the facts a task needs about a dataset: a layout fills in ``DatasetInfo.task_info`` with each
stored task's own dataclass (``SemsegInfo`` of ``mtl.tasks.semseg``, ``DepthInfo`` of ``mtl.tasks.depth``).
Arrays cross this boundary in each task's plain convention: RGB H×W×3 uint8, class ids H×W uint8,
depth H×W float32 metres (NaN = invalid), normals H×W×3 float32 unit vectors (NaN = invalid).

How a task's files are encoded is a table, ``codecs`` (task → ``Codec``), looked up through the class
hierarchy: a layout's own table, then its family's (``NpyLayout`` for the .npy layouts), then
``DatasetLayout``'s (every layout). A task plug-in adds its codec with ``add_codec`` at any of these levels,
without editing a layout module. A task whose target is derived from another task's array (``Task.source``)
needs no files: it is present wherever its source is (``tasks_in``), and ``SplitDataset`` derives it.

Besides reading, a layout checks itself (``find_problems``: every bad file on one line starting with its
path, for `mtl data check`), says which of its splits hold ground truth, how predictions are written
(``codec``, ``write_prediction``; ``restore_size`` for a layout that reads its files resized), and how the
generated world is written in its format (``write_generated``, for `mtl data synth --layout NAME`).
A layout whose class set depends on its flags (e.g. 7 or 19 classes) gives it in ``info_for(flags)``; an
instance built by ``from_flags`` carries that ``info`` too. ``@register_dataset`` refuses a layout class that
lacks a required method or ``info``, naming them.
"""

from __future__ import annotations

import argparse
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from mtl.data.check import CheckResult, size_problems
from mtl.data.formats import DataFormatError
from mtl.errors import one_line
from mtl.plugins import Registry
from mtl.tasks.base import derived_tasks, missing_members

if TYPE_CHECKING:
    from mtl.data.synth.sample import Sample
    from mtl.tasks.base import Task

DATASETS: Registry[type[DatasetLayout]] = Registry("dataset", "mtl.datasets")
SYNTH_SPLITS = ("train", "val", "test")  # the splits the generator writes


def register_dataset(name: str) -> Callable[[type[DatasetLayout]], type[DatasetLayout]]:
    """Class decorator: ``@register_dataset("name")`` makes the layout ``--dataset name``. A class that lacks a
    required method or ``info`` is refused here, with one line naming it and what it lacks."""

    def decorator(cls: type[DatasetLayout]) -> type[DatasetLayout]:
        missing = missing_members(cls, ("info",))
        if cls.synth_size is not None and cls.write_generated.__func__ is DatasetLayout.write_generated.__func__:
            missing.append("write_generated")  # it says it can be generated
        if missing:
            raise TypeError(
                f"dataset {name!r}: {cls.__name__} does not define {', '.join(missing)} (see mtl.datasets.DatasetLayout)"
            )
        return DATASETS.register(name)(cls)

    return decorator


@dataclass(frozen=True)
class DatasetInfo:
    """The facts about a dataset that tasks, pictures and reports need (no file access); nothing here is about
    one task: ``task_info[task]`` is what that task needs to know (its classes, its value range, …), as the
    task's own dataclass."""

    name: str
    stored_tasks: tuple[str, ...]  # tasks whose files the layout holds
    default_tasks: tuple[str, ...]  # what `--tasks` means when not given
    task_info: Mapping[str, Any] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def tasks(self) -> tuple[str, ...]:
        """What ``--tasks`` may choose: the stored tasks, then every registered task derived from one of them."""
        return (*self.stored_tasks, *derived_tasks(self.stored_tasks))


@dataclass(frozen=True)
class Codec:
    """How one task's ground truth or prediction is stored in a file of the layout."""

    suffix: str
    read: Callable[[Path], np.ndarray]
    write: Callable[[Path, np.ndarray], None]


class DatasetLayout(ABC):
    """A dataset on disk. Subclasses set ``info`` and implement the file access."""

    name: ClassVar[str]
    info: ClassVar[DatasetInfo]
    headline: ClassVar[str] = "total"  # the score printed after each validation
    # The evaluation protocol of the tables this dataset's users compare with (``--eval_protocol`` by default;
    # mtl.metrics.protocol, docs/PROTOCOLS.md).
    eval_protocol: ClassVar[str] = "course"
    codecs: ClassVar[dict[str, Any]] = {}  # task → how its files are encoded (see ``add_codec``)
    synth_size: ClassVar[tuple[int, int] | None] = None  # (width, height) `mtl data synth` writes; None: no writer
    synth_splits: ClassVar[tuple[str, ...]] = SYNTH_SPLITS  # the splits the layout has, for the generator

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

    @abstractmethod
    def splits(self) -> tuple[str, ...]:
        """Splits present on disk, in canonical order."""

    @abstractmethod
    def split_size(self, split: str) -> int:
        """Number of samples of a split."""

    def sample_name(self, split: str, index: int) -> str:
        """The stem under which a sample's predictions are written."""
        return str(index)

    @abstractmethod
    def stored_tasks_in(self, split: str) -> tuple[str, ...]:
        """Stored tasks whose ground-truth files this split has."""

    def tasks_in(self, split: str) -> tuple[str, ...]:
        """Tasks whose ground truth this split has: the stored ones, and the tasks derived from them."""
        stored = self.stored_tasks_in(split)
        return (*stored, *derived_tasks(stored))

    @abstractmethod
    def read(self, split: str, index: int, tasks: Sequence[str]) -> dict[str, np.ndarray]:
        """``rgb`` and the ground truth of ``tasks`` (stored tasks) of one sample, checked for size."""

    # ------------------------------------------------------------------------------------ codecs
    @classmethod
    def add_codec(cls, task: str, codec: Any) -> None:
        """Encode ``task``'s files with ``codec`` in this layout and its subclasses (a ``Codec``, or the entry type
        of a layout family such as ``NpyCodec``): how a task plug-in brings its format to a layout it does not
        own (``DatasetLayout.add_codec``: every layout)."""
        if "codecs" not in vars(cls):
            cls.codecs = {}
        cls.codecs[task] = codec

    @classmethod
    def codec_entry(cls, task: str) -> Any:
        """The nearest table entry for ``task``: this class's ``codecs``, then its bases'."""
        for klass in cls.__mro__:
            table = vars(klass).get("codecs", {})
            if task in table:
                return table[task]
        name = getattr(cls, "name", cls.__name__)
        raise ValueError(f"the {name} layout has no codec for task {task!r} (add one with {cls.__name__}.add_codec)")

    @classmethod
    def has_codec(cls, task: str) -> bool:
        return any(task in vars(klass).get("codecs", {}) for klass in cls.__mro__)

    @classmethod
    def codec(cls, task: str) -> Codec:
        """How ``task``'s files (ground truth, predictions) are encoded here."""
        return cls.codec_entry(task)

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
            tasks = self.stored_tasks_in(split)
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

    # ------------------------------------------------------------------------------- generation
    @classmethod
    def write_generated(cls, root: Path, split: str, index: int, sample: Sample) -> None:
        """Write one sample of the generated world (``mtl.data.synth``) in this layout's files; a layout that
        sets ``synth_size`` must implement it (``@register_dataset`` checks)."""
        raise NotImplementedError(f"the {cls.name} layout has no writer for generated samples")

    @classmethod
    def generate(
        cls,
        out: str | Path,
        num_train: int,
        num_val: int,
        num_test: int,
        width: int,
        height: int,
        seed: int,
        workers: int | None = None,
    ) -> None:
        """Render the generated world into ``out`` (new or empty) in this layout (`mtl data synth --layout`)."""
        from mtl.data.synth.dataset import generate_dataset

        if cls.synth_size is None:
            raise ValueError(f"the {cls.name} layout cannot be generated (it has no writer)")
        for split, count in (("train", num_train), ("val", num_val), ("test", num_test)):
            if count > 0 and split not in cls.synth_splits:
                raise ValueError(f"--num-{split}: the {cls.name} layout has no {split} split")
        generate_dataset(out, num_train, num_val, num_test, width, height, seed, cls.write_generated, cls.name, workers)


def build_dataset(flags: argparse.Namespace) -> DatasetLayout:
    return DATASETS[flags.dataset].from_flags(flags)


class SplitDataset:
    """One split as a map-style dataset of tensors for a torch DataLoader.

    Items: ``rgb`` uint8 3×H×W, one tensor per task with ground truth here (``Task.to_tensor``), ``index``.
    A derived task's target is made by the task from its source's array (``Task.derive``).
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
        stored = dict.fromkeys(task.source or name for name, task in self.tasks.items())
        arrays = self.layout.read(self.split, index, tuple(stored))
        item: dict[str, Any] = {"index": index, "rgb": torch.from_numpy(arrays["rgb"]).permute(2, 0, 1).contiguous()}
        for name, task in self.tasks.items():
            array = arrays[name] if task.source is None else task.derive(arrays[task.source])
            item[name] = task.to_tensor(array)
        return item
