"""Shared pieces of the benchmarks: the hardware line, a peak measured in the same run, and the toolkit's real
training step timed through the Lightning loop (MultiTaskModule: forward, task losses, the weighting's backward,
optimiser step) on a fixed in-memory batch, so that data loading is left out."""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import pytorch_lightning as pl
import torch
from torch.utils.flop_counter import FlopCounterMode

from mtl.config import build_parser
from mtl.datasets import DATASETS
from mtl.engine.module import MultiTaskModule
from mtl.engine.train import gradient_scaler, precision_arguments, quiet_lightning
from mtl.hardware import choose, describe
from mtl.inference.predictor import Predictor
from mtl.optimization import OptimizerOptions, ScheduleOptions
from mtl.weighting import build_weighting

# Dense bf16 tensor-core peaks (TFLOP/s) from the vendors' data sheets, for MFU on a GPU.
BF16_PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0, "A10": 125.0}


def hardware_line(device: str) -> str:
    info = describe(device)
    gpu = f"; GPU {info['gpu']} (capability {info['gpu_capability']})" if device == "cuda" else ""
    return (
        f"CPU {info['cpu']} ({info['cpu_cores']} cores; units {info['cpu_units'] or 'none listed'}; bf16 matrix units: "
        f"{'yes' if info['bf16_units'] else 'no'}){gpu}; torch {info['torch']}, {info['torch_threads']} threads"
    )


def train_flags(argv: list[str]) -> argparse.Namespace:
    flags = build_parser().parse_args(["--dataset_root", ".", *argv])
    flags.tasks = tuple(flags.tasks or DATASETS[flags.dataset].info.default_tasks)
    return flags


def random_batch(tasks: tuple[str, ...], batch_size: int, crop: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    batch = {"rgb": torch.randint(0, 256, (batch_size, 3, crop, crop), generator=g, dtype=torch.uint8), "index": torch.arange(batch_size)}
    if "semseg" in tasks:
        batch["semseg"] = torch.randint(0, 19, (batch_size, crop, crop), generator=g)
    if "depth" in tasks:
        batch["depth"] = 4 + 100 * torch.rand(batch_size, crop, crop, generator=g)
    if "normals" in tasks:
        n = torch.randn(batch_size, 3, crop, crop, generator=g)
        batch["normals"] = n / n.norm(dim=1, keepdim=True)
    return batch


class _Timer(pl.Callback):
    def __init__(self) -> None:
        self.times: list[float] = []
        self.start = 0.0

    def on_train_batch_start(self, *args: Any) -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.start = time.perf_counter()

    def on_train_batch_end(self, *args: Any) -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.times.append(time.perf_counter() - self.start)


def time_training(
    flags: argparse.Namespace, batch_size: int, crop: int, precision: str, channels_last: bool, compile: bool,
    steps: int, warmup: int = 2,
) -> float:
    """Median seconds per training step of the real loop (warm-up steps left out: compilation, autotuning), in
    ``precision`` as `mtl train` runs it (16-mixed: fp16 with a gradient scaler, which the module is handed)."""
    flags = argparse.Namespace(**{**vars(flags), "channels_last": channels_last, "compile": compile, "precision": precision})
    choice = choose(precision, channels_last, "auto")
    device = choice.device
    scaler = gradient_scaler(choice)
    torch.manual_seed(0)
    predictor = Predictor.from_flags(flags, {t: {"mean": 27.0, "std": 29.0} for t in flags.tasks if t == "depth"}, device)
    module = MultiTaskModule(
        predictor,
        build_weighting(flags, flags.tasks),
        DATASETS[flags.dataset],
        OptimizerOptions.from_flags(flags),
        ScheduleOptions.from_flags(flags),
        hparams={},
        log_every_n_steps=10**9,
        grad_scaler=scaler,
    )
    batch = random_batch(flags.tasks, batch_size, crop)
    loader = torch.utils.data.DataLoader([batch] * (warmup + steps), batch_size=None)
    timer = _Timer()
    with quiet_lightning():
        trainer = pl.Trainer(
            accelerator=device, devices=1, **precision_arguments(choice, [], scaler), max_steps=warmup + steps, logger=False,
            enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False, callbacks=[timer],
            limit_val_batches=0, num_sanity_val_steps=0, benchmark=device == "cuda",
        )
        trainer.fit(module, train_dataloaders=loader)
    return statistics.median(timer.times[warmup:])


def forward_flops_per_image(flags: argparse.Namespace, crop: int) -> float:
    predictor = Predictor.from_flags(flags, {t: {"mean": 27.0, "std": 29.0} for t in flags.tasks if t == "depth"})
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        predictor.eval()(torch.zeros(1, 3, crop, crop))
    return float(counter.get_total_flops())


def _best_time(run: Any, device: str, repeats: int, budget_s: float = 3.0) -> float:
    """Fastest of up to ``repeats`` runs after a warm-up, stopping early once ``budget_s`` is spent (an emulated
    bf16 matmul can take tens of seconds; its first run then serves as the measurement)."""
    times: list[float] = []
    spent = 0.0
    for _ in range(repeats + 1):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        run()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
        spent += times[-1]
        if spent > budget_s:
            break
    return min(times[1:] or times)


def measured_peaks(device: str, repeats: int = 5, scale: int = 1) -> dict[str, float]:
    """FLOP/s of a square matmul (4096² on a GPU, 2048² on a CPU) and a 3×3 convolution (256→256 channels, 64²,
    batch 8, channels_last), in fp32 and bf16, measured now: the ceiling the training step's FLOP/s is read against.
    ``scale`` divides every size (a dry run)."""
    size = (4096 if device == "cuda" else 2048) // scale
    channels, side = 256 // scale, 64 // scale
    peaks = {}
    for dtype_name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        a = torch.randn(size, size, device=device, dtype=dtype)
        x = torch.randn(8, channels, side, side, device=device, dtype=dtype).contiguous(memory_format=torch.channels_last)
        w = torch.randn(channels, channels, 3, 3, device=device, dtype=dtype).contiguous(memory_format=torch.channels_last)
        for name, run, flops in (
            ("matmul", lambda: a @ a, 2 * size**3),
            ("conv3x3", lambda: torch.nn.functional.conv2d(x, w, padding=1), 2 * 8 * side * side * channels * channels * 9),
        ):
            peaks[f"{name}_{dtype_name}"] = flops / _best_time(run, device, repeats)
    return peaks


def datasheet_bf16_peak(device: str) -> float | None:
    if device != "cuda":
        return None
    name = torch.cuda.get_device_name()
    return next((peak * 1e12 for key, peak in BF16_PEAK_TFLOPS.items() if key in name), None)
