"""`mtl data stats`: depth statistics and class frequencies of one split, streamed over its images.

The training code normalises depth with ``depth_mean``/``depth_std`` from :func:`compute_stats`
(the course used the MiniScapes train values 27.0727 / 29.1264 m). The standard deviation is the
population one (ddof 0) over all valid pixels of the split, accumulated as float64 sums.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from mtl.data.classes import CLASS_NAMES, NUM_CLASSES
from mtl.data.formats import ZMAX, ZMIN, DataFormatError
from mtl.data.miniscapes import MiniScapes

HISTOGRAM_BINS = 64


def histogram_edges() -> np.ndarray:
    """Log-spaced bin edges from 4 to 300 m: depth is stored as disparity, so its resolution is logarithmic-ish."""
    return np.geomspace(ZMIN, ZMAX, HISTOGRAM_BINS + 1)


def compute_stats(
    root: str | Path, split: str = "train", max_images: int | None = None, progress: bool = True
) -> dict[str, Any]:
    """Statistics of a split with ground truth, over all its images or ``max_images`` evenly spaced ones
    (a quick estimate for normalising depth at the start of training).

    Keys: ``depth_mean``, ``depth_std``, ``depth_min``, ``depth_max`` (metres, valid pixels only),
    ``class_frequency`` (19 fractions of the labelled, non-ignore pixels, summing to 1),
    ``class_pixels`` (19 counts), ``ignore_pixels``, ``depth_valid_pixels``, ``num_images``,
    ``histogram_edges`` and ``histogram_counts`` (valid depth over :func:`histogram_edges`).
    """
    if max_images is not None and max_images < 1:
        raise ValueError(f"max_images must be positive, got {max_images}")
    dataset = MiniScapes(root, split, modalities=("semseg", "depth"))
    indices = range(len(dataset))
    if max_images is not None and max_images < len(dataset):
        indices = np.linspace(0, len(dataset) - 1, max_images).round().astype(int).tolist()  # spacing ≥ 1: distinct
    edges = histogram_edges()
    depth_sum = depth_sq_sum = 0.0
    depth_min, depth_max = np.inf, -np.inf
    valid_pixels = 0
    class_pixels = np.zeros(256, dtype=np.int64)
    hist = np.zeros(HISTOGRAM_BINS, dtype=np.int64)
    for i in tqdm(indices, desc=f"stats {split}", unit="img", file=sys.stderr, delay=2.0, disable=not progress):
        sample = dataset.read(i)
        class_pixels += np.bincount(sample["semseg"].ravel(), minlength=256)
        depth = sample["depth"][np.isfinite(sample["depth"])].astype(np.float64)
        if depth.size == 0:
            continue
        valid_pixels += depth.size
        depth_sum += depth.sum()
        depth_sq_sum += np.square(depth).sum()
        depth_min = min(depth_min, float(depth.min()))
        depth_max = max(depth_max, float(depth.max()))
        # Clip so the decoder's float32 rounding at exactly 4 m / 300 m cannot drop a pixel out of range.
        hist += np.histogram(np.clip(depth, ZMIN, ZMAX), bins=edges)[0]
    if valid_pixels == 0:
        raise DataFormatError(f"{Path(root) / split / 'depth'}: no valid depth pixel in the split")
    mean = depth_sum / valid_pixels
    labelled = class_pixels[:NUM_CLASSES]
    total_labelled = int(labelled.sum())
    return {
        "num_images": len(indices),
        "depth_valid_pixels": valid_pixels,
        "depth_mean": mean,
        "depth_std": float(np.sqrt(max(depth_sq_sum / valid_pixels - mean * mean, 0.0))),
        "depth_min": depth_min,
        "depth_max": depth_max,
        "class_pixels": labelled.tolist(),
        "class_frequency": (labelled / max(total_labelled, 1)).tolist(),
        "ignore_pixels": int(class_pixels[NUM_CLASSES:].sum()),
        "histogram_edges": edges.tolist(),
        "histogram_counts": hist.tolist(),
    }


def save_histogram(stats: dict[str, Any], path: str | Path, title: str) -> None:
    """Bar plot of the depth histogram on a log axis (matplotlib's Agg canvas, no display needed)."""
    from matplotlib.figure import Figure

    edges = np.asarray(stats["histogram_edges"])
    fig = Figure(figsize=(7, 4), dpi=100)
    ax = fig.add_subplot()
    ax.stairs(stats["histogram_counts"], edges, fill=True)
    ax.set_xscale("log")
    ax.set_xlim(edges[0], edges[-1])
    ticks = [4, 10, 20, 50, 100, 200, 300]
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel("depth (m), log-spaced bins; stored disparity is quantised, so far bins can be empty")
    ax.set_ylabel("valid pixels")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, format="png")  # PNG whatever the name says


def run_stats(
    root: str | Path, split: str = "train", histogram: str | Path | None = None, json_path: str | Path | None = None
) -> int:
    """Print the statistics of ``split``, save the depth histogram PNG (``histogram``, by default
    ``depth_histogram_<split>.png`` in the current folder: the dataset stays read-only) and optionally
    a JSON file."""
    try:
        stats = compute_stats(root, split)
    except (DataFormatError, FileNotFoundError, ValueError) as exc:
        print(f"mtl data stats: error: {exc}", file=sys.stderr)
        return 1
    print(f"{root} [{split}]: {stats['num_images']} images, {stats['depth_valid_pixels']} valid depth pixels")
    print(
        f"depth (m): mean {stats['depth_mean']:.4f}  std {stats['depth_std']:.4f}  "
        f"min {stats['depth_min']:.4f}  max {stats['depth_max']:.4f}"
    )
    width = max(len(name) for name in CLASS_NAMES)
    print(f"{'class':<{width}}  {'pixels':>12}  {'percent':>8}")
    for name, count, freq in zip(CLASS_NAMES, stats["class_pixels"], stats["class_frequency"]):
        print(f"{name:<{width}}  {count:>12}  {100 * freq:>8.3f}")
    print(f"{'(ignore)':<{width}}  {stats['ignore_pixels']:>12}")
    histogram = Path(histogram) if histogram else Path(f"depth_histogram_{split}.png")
    try:
        save_histogram(stats, histogram, f"depth of {split} ({stats['depth_valid_pixels']} valid pixels)")
        if json_path:
            Path(json_path).write_text(json.dumps(stats, indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        print(f"mtl data stats: error: {exc}", file=sys.stderr)
        return 1
    print(f"histogram: {histogram}")
    if json_path:
        print(f"json: {json_path}")
    return 0
