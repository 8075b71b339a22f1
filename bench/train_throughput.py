"""Training throughput (images/s) per model: the course's fp32 eager loop against every faster configuration
the hardware allows, in one process, with the achieved FLOP/s as a fraction of a peak measured in the same run.

Usage: python bench/train_throughput.py [--models deeplabv3p branched distillation] [--batch_size 4]
       [--crop 256] [--steps 5] [--configs ...] [--peak-repeats 5]

The step is the toolkit's own (bench/benchlib.py: the Lightning loop with MultiTaskModule) on a fixed in-memory
batch. Configurations are timed one after another in this process; the ratio is against fp32 eager. bf16 runs
everywhere it is asked for: on a CPU without bf16 matrix units it is emulated, and the table shows what that costs.
"""

from __future__ import annotations

import argparse

import torch
from benchlib import (
    datasheet_bf16_peak,
    forward_flops_per_image,
    hardware_line,
    measured_peaks,
    time_training,
    train_flags,
)

CONFIGS = {
    "fp32 eager": ("32", False, False),
    "fp32 channels_last": ("32", True, False),
    "bf16 channels_last": ("bf16-mixed", True, False),
    "bf16 channels_last compile": ("bf16-mixed", True, True),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["deeplabv3p", "branched", "distillation"])
    parser.add_argument("--batch_size", type=int, default=4)
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS)[:3], choices=list(CONFIGS))
    parser.add_argument("--train_flags", default="--optimizer adam", help="more `mtl train` flags (quoted)")
    args = parser.parse_args()

    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(hardware_line(device))
    peaks = measured_peaks(device)
    print("measured peaks (TFLOP/s): " + ", ".join(f"{k} {v / 1e12:.3f}" for k, v in peaks.items()))
    print(f"batch {args.batch_size}, crop {args.crop}², median of {args.steps} steps after 2 warm-up steps\n")
    print("| model | configuration | img/s | vs fp32 eager | TFLOP/s | % of measured conv peak | MFU (datasheet) |")
    print("|---|---|---|---|---|---|---|")
    for model in args.models:
        flags = train_flags(["--model_name", model, *args.train_flags.split()])
        train_flops = 3 * forward_flops_per_image(flags, args.crop)  # forward + backward ≈ 3 × forward
        base = None
        for label in args.configs:
            precision, channels_last, compile_model = CONFIGS[label]
            seconds = time_training(flags, args.batch_size, args.crop, precision, channels_last, compile_model, args.steps)
            rate = args.batch_size / seconds
            base = base or rate
            achieved = train_flops * rate
            peak = peaks["conv3x3_bf16" if precision == "bf16-mixed" else "conv3x3_fp32"]
            sheet = datasheet_bf16_peak(device)
            mfu = f"{100 * achieved / sheet:.1f} %" if sheet else "n/a"
            print(f"| {model} | {label} | {rate:.2f} | {rate / base:.2f}× | {achieved / 1e12:.3f} | "
                  f"{100 * achieved / peak:.1f} % | {mfu} |", flush=True)


if __name__ == "__main__":
    main()
