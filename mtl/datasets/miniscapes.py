"""The MiniScapes layout (SPEC §2): ``<root>/<split>/<modality>/<i>.<ext>``, and the course's benchmark scores.

Modalities: ``rgb`` (.jpg), ``semseg`` (.png trainIds), ``depth`` (.png quantised disparity, 4–300 m) and,
in the generated world, ``normals`` (.png, unit vectors as RGB); each task's files are read and written
through the codec table (``codecs``). The test split ships RGB only; its ground truth, when present, lies in
``<root>/test_gt/`` for the grader. The generated street world (`mtl data synth`) writes this layout
(``write_generated``): every split's ground truth, the test split's in ``test_gt/``; depth with the
"invalidate" policy (out of range → 0).

The course grader combines mIoU and SI-logRMSE: max(mIoU − 50, 0) + max(50 − SI-logRMSE, 0); a task
that is not trained scores 50 in it (contributes 0), as in the course.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mtl.data import formats
from mtl.data.check import (
    SIXTEEN_BIT_MODES,
    CheckResult,
    IndexedGroup,
    check_files,
    content_problem,
    image_header,
    scan_indexed_group,
    size_problems,
)
from mtl.data.classes import CLASS_COLORS, CLASS_NAMES, IGNORE_INDEX
from mtl.data.formats import ZMAX, ZMIN, DataFormatError, atomic_write
from mtl.data.miniscapes_files import SPLITS, split_size
from mtl.datasets.base import Codec, DatasetInfo, DatasetLayout, register_dataset
from mtl.tasks.depth import DepthInfo
from mtl.tasks.semseg import SemsegInfo

if TYPE_CHECKING:
    from mtl.data.synth.sample import Sample

COURSE_TASKS = ("semseg", "depth")  # what the grader scores
CODECS = {
    "semseg": Codec(".png", formats.read_semseg, formats.write_semseg),
    "depth": Codec(".png", formats.read_depth, lambda path, metres: formats.write_depth(path, metres, "clamp")),
    "normals": Codec(".png", lambda path: formats.read_normals(path), lambda path, n: formats.write_normals(path, n)),
}
GROUND_TRUTH = ("semseg", "depth")  # what train and val must have; normals (the generated world's extension) may be there
GROUND_TRUTH_FOLDER = {"train": "train", "val": "val", "test": "test_gt"}  # where a split's ground truth lies


def grader_score(miou: Any, si_log_rmse: Any) -> float:
    """The "Multitask" grader: max(mIoU − 50, 0) + max(50 − SI-logRMSE, 0), in [0, 100], higher is better."""
    return max(float(miou) - 50.0, 0.0) + max(50.0 - float(si_log_rmse), 0.0)


def total_score(miou: Any, si_log_rmse: Any) -> float:
    """mIoU − SI-logRMSE: unclipped, so it still moves when a task is below the grader's 50 threshold."""
    return float(miou) - float(si_log_rmse)


def checkpoint_rank(grader: float, total: float) -> float:
    """Orders validation results for best.ckpt: the grader, ties (e.g. 0 early in training) broken by total."""
    return float(grader) + 1e-4 * math.tanh(float(total) / 100.0)


