"""`mtl data stats`: statistics of one split of any dataset layout, streamed over its samples.

Generic over the layout's stored tasks: what is measured follows from the array convention each task's ground
truth crosses the layout boundary in, not from a task's name, and the task's facts the layout gives
(``info.task_info[task]``) are read by their field names only:

- class ids (H×W integers): pixels per class of the task's classes (``class_names``), their frequencies among
  the labelled pixels, and the pixels outside the classes (the ignore index);
- a scalar map (H×W floats, NaN = invalid; depth): mean, population std (ddof 0), min and max over all valid
  pixels of the split, accumulated as float64 sums, and a histogram over log-spaced bins of the task's
  ``value_range`` (values outside it fall into the end bins), in its ``unit``;
- vectors (H×W×3 floats, NaN = invalid; normals): the number and fraction of valid pixels.

Keys of ``compute_stats``: ``num_images``; ``kinds`` (task → ``classes``, ``scalar`` or ``vectors``);
``class_pixels``, ``class_frequency``, ``ignore_pixels`` (``<task>_class_pixels``, … if a layout has several
class-id tasks; a task whose facts name no classes, e.g. 0/1 edges, counts ids up to the highest seen);
``<task>_mean``, ``<task>_std``, ``<task>_min``, ``<task>_max``, ``<task>_valid_pixels`` of a scalar map,
and ``histogram_edges``/``histogram_counts`` (``<task>_histogram_*`` if a layout has several scalar maps);
``<task>_valid_pixels``, ``<task>_valid_fraction`` of vectors. The training code normalises depth with the
mean/std measured the same way (``--depth_stats auto``).

The layout is any object with ``info``, ``root``, ``split_size``, ``require_ground_truth`` and ``read``
(``mtl.datasets.DatasetLayout``); this module never imports one. A task derived from another's array has no
files of its own: it is left out.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from mtl.data.formats import DataFormatError

HISTOGRAM_BINS = 64
VALUE_RANGE = (1e-3, 1e3)  # the histogram of a scalar map whose task gives no value_range


def histogram_edges(value_range: tuple[float, float]) -> np.ndarray:
    """Log-spaced bin edges over a positive range: depth is usually stored as disparity, so its resolution is
    logarithmic-ish."""
    return np.geomspace(value_range[0], value_range[1], HISTOGRAM_BINS + 1)


class _Classes:
    kind = "classes"

    def __init__(self) -> None:
        self.pixels = np.zeros(256, dtype=np.int64)

    def add(self, ids: np.ndarray) -> None:
        self.pixels += np.bincount(ids.ravel(), minlength=256)[:256]

    def ids_below_ignore(self) -> int:
        """1 + the highest id below 255 seen: the class count of a task whose facts name no classes (0/1 maps)."""
        seen = np.flatnonzero(self.pixels[:255])
        return int(seen[-1]) + 1 if seen.size else 0

    def result(self, task: str, num_classes: int) -> dict[str, Any]:
        labelled = self.pixels[:num_classes]
        total = int(labelled.sum())
        return {
            "class_pixels": labelled.tolist(),
            "class_frequency": (labelled / max(total, 1)).tolist(),
            "ignore_pixels": int(self.pixels[num_classes:].sum()),
        }


class _Scalar:
    kind = "scalar"

    def __init__(self, value_range: tuple[float, float]) -> None:
        self.range = value_range
        self.edges = histogram_edges(value_range)
        self.sum = self.sum_sq = 0.0
        self.min, self.max = np.inf, -np.inf
        self.count = 0
        self.hist = np.zeros(HISTOGRAM_BINS, dtype=np.int64)

    def add(self, values: np.ndarray) -> None:
        valid = values[np.isfinite(values)].astype(np.float64)
        if valid.size == 0:
            return
        self.count += valid.size
        self.sum += valid.sum()
        self.sum_sq += np.square(valid).sum()
        self.min = min(self.min, float(valid.min()))
        self.max = max(self.max, float(valid.max()))
        # Clip so that values at (or beyond) the ends of the range land in the end bins, not outside.
        self.hist += np.histogram(np.clip(valid, *self.range), bins=self.edges)[0]

    def result(self, task: str, histogram_prefix: str) -> dict[str, Any]:
        mean = self.sum / self.count
        return {
            f"{task}_valid_pixels": self.count,
            f"{task}_mean": mean,
            f"{task}_std": float(np.sqrt(max(self.sum_sq / self.count - mean * mean, 0.0))),
            f"{task}_min": self.min,
            f"{task}_max": self.max,
            f"{histogram_prefix}histogram_edges": self.edges.tolist(),
            f"{histogram_prefix}histogram_counts": self.hist.tolist(),
        }


class _Vectors:
    kind = "vectors"

    def __init__(self) -> None:
        self.valid = self.total = 0

    def add(self, vectors: np.ndarray) -> None:
        self.valid += int(np.isfinite(vectors).all(axis=-1).sum())
        self.total += int(np.prod(vectors.shape[:-1]))

    def result(self, task: str) -> dict[str, Any]:
        return {f"{task}_valid_pixels": self.valid, f"{task}_valid_fraction": self.valid / max(self.total, 1)}


def _accumulator(array: np.ndarray, facts: Any) -> _Classes | _Scalar | _Vectors | None:
    """What to measure on a task's arrays, from their convention (None: nothing this module knows)."""
    if array.ndim == 2 and np.issubdtype(array.dtype, np.integer):
        return _Classes()
    if array.ndim == 2 and np.issubdtype(array.dtype, np.floating):
        return _Scalar(getattr(facts, "value_range", VALUE_RANGE))
    if array.ndim == 3 and array.shape[-1] == 3 and np.issubdtype(array.dtype, np.floating):
        return _Vectors()
    return None


