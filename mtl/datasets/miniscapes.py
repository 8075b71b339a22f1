"""The MiniScapes layout (SPEC §2): ``<root>/<split>/<modality>/<i>.<ext>``, and the course's benchmark scores.

Modalities: ``rgb`` (.jpg), ``semseg`` (.png trainIds), ``depth`` (.png quantised disparity, 4–300 m) and,
in the generated world, ``normals`` (.png, unit vectors as RGB). The test split ships RGB only; its
ground truth, when present, lies in ``<root>/test_gt/`` for the grader. The generated street world
(`mtl data synth`) writes this layout.

The course grader combines mIoU and SI-logRMSE: max(mIoU − 50, 0) + max(50 − SI-logRMSE, 0); a task
that is not trained scores 50 in it (contributes 0), as in the course.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from mtl.data import formats
from mtl.data.classes import CLASS_COLORS, CLASS_NAMES, IGNORE_INDEX
from mtl.data.formats import ZMAX, ZMIN, DataFormatError
from mtl.data.miniscapes import SPLITS, split_size
from mtl.datasets.base import Codec, DatasetInfo, DatasetLayout, register_dataset
from mtl.metrics.score import checkpoint_rank, grader_score, total_score

COURSE_TASKS = ("semseg", "depth")  # what the grader scores
CODECS = {
    "semseg": Codec(".png", formats.read_semseg, formats.write_semseg),
    "depth": Codec(".png", formats.read_depth, lambda path, metres: formats.write_depth(path, metres, "clamp")),
    "normals": Codec(".png", lambda path: formats.read_normals(path), lambda path, n: formats.write_normals(path, n)),
}


@register_dataset("miniscapes")
class MiniScapesLayout(DatasetLayout):
    info = DatasetInfo(
        name="miniscapes",
        tasks=tuple(CODECS),
        default_tasks=COURSE_TASKS,
        class_names=CLASS_NAMES,
        class_colors=CLASS_COLORS,
        ignore_index=IGNORE_INDEX,
        depth_range=(ZMIN, ZMAX),
        depth_stats=(27.0727, 29.1264),  # the train split of the real MiniScapes
    )
    headline = "grader"

    def splits(self) -> tuple[str, ...]:
        return tuple(s for s in SPLITS if (self.root / s / "rgb").is_dir())

    def split_size(self, split: str) -> int:
        return split_size(self.root, split)

    def tasks_in(self, split: str) -> tuple[str, ...]:
        return tuple(t for t in CODECS if (self.root / split / t).is_dir())

    def path(self, split: str, modality: str, index: int) -> Path:
        suffix = ".jpg" if modality == "rgb" else CODECS[modality].suffix
        return self.root / split / modality / f"{index}{suffix}"

    def read(self, split: str, index: int, tasks: Sequence[str]) -> dict[str, np.ndarray]:
        rgb = formats.read_rgb(self.path(split, "rgb", index))
        out = {"rgb": rgb}
        for task in tasks:
            path = self.path(split, task, index)
            out[task] = CODECS[task].read(path)
            if out[task].shape[:2] != rgb.shape[:2]:
                raise DataFormatError(
                    f"{path}: size {out[task].shape[1]}x{out[task].shape[0]} differs from its "
                    f"rgb image {rgb.shape[1]}x{rgb.shape[0]}"
                )
        return out

    @classmethod
    def codec(cls, task: str) -> Codec:
        return CODECS[task]

    @classmethod
    def scores(cls, summary: Mapping[str, float], higher_is_better: Mapping[str, bool]) -> dict[str, float]:
        miou, si = summary.get("semseg", 50.0), summary.get("depth", 50.0)
        others = {t: v for t, v in summary.items() if t not in COURSE_TASKS}
        extra = super().scores(others, higher_is_better)["total"] if others else 0.0
        return {"grader": grader_score(miou, si), "total": total_score(miou, si) + extra}

    @classmethod
    def checkpoint_rank(cls, scores: Mapping[str, float]) -> float:
        return checkpoint_rank(scores["grader"], scores["total"])
