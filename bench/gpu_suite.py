"""One-shot GPU benchmark: everything worth knowing about a lent GPU machine, in one run of at most ~8 minutes.

Usage: python bench/gpu_suite.py OUT_DIR [--budget-s 480] [--dry-run]

Records, into OUT_DIR/gpu_suite.json and OUT_DIR/gpu_suite.md:
1. the device, driver and CPU;
2. training throughput of the three models at 256² (fp32 eager baseline against the fastest configuration:
   bf16, channels_last, torch.compile), with MFU against the device's datasheet bf16 peak and against a peak
   measured in the same run;
3. the training data loader's throughput with every CPU core on generated 512×256 data, against the GPU's
   step rate (is loading the bottleneck?);
4. the wall time of one real epoch (`mtl train`, batch 16, 256² crops, fastest configuration) on as many
   generated samples as the budget allows, projected to the course schedule (20 000 samples, 16 epochs);
5. a one-GPU DDP run (NCCL) that must finish;
6. inference images/s at 1024×2048 in fp32 and bf16.
Each section checks the time left and shrinks (or skips, saying so) rather than overrun the budget.
--dry-run runs every section on the CPU at toy sizes (the test suite does, so the script cannot rot).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from benchlib import (
    datasheet_bf16_peak,
    forward_flops_per_image,
    hardware_line,
    measured_peaks,
    time_training,
    train_flags,
)

MODELS = ("deeplabv3p", "branched", "distillation")
COURSE_SAMPLES, COURSE_EPOCHS = 20_000, 16


class Budget:
    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return self.end - time.monotonic()


def sizes(dry_run: bool) -> dict[str, Any]:
    if dry_run:  # compile only for the first model: inductor's CPU compile alone takes a minute
        return {"crop": 32, "batch": 2, "steps": 1, "encoder": "resnet18", "image": (128, 64), "loader_images": 16,
                "epoch_images": 8, "workers": 1, "inference": (64, 128), "accelerator": "cpu", "peak_scale": 8,
                "compile_models": MODELS[:1]}
    return {"crop": 256, "batch": 16, "steps": 10, "encoder": "resnet34", "image": (512, 256), "loader_images": 640,
            "epoch_images": COURSE_SAMPLES, "workers": os.cpu_count() or 1, "inference": (1024, 2048),
            "accelerator": "gpu", "peak_scale": 1, "compile_models": MODELS}


def device_section(device: str) -> dict[str, Any]:
    info: dict[str, Any] = {"hardware": hardware_line(device), "torch": str(torch.__version__), "cuda": torch.version.cuda}
    if shutil.which("nvidia-smi"):
        query = "--query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit"
        result = subprocess.run(["nvidia-smi", query, "--format=csv,noheader"], capture_output=True, text=True)
        info["nvidia_smi"] = result.stdout.strip()
    return info


def training_section(device: str, size: dict[str, Any], budget: Budget) -> list[dict[str, Any]]:
    configs = {"fp32 eager": ("32", False, False), "bf16 channels_last": ("bf16-mixed", True, False),
               "bf16 channels_last compile": ("bf16-mixed", True, True)}
    sheet = datasheet_bf16_peak(device)
    peaks = measured_peaks(device, repeats=3, scale=size["peak_scale"])
    rows = []
    for model in MODELS:
        flags = train_flags(["--model_name", model, "--model_encoder_name", size["encoder"], "--optimizer", "adam"])
        flops = 3 * forward_flops_per_image(flags, size["crop"])
        for label, (precision, channels_last, compile_model) in configs.items():
            if compile_model and model not in size["compile_models"]:
                continue
            if budget.left() < 60:
                rows.append({"model": model, "config": label, "skipped": "out of time"})
                continue
            try:
                seconds = time_training(flags, size["batch"], size["crop"], precision, channels_last, compile_model,
                                        size["steps"], warmup=3 if compile_model else 2)
            except Exception as exc:  # a backend may lack a kernel or a compiler: report and go on
                rows.append({"model": model, "config": label, "error": f"{type(exc).__name__}: {str(exc)[:200]}"})
                continue
            rate = size["batch"] / seconds
            measured = peaks["conv3x3_bf16" if precision == "bf16-mixed" else "conv3x3_fp32"]
            rows.append({"model": model, "config": label, "images_per_s": rate, "tflops": flops * rate / 1e12,
                         "mfu_datasheet": flops * rate / sheet if sheet else None, "of_measured_peak": flops * rate / measured})
    return rows


def fastest(rows: list[dict[str, Any]], model: str) -> dict[str, Any]:
    done = [r for r in rows if r["model"] == model and "images_per_s" in r]
    return max(done, key=lambda r: r["images_per_s"]) if done else {}


def generate(root: Path, count: int, size: tuple[int, int], workers: int) -> None:
    from mtl.datasets import DATASETS

    DATASETS["miniscapes"].generate(root, num_train=count, num_val=max(2, count // 50), num_test=0, width=size[0],
                                    height=size[1], seed=0, workers=workers)


def loader_section(root: Path, size: dict[str, Any]) -> float:
    """Images/s of the real training loader (decode, perspective crop, flip, collation) with every core."""
    from mtl.config import parse_config
    from mtl.datasets import build_dataset
    from mtl.engine.data import AugmentedDataset, ResumableSampler, train_loader
    from mtl.engine.train import data_options
    from mtl.datasets import SplitDataset
    from mtl.inference.predictor import Predictor

    cfg = parse_config(["--dataset_root", str(root), "--batch_size", str(size["batch"]), "--aug_input_crop_size",
                        str(size["crop"]), "--workers", str(size["workers"]), "--aug_geom_scale_min", "0.8",
                        "--aug_geom_scale_max", "1.2", "--aug_geom_reflect", "yes", "--depth_stats", "miniscapes"])
    tasks = Predictor.from_flags(cfg, {"depth": {"mean": 27.0, "std": 29.0}}).tasks
    options = data_options(cfg)
    dataset = AugmentedDataset(SplitDataset(build_dataset(cfg), "train", tasks), options.augmentation, options.seed)
    loader = train_loader(options, ResumableSampler(len(dataset), seed=0), dataset)
    iterator = iter(loader)
    next(iterator)
    start, count = time.perf_counter(), 0
    for batch in iterator:
        count += batch["rgb"].shape[0]
    return count / max(time.perf_counter() - start, 1e-9)


def mtl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mtl.cli.main", *args], capture_output=True, text=True)


def epoch_section(root: Path, runs: Path, size: dict[str, Any], precision: str, channels_last: bool) -> dict[str, Any]:
    flags = ["--dataset_root", str(root), "--log_dir", str(runs / "epoch"), "--num_epochs", "1", "--batch_size",
             str(size["batch"]), "--aug_input_crop_size", str(size["crop"]), "--workers", str(size["workers"]),
             "--optimizer", "adam", "--optimizer_lr", "1e-4", "--model_encoder_name", size["encoder"],
             "--precision", precision, "--channels_last", str(channels_last), "--progress_bar", "no",
             "--prepare_submission", "no", "--depth_stats", "miniscapes", "--accelerator", size["accelerator"]]
    start = time.perf_counter()
    result = mtl("train", *flags)
    seconds = time.perf_counter() - start
    samples = len(list((root / "train" / "rgb").glob("*.jpg")))
    out = {"samples": samples, "seconds": seconds, "exit": result.returncode}
    if result.returncode:
        out["error"] = result.stderr.strip().splitlines()[-1:] or ["?"]
    out["projected_course_s"] = seconds * COURSE_SAMPLES / samples * COURSE_EPOCHS
    return out


def ddp_section(root: Path, runs: Path, size: dict[str, Any]) -> dict[str, Any]:
    result = mtl("train", "--dataset_root", str(root), "--log_dir", str(runs / "ddp"), "--num_epochs", "1",
                 "--batch_size", "2", "--aug_input_crop_size", "64", "--model_encoder_name", "resnet18",
                 "--workers", "0", "--workers_validation", "0", "--strategy", "ddp", "--devices", "1",
                 "--accelerator", size["accelerator"], "--progress_bar", "no", "--prepare_submission", "no",
                 "--depth_stats", "miniscapes")
    backend = "nccl" if size["accelerator"] == "gpu" else "gloo"
    return {"backend": backend, "exit": result.returncode, "last_line": (result.stderr.strip().splitlines() or [""])[-1]}


def inference_section(device: str, size: dict[str, Any]) -> list[dict[str, Any]]:
    from mtl.inference.predictor import Predictor

    height, width = size["inference"]
    rows = []
    for precision, channels_last in (("32", False), ("bf16-mixed", True)):
        flags = train_flags(["--model_encoder_name", size["encoder"], "--precision", precision,
                             "--channels_last", str(channels_last)])
        predictor = Predictor.from_flags(flags, {"depth": {"mean": 27.0, "std": 29.0}}, device).eval().to(device)
        rgb = torch.randint(0, 256, (1, 3, height, width), dtype=torch.uint8, device=device)
        predictor.predict(rgb)
        times = []
        for _ in range(3 if device == "cpu" else 10):
            if device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            predictor.predict(rgb)
            if device == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
        rows.append({"precision": precision, "channels_last": channels_last, "input": f"{height}×{width}",
                     "images_per_s": 1 / min(times)})
    return rows


def markdown(report: dict[str, Any]) -> str:
    lines = ["# GPU suite", "", f"Hardware: {report['device']['hardware']}", ""]
    if report["device"].get("nvidia_smi"):
        lines += [f"nvidia-smi: {report['device']['nvidia_smi']}", ""]
    lines += ["| model | configuration | img/s | TFLOP/s | MFU (datasheet bf16) | of measured peak |", "|---|---|---|---|---|---|"]
    for r in report["training"]:
        if "images_per_s" in r:
            mfu = f"{100 * r['mfu_datasheet']:.1f} %" if r.get("mfu_datasheet") else "n/a"
            lines.append(f"| {r['model']} | {r['config']} | {r['images_per_s']:.1f} | {r['tflops']:.2f} | {mfu} | "
                         f"{100 * r['of_measured_peak']:.1f} % |")
        else:
            lines.append(f"| {r['model']} | {r['config']} | {r.get('error') or r.get('skipped')} | | | |")
    loader = report.get("loader")
    if loader:
        lines += ["", f"Data loader: {loader['images_per_s']:.0f} images/s with {loader['workers']} workers; the GPU "
                  f"trains deeplabv3p at {loader['gpu_images_per_s']:.0f} images/s: loader/GPU = {loader['ratio']:.2f}."]
    epoch = report.get("epoch")
    if epoch:
        lines += ["", f"One epoch of {epoch['samples']} samples: {epoch['seconds']:.0f} s (exit {epoch['exit']}); "
                  f"projected course schedule ({COURSE_SAMPLES} samples × {COURSE_EPOCHS} epochs): "
                  f"{epoch['projected_course_s'] / 60:.1f} min."]
    if report.get("ddp"):
        lines += ["", f"DDP ({report['ddp']['backend']}, 1 device): exit {report['ddp']['exit']}."]
    lines += ["", "| inference | input | img/s |", "|---|---|---|"]
    lines += [f"| {r['precision']}{' channels_last' if r['channels_last'] else ''} | {r['input']} | {r['images_per_s']:.1f} |"
              for r in report.get("inference", [])]
    lines += ["", *(f"- skipped: {s}" for s in report["skipped"])]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--budget-s", type=float, default=None, help="seconds (default 480; a dry run has no limit)")
    parser.add_argument("--dry-run", action="store_true", help="every section on the CPU at toy sizes")
    args = parser.parse_args()
    budget = Budget(args.budget_s or (3600.0 if args.dry_run else 480.0))
    size = sizes(args.dry_run)
    if args.dry_run:
        # Inductor's C++ code generation for the CPU takes minutes on a cold cache and is not what a GPU runs;
        # the dry run checks the script's plumbing, so it compiles with AOTAutograd only (the same graph capture
        # of forward and backward, without code generation).
        torch.compile = functools.partial(torch.compile, backend="aot_eager")
    device = "cpu" if args.dry_run or not torch.cuda.is_available() else "cuda"
    if device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    args.out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"device": device_section(device), "skipped": []}
    report["training"] = training_section(device, size, budget)
    best = fastest(report["training"], "deeplabv3p")
    precision, channels_last = ("bf16-mixed", True) if "bf16" in best.get("config", "") else ("32", False)
    with tempfile.TemporaryDirectory() as tmp:
        data, runs = Path(tmp) / "data", Path(tmp) / "runs"
        generate(data, size["loader_images"], size["image"], size["workers"])
        rate = loader_section(data, size)
        gpu_rate = best.get("images_per_s", 0.0)
        report["loader"] = {"images_per_s": rate, "workers": size["workers"], "gpu_images_per_s": gpu_rate,
                            "ratio": rate / gpu_rate if gpu_rate else None}
        # As many samples for the epoch as the time left allows (generation at the measured rate, then training).
        seconds_left = budget.left() - 90  # DDP and inference after it
        per_sample = 1 / max(rate, 1e-9) + 1 / max(gpu_rate, 1e-9)
        fits = int(max(0.0, seconds_left) / per_sample / 2)  # half for generating the data, half for the epoch
        samples = size["epoch_images"] if args.dry_run else min(size["epoch_images"], fits)
        if samples >= size["batch"] * 4:
            shutil.rmtree(data)
            generate(data, samples, size["image"], size["workers"])
            report["epoch"] = epoch_section(data, runs, size, precision, channels_last)
        else:
            report["skipped"].append("epoch: not enough time left")
        if budget.left() > 30:
            report["ddp"] = ddp_section(data, runs, size)
        else:
            report["skipped"].append("ddp: out of time")
    report["inference"] = inference_section(device, size) if budget.left() > 20 else []
    (args.out / "gpu_suite.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "gpu_suite.md").write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
