"""Seconds per image of the boundary F-measure (mtl.metrics.boundary) on a NYUD-v2-sized map (425×560).

The ground truth is ~5% boundary pixels (random smooth region borders); the prediction is a blurred, noisy copy, so
that every one of the 99 thresholds selects another set of pixels.
    .venv/bin/python bench/boundary_metric.py [--images 3] [--tolerance 0.011]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy import ndimage

from mtl.metrics.boundary import image_counts


def synthetic_pair(rng: np.random.Generator, height: int = 425, width: int = 560) -> tuple[np.ndarray, np.ndarray]:
    field = ndimage.gaussian_filter(rng.normal(size=(height, width)), 30)
    labels = np.digitize(field, np.quantile(field, np.linspace(0, 1, 6)[1:-1]))
    truth = np.zeros((height, width), dtype=np.uint8)
    truth[:, 1:] |= labels[:, 1:] != labels[:, :-1]
    truth[1:] |= labels[1:] != labels[:-1]
    soft = ndimage.gaussian_filter(ndimage.shift(truth.astype(float), (1.5, -1.0), order=0), 1.5) * 4
    prob = np.clip(soft + rng.normal(0, 0.08, size=soft.shape), 0, 1)
    return np.round(prob * 255).astype(np.uint8), truth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=3)
    parser.add_argument("--tolerance", type=float, default=0.011)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    pairs = [synthetic_pair(rng) for _ in range(args.images)]
    print(f"edge pixels in the ground truth: {np.mean([t.mean() for _, t in pairs]) * 100:.1f}%")
    start = time.perf_counter()
    for codes, truth in pairs:
        image_counts(codes, truth, args.tolerance)
    print(f"{(time.perf_counter() - start) / args.images:.2f} s per 425×560 image (99 thresholds)")


if __name__ == "__main__":
    main()