def compute_stats(
    layout: Any, split: str = "train", max_images: int | None = None, progress: bool = True
) -> dict[str, Any]:
    """Statistics of a split with ground truth, over all its samples or ``max_images`` evenly spaced ones
    (a quick estimate). Keys: see the module docstring."""
    if max_images is not None and max_images < 1:
        raise ValueError(f"max_images must be positive, got {max_images}")
    size = layout.split_size(split)
    info = layout.info
    tasks = tuple(t for t in layout.require_ground_truth(split) if t in info.stored_tasks)
    indices: Any = range(size)
    if max_images is not None and max_images < size:
        indices = np.linspace(0, size - 1, max_images).round().astype(int).tolist()  # spacing ≥ 1: distinct
    accumulators: dict[str, Any] = {}
    for i in tqdm(indices, desc=f"stats {split}", unit="img", file=sys.stderr, delay=2.0, disable=not progress):
        sample = layout.read(split, i, tasks)
        for task in tasks:
            if task not in accumulators:
                accumulators[task] = _accumulator(sample[task], info.task_info.get(task))
            if accumulators[task] is not None:
                accumulators[task].add(sample[task])
    kinds = {task: type(acc).kind for task, acc in accumulators.items() if acc is not None}
    stats: dict[str, Any] = {"num_images": len(indices), "kinds": kinds}
    scalars = [t for t, a in accumulators.items() if isinstance(a, _Scalar)]
    classes = [t for t, a in accumulators.items() if isinstance(a, _Classes)]
    for task, acc in accumulators.items():
        if isinstance(acc, _Classes):
            result = acc.result(task, len(class_names(info, task)) or acc.ids_below_ignore())
            stats.update({f"{task}_{k}" if len(classes) > 1 else k: v for k, v in result.items()})
        elif isinstance(acc, _Scalar):
            if acc.count == 0:
                raise DataFormatError(f"{layout.root} [{split}]: no valid {task} pixel in the split")
            stats.update(acc.result(task, "" if len(scalars) == 1 else f"{task}_"))
        elif isinstance(acc, _Vectors):
            stats.update(acc.result(task))
    return stats


def class_names(info: Any, task: str) -> tuple[str, ...]:
    """The class names a task's facts give (none for a task without classes)."""
    return tuple(getattr(info.task_info.get(task), "class_names", ()))


def unit(info: Any, task: str) -> str:
    """The unit of a task's scalar map, as its facts say (metres when they say nothing)."""
    return str(getattr(info.task_info.get(task), "unit", "m"))


