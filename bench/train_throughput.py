"""Training throughput (images/s) per model: the course's plain fp32 eager loop vs the fastest configuration.

Usage: python bench/train_throughput.py [--models deeplabv3p branched distillation] [--batch_size 4]
       [--crop 256] [--steps 5] [--compile auto|yes|no] [--dataset_root DIR --workers 2]

Each configuration runs the toolkit's own training step (MultiTaskModule: forward, task losses, weighting,
backward, optimiser step) on a fixed random batch, so data loading is left out; with --dataset_root the
training data loader (decode, perspective crop, collation, in --workers processes) is timed alone, to
show whether it keeps up with the model. All configurations of a model are timed in the same
process, one after another, and the ratio is reported against the fp32 eager baseline. On a GPU it also prints
model FLOP utilisation (3 × forward FLOPs per image, counted with torch.utils.flop_counter) against the device's
dense bf16 peak.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from mtl.engine.config import build_parser, plain_values
from mtl.engine.module import MultiTaskModule

# Dense bf16 tensor-core peaks (TFLOP/s) from the vendors' data sheets.
BF16_PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L4": 121.0, "A10": 125.0, "V100": 125.0}


def make_module(model_name: str, channels_last: bool, compile_model: bool) -> MultiTaskModule:
    cfg = build_parser().parse_args(["--dataset_root", ".", "--model_name", model_name, "--optimizer", "adam"])
    cfg.channels_last, cfg.compile = channels_last, compile_model
    config = plain_values(cfg)
    return MultiTaskModule(config, 27.0727, 29.1264)


def random_batch(batch_size: int, crop: int, device: torch.device) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "rgb": torch.randint(0, 256, (batch_size, 3, crop, crop), generator=g, dtype=torch.uint8).to(device),
        "semseg": torch.randint(0, 19, (batch_size, crop, crop), generator=g).to(device),
        "depth": (4 + 100 * torch.rand(batch_size, crop, crop, generator=g)).to(device),
    }


def time_config(
    model_name: str,
    batch: dict,
    device: torch.device,
    steps: int,
    precision: str,
    channels_last: bool,
    compile_model: bool,
) -> float:
    """Median seconds per training step."""
    torch.manual_seed(0)
    module = make_module(model_name, channels_last, compile_model).to(device).train()
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-4)
    autocast = (
        torch.autocast(device.type, dtype=torch.bfloat16) if precision == "bf16-mixed" else contextlib.nullcontext()
    )

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            total, _ = module.compute_losses(module(batch["rgb"]), batch)
        total.backward()
        optimizer.step()

    for _ in range(2 if not compile_model else 3):  # warm-up (compilation, allocator, cuDNN autotuning)
        step()
    times = []
    for _ in range(steps):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def loader_images_per_second(root: str, batch_size: int, crop: int, workers: int, batches: int = 30) -> float:
    """Images/s delivered by the toolkit's training loader (augmentation on), after its first batch."""
    from mtl.data.miniscapes import MiniScapes
    from mtl.engine.data import AugmentedDataset, ResumableSampler, train_loader

    cfg = build_parser().parse_args(
        [
            "--dataset_root",
            root,
            "--batch_size",
            str(batch_size),
            "--aug_input_crop_size",
            str(crop),
            "--workers",
            str(workers),
            "--aug_geom_scale_min",
            "0.8",
            "--aug_geom_scale_max",
            "1.2",
            "--aug_geom_tilt_max_deg",
            "5",
            "--aug_geom_reflect",
            "yes",
        ]
    )
    dataset = AugmentedDataset(MiniScapes(root, "train", ("rgb", "semseg", "depth")), cfg)
    loader = train_loader(cfg, ResumableSampler(len(dataset), seed=0), dataset)
    iterator = iter(loader)
    next(iterator)
    start, count = time.perf_counter(), 0
    for _, batch in zip(range(batches), iterator):
        count += batch["rgb"].shape[0]
    return count / (time.perf_counter() - start)


def forward_flops_per_image(model_name: str, crop: int) -> float:
    module = make_module(model_name, False, False).eval()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        module(torch.zeros(1, 3, crop, crop))
    return float(counter.get_total_flops())


def bf16_peak(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak * 1e12 for key, peak in BF16_PEAK_TFLOPS.items() if key in name), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["deeplabv3p", "branched", "distillation"])
    parser.add_argument("--batch_size", type=int, default=4)
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--compile", choices=["auto", "yes", "no"], default="auto", help="auto: only on a GPU")
    parser.add_argument("--dataset_root", default=None, help="also time the training data loader on this dataset")
    parser.add_argument("--workers", type=int, default=2, help="loader processes for --dataset_root")
    args = parser.parse_args()

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.set_num_threads(os.cpu_count() or 1)
    use_compile = args.compile == "yes" or (args.compile == "auto" and device.type == "cuda")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    hardware = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {os.cpu_count()} threads"
    print(
        f"device: {hardware}; torch {torch.__version__}; batch {args.batch_size}, crop {args.crop}², {args.steps} timed steps"
    )

    if args.dataset_root:
        rate = loader_images_per_second(args.dataset_root, args.batch_size, args.crop, args.workers)
        print(f"training data loader: {rate:.1f} images/s with {args.workers} worker processes (augmentation on)")
    candidates = [("bf16-mixed", False, False), ("32", True, False), ("bf16-mixed", True, False)]
    if use_compile:
        candidates += [("bf16-mixed", True, True)]
    batch = random_batch(args.batch_size, args.crop, device)
    print("| model | baseline fp32 eager (img/s) | fastest configuration | img/s | speed-up | MFU |")
    print("|---|---|---|---|---|---|")
    for model_name in args.models:
        base = args.batch_size / time_config(model_name, batch, device, args.steps, "32", False, False)
        results = {}
        for precision, channels_last, compile_model in candidates:
            label = (
                f"{precision}" + (", channels_last" if channels_last else "") + (", compile" if compile_model else "")
            )
            try:
                results[label] = args.batch_size / time_config(
                    model_name, batch, device, args.steps, precision, channels_last, compile_model
                )
            except Exception as exc:  # a backend may lack a kernel (e.g. bf16 on an old CPU): report, go on
                print(f"  {model_name} [{label}] failed: {type(exc).__name__}: {exc}")
        best_label, best = max(results.items(), key=lambda kv: kv[1]) if results else ("fp32 eager", base)
        if best < base:
            best_label, best = "fp32 eager (nothing faster here)", base
        peak = bf16_peak(device)
        mfu = f"{100 * 3 * forward_flops_per_image(model_name, args.crop) * best / peak:.1f}%" if peak else "n/a (CPU)"
        print(f"| {model_name} | {base:.2f} | {best_label} | {best:.2f} | {best / base:.2f}× | {mfu} |", flush=True)


if __name__ == "__main__":
    main()
