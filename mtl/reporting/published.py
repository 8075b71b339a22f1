"""Published figures and table layouts, so that a run can be put next to a paper's table the way the paper computed it.

Single-task baselines (``--baseline published:NAME``): the figures that CAGrad (Liu et al., NeurIPS 2021) reports
for independently trained single-task networks on the MTAN copies of NYUv2 and Cityscapes, which Nash-MTL (Navon et
al., ICML 2022) and FAMO (Liu et al., NeurIPS 2023) use as the baseline of every Δm in their tables — their code
carries them as ``BASE`` in experiments/nyuv2/utils.py (Nash-MTL, FAMO) and experiments/cityscapes/utils.py (FAMO).
They are stored here in mtl's units (percent for mIoU, pixel accuracy and the within-angle shares; metres, or the
copy's stored unit for Cityscapes, for depth errors; a fraction for Rel Err). LibMTL's published results
(examples/nyu/results/resnet_results.pdf in its repository) list no single-task row, so there is no LibMTL entry.

The tables (``mtl results --format latex --paper_table NAME``) follow the column layouts of those papers: NYUv2 with
9 metrics, Cityscapes with 4, then Δm.

The entries name tasks and their tags: they are data about published tables, which use these tasks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TaskFigures:
    """One task's published single-task figures, usable where a baseline run is (``name``, ``dataset``, ``best``)."""

    name: str
    dataset: str
    best: dict[str, float]  # tag → value
    config: dict[str, Any]  # what a run must have to be compared with them (e.g. the class count)

    def problem(self, run_config: dict[str, Any]) -> str | None:
        """Why a run with this configuration cannot be compared with these figures, or None."""
        for key, value in self.config.items():
            if str(run_config.get(key, value)) != str(value):
                return f"{self.name} is for --{key} {value}, the run has {run_config.get(key)}"
        return None


@dataclass(frozen=True)
class PublishedBaseline:
    name: str
    dataset: str
    config: dict[str, Any]
    values: dict[str, dict[str, float]]  # task → tag → value
    source: str

    def baselines(self) -> dict[str, TaskFigures]:
        """task → its figures, as ``--baseline`` gives runs."""
        return {task: TaskFigures(self.name, self.dataset, dict(v), self.config) for task, v in self.values.items()}


PUBLISHED_BASELINES: dict[str, PublishedBaseline] = {
    "nyuv2": PublishedBaseline(
        name="published:nyuv2",
        dataset="nyuv2",
        config={},
        values={
            "semseg": {"metrics_summary/semseg": 38.30, "metrics_task_semseg/pixel_accuracy": 63.76},
            "depth": {"metrics_task_depth/mae": 0.6754, "metrics_task_depth/rel": 0.2780},
            "normals": {
                "metrics_task_normals/mean_angle": 25.01,
                "metrics_task_normals/median_angle": 19.21,
                "metrics_task_normals/within_11_25": 30.14,
                "metrics_task_normals/within_22_5": 57.20,
                "metrics_task_normals/within_30": 69.15,
            },
        },
        source="CAGrad's single-task networks (SegNet, MTAN data copy, 288×384), the Δm baseline of Nash-MTL and "
        "FAMO (BASE in their experiments/nyuv2/utils.py)",
    ),
    "cityscapes": PublishedBaseline(
        name="published:cityscapes",
        dataset="cityscapes_npy",
        config={"num_classes": 7},
        values={
            "semseg": {"metrics_summary/semseg": 74.01, "metrics_task_semseg/pixel_accuracy": 93.16},
            "depth": {"metrics_task_depth/mae": 0.0125, "metrics_task_depth/rel": 27.77},
        },
        source="CAGrad's single-task networks (7 classes, MTAN data copy, 128×256, depth in the copy's stored unit), "
        "the Δm baseline of FAMO (BASE in its experiments/cityscapes/utils.py)",
    ),
}


@dataclass(frozen=True)
class PaperColumn:
    tag: str
    label: str  # LaTeX
    higher_is_better: bool


@dataclass(frozen=True)
class PaperTable:
    """A paper's column layout: groups of metric columns under a spanning header, then Δm."""

    dataset: str
    groups: tuple[tuple[str, tuple[PaperColumn, ...]], ...]

    @property
    def columns(self) -> tuple[PaperColumn, ...]:
        return tuple(column for _, columns in self.groups for column in columns)


_SEMSEG = ("Segmentation", (PaperColumn("metrics_summary/semseg", "mIoU", True),
                            PaperColumn("metrics_task_semseg/pixel_accuracy", "Pix Acc", True)))
_DEPTH = ("Depth", (PaperColumn("metrics_task_depth/mae", "Abs Err", False),
                    PaperColumn("metrics_task_depth/rel", "Rel Err", False)))
PAPER_TABLES: dict[str, PaperTable] = {
    "nyuv2": PaperTable("nyuv2", (_SEMSEG, _DEPTH, ("Surface Normal", (
        PaperColumn("metrics_task_normals/mean_angle", "Mean", False),
        PaperColumn("metrics_task_normals/median_angle", "Median", False),
        PaperColumn("metrics_task_normals/within_11_25", "11.25", True),
        PaperColumn("metrics_task_normals/within_22_5", "22.5", True),
        PaperColumn("metrics_task_normals/within_30", "30", True),
    )))),
    "cityscapes": PaperTable("cityscapes_npy", (_SEMSEG, _DEPTH)),
}
