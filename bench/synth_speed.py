"""Speed of the procedural dataset generator (`mtl data synth`).

1. Renders N samples in this process, one at a time (one worker), and prints images/s, with the CPU
   time per image beside the wall time (on a shared machine the two differ when other work runs).
2. Runs generate_dataset on N images with 1 worker and with 2 workers into temporary folders (this
   includes JPEG/PNG encoding and writing of RGB, semseg, depth and normals) and prints both rates
   and their ratio: a ratio near 2 on a 2-core machine shows that both cores are used. The 1-worker
   run is in this process, so its CPU time per image is printed too.

    .venv/bin/python bench/synth_speed.py [--n 40 --width 512 --height 256]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from mtl.data.synth import render_sample
from mtl.datasets import DATASETS


def render_rate(n: int, width: int, height: int) -> tuple[float, float]:
    render_sample(0, "train", 0, width, height)  # warm-up: imports, noise table
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(n):
        render_sample(0, "train", i, width, height)
    return n / (time.perf_counter() - wall), (time.process_time() - cpu) / n


def generate_rate(n: int, width: int, height: int, workers: int) -> tuple[float, float]:
    """Images/s and CPU seconds per image of this process (the whole cost with 1 worker)."""
    with tempfile.TemporaryDirectory() as tmp:
        start, cpu = time.perf_counter(), time.process_time()
        DATASETS["miniscapes"].generate(Path(tmp) / "data", num_train=n, num_val=0, num_test=0, width=width,
                                        height=height, seed=1, workers=workers)
        return n / (time.perf_counter() - start), (time.process_time() - cpu) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=40, help="images per measurement")
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--height", type=int, default=256)
    args = parser.parse_args()

    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} (1 min)")
    rate, cpu = render_rate(args.n, args.width, args.height)
    print(f"render_sample, 1 worker, {args.width}x{args.height}: {rate:.2f} images/s ({cpu * 1000:.0f} ms CPU per image)")
    one, one_cpu = generate_rate(args.n, args.width, args.height, workers=1)
    two, _ = generate_rate(args.n, args.width, args.height, workers=2)
    print(f"generate_dataset, {args.n} images: 1 worker {one:.2f} images/s ({one_cpu * 1000:.0f} ms CPU per image), "
          f"2 workers {two:.2f} images/s, ratio {two / one:.2f}")


if __name__ == "__main__":
    main()