@register_dataset("miniscapes")
class MiniScapesLayout(DatasetLayout):
    info = DatasetInfo(
        name="miniscapes",
        stored_tasks=tuple(CODECS),
        default_tasks=COURSE_TASKS,
        task_info={
            "semseg": SemsegInfo(CLASS_NAMES, CLASS_COLORS, IGNORE_INDEX),
            "depth": DepthInfo(value_range=(ZMIN, ZMAX), stats=(27.0727, 29.1264)),  # the real MiniScapes' train split
        },
    )
    headline = "grader"
    codecs = CODECS
    synth_size = (512, 256)

    def splits(self) -> tuple[str, ...]:
        return tuple(s for s in SPLITS if (self.root / s / "rgb").is_dir())

    def split_size(self, split: str) -> int:
        return split_size(self.root, split)

    def stored_tasks_in(self, split: str) -> tuple[str, ...]:
        return tuple(t for t in self.info.stored_tasks if (self.root / split / t).is_dir())

    def require_ground_truth(self, split: str) -> tuple[str, ...]:
        tasks = self.tasks_in(split)
        if not tasks:
            raise FileNotFoundError(f"{self.root / split}: no {list(self.info.default_tasks)} folder")
        return tasks

    def path(self, split: str, modality: str, index: int) -> Path:
        suffix = ".jpg" if modality == "rgb" else self.codec(modality).suffix
        return self.root / split / modality / f"{index}{suffix}"

    def read(self, split: str, index: int, tasks: Sequence[str]) -> dict[str, np.ndarray]:
        rgb = formats.read_rgb(self.path(split, "rgb", index))
        out = {"rgb": rgb}
        for task in tasks:
            path = self.path(split, task, index)
            out[task] = self.codec(task).read(path)
            if out[task].shape[:2] != rgb.shape[:2]:
                raise DataFormatError(
                    f"{path}: size {out[task].shape[1]}x{out[task].shape[0]} differs from its "
                    f"rgb image {rgb.shape[1]}x{rgb.shape[0]}"
                )
        return out

    def find_problems(self, progress: bool = True) -> CheckResult:
        """Everything wrong with the dataset, each bad file on one line starting with its path.

        Checked: missing modality folders and files (including index gaps), stray files and folders, names
        that are not sample names (``03.jpg``, ``٣.jpg``), content that does not match the extension (a PNG
        named ``.jpg``, a JPEG named ``.png``), files that do not decode (truncated/corrupt), wrong modes
        (16-bit depth included), semseg values outside 0..18/255, and image sizes: every image must have the
        size most of the dataset has, which also catches a modality that differs from its RGB. ``normals/``
        (the generated world's extension) is optional. ``test_gt/`` (the grader's ground truth of the test
        split) is checked against ``test/rgb``. A depth map without a single valid pixel is a warning: it is
        well-formed and the depth loss and metrics skip such images, but a dataset of them has no depth to learn.
        """
        root = self.root
        if not root.is_dir():
            return CheckResult([f"{root}: dataset root not found"])
        if not any((root / name).is_dir() for name in (*SPLITS, "test_gt")):
            return CheckResult([f"{root}: no {', '.join(SPLITS)} or test_gt folder"])
        result = CheckResult()
        files: list[tuple[Path, str]] = []
        test_count = None
        stored = self.info.stored_tasks
        extensions = {"rgb": ".jpg", **{task: self.codec(task).suffix for task in stored}}
        optional = tuple(t for t in stored if t not in GROUND_TRUTH)
        for split in SPLITS:
            if (root / split).is_dir():
                if split == "test":  # the official test split ships RGB only
                    group = IndexedGroup(root / split, extensions, ("rgb",), stored)
                else:
                    group = IndexedGroup(root / split, extensions, ("rgb", *GROUND_TRUTH), optional)
                count = scan_indexed_group(group, result.problems, files)
                if split == "test":
                    test_count = count
        if (root / "test_gt").is_dir():
            counterpart = root / "test" / "rgb"
            test_gt = IndexedGroup(root / "test_gt", extensions, GROUND_TRUTH, optional, test_count, counterpart, ".jpg")
            scan_indexed_group(test_gt, result.problems, files)
        sizes = check_files(files, self._check_file, result, progress)
        result.problems += size_problems(sizes)
        return result

    @classmethod
    def scores(cls, summary: Mapping[str, float], higher_is_better: Mapping[str, bool]) -> dict[str, float]:
        miou, si = summary.get("semseg", 50.0), summary.get("depth", 50.0)
        others = {t: v for t, v in summary.items() if t not in COURSE_TASKS}
        extra = super().scores(others, higher_is_better)["total"] if others else 0.0
        return {"grader": grader_score(miou, si), "total": total_score(miou, si) + extra}

    @classmethod
    def checkpoint_rank(cls, scores: Mapping[str, float]) -> float:
        return checkpoint_rank(scores["grader"], scores["total"])

    @classmethod
    def write_generated(cls, root: Path, split: str, index: int, sample: Sample) -> None:
        atomic_write(lambda p: formats.write_rgb(p, sample.rgb), root / split / "rgb" / f"{index}.jpg")
        gt = root / GROUND_TRUTH_FOLDER[split]
        atomic_write(lambda p: formats.write_semseg(p, sample.semseg), gt / "semseg" / f"{index}.png")
        atomic_write(lambda p: formats.write_depth(p, sample.depth, "invalidate"), gt / "depth" / f"{index}.png")
        atomic_write(lambda p: formats.write_normals(p, sample.normals), gt / "normals" / f"{index}.png")

    def _check_file(self, path: Path, modality: str) -> tuple[str | None, str | None, tuple[int, int] | None]:
        """(problem, warning, (width, height)) of one file; the size is None when the file is not usable.
        A float map without one valid pixel (depth: every code 0) is a warning."""
        real_format, mode = image_header(path)
        problem = content_problem(path, real_format)
        if problem is not None:
            return problem, None, None
        if modality == "depth" and mode in SIXTEEN_BIT_MODES:
            return f"{path}: depth image is 16-bit (mode {mode!r}), expected 8-bit disparity codes (mode 'L')", None, None
        try:
            array = formats.read_rgb(path) if modality == "rgb" else self.codec(modality).read(path)
        except DataFormatError as exc:
            return str(exc), None, None
        warning = None
        if array.dtype.kind == "f" and not np.isfinite(array).any():
            warning = f"{path}: warning: no valid {modality} pixel (every value is 0 = invalid)"
        return None, warning, (array.shape[1], array.shape[0])