def _ticks(lo: float, hi: float) -> list[float]:
    """1-2-5 ticks inside [lo, hi], plus both ends."""
    ticks = {lo, hi}
    for exponent in range(int(np.floor(np.log10(lo))), int(np.ceil(np.log10(hi))) + 1):
        for mantissa in (1, 2, 5):
            value = mantissa * 10.0**exponent
            if lo * 1.15 < value < hi / 1.15:
                ticks.add(value)
    return sorted(ticks)


def save_histogram(edges: list[float], counts: list[int], path: str | Path, title: str, xlabel: str) -> None:
    """Bar plot of a histogram on a log axis (matplotlib's Agg canvas, no display needed)."""
    from matplotlib.figure import Figure

    edges_arr = np.asarray(edges)
    fig = Figure(figsize=(7, 4), dpi=100)
    ax = fig.add_subplot()
    ax.stairs(counts, edges_arr, fill=True)
    ax.set_xscale("log")
    ax.set_xlim(edges_arr[0], edges_arr[-1])
    ticks = _ticks(float(edges_arr[0]), float(edges_arr[-1]))
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel(xlabel)
    ax.set_ylabel("valid pixels")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, format="png")  # PNG whatever the name says


def run_stats(
    layout: Any, split: str = "train", histogram: str | Path | None = None, json_path: str | Path | None = None
) -> int:
    """Print the statistics of ``split``, save the histogram PNG of its scalar map (``histogram``, by default
    ``depth_histogram_<split>.png`` in the current folder: the dataset stays read-only) and optionally a JSON file."""
    root = layout.root
    try:
        stats = compute_stats(layout, split)
    except (DataFormatError, FileNotFoundError, ValueError) as exc:
        print(f"mtl data stats: error: {exc}", file=sys.stderr)
        return 1
    info = layout.info
    print(f"{root} [{split}]: {stats['num_images']} images ({info.name} layout)")
    scalar_tasks = [task for task, kind in stats["kinds"].items() if kind == "scalar"]
    for task in scalar_tasks:
        print(
            f"{task} ({unit(info, task)}): {stats[f'{task}_valid_pixels']} valid pixels, mean {stats[f'{task}_mean']:.4f}  "
            f"std {stats[f'{task}_std']:.4f}  min {stats[f'{task}_min']:.4f}  max {stats[f'{task}_max']:.4f}"
        )
    class_tasks = [task for task, kind in stats["kinds"].items() if kind == "classes"]
    for task in class_tasks:
        prefix = "" if len(class_tasks) == 1 else f"{task}_"
        pixels = stats[f"{prefix}class_pixels"]
        names = class_names(info, task) or tuple(str(i) for i in range(len(pixels)))
        width = max(len(name) for name in (*names, "(ignore)"))
        if prefix:
            print(f"{task}:")
        print(f"{'class':<{width}}  {'pixels':>12}  {'percent':>8}")
        for name, count, freq in zip(names, pixels, stats[f"{prefix}class_frequency"]):
            print(f"{name:<{width}}  {count:>12}  {100 * freq:>8.3f}")
        print(f"{'(ignore)':<{width}}  {stats[f'{prefix}ignore_pixels']:>12}")
    for task in (task for task, kind in stats["kinds"].items() if kind == "vectors"):
        fraction = stats[f"{task}_valid_fraction"]
        print(f"{task}: {stats[f'{task}_valid_pixels']} valid pixels ({100 * fraction:.2f} %)")
    written = []
    try:
        for task in scalar_tasks:
            prefix = "" if len(scalar_tasks) == 1 else f"{task}_"
            if histogram is None:
                path = Path(f"{task}_histogram_{split}.png")
            elif not prefix:
                path = Path(histogram)
            else:
                path = Path(histogram).with_name(f"{task}_{Path(histogram).name}")
            save_histogram(
                stats[f"{prefix}histogram_edges"], stats[f"{prefix}histogram_counts"], path,
                f"{task} of {split} ({stats[f'{task}_valid_pixels']} valid pixels)",
                f"{task} ({unit(info, task)}), log-spaced bins; stored values are quantised, so some bins can be empty",
            )
            written.append(path)
        if json_path:
            Path(json_path).write_text(json.dumps(stats, indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        print(f"mtl data stats: error: {exc}", file=sys.stderr)
        return 1
    for path in written:
        print(f"histogram: {path}")
    if json_path:
        print(f"json: {json_path}")
    return 0
