"""What the hardware offers, detected at run time, and the precision and memory format chosen from it.

Machines differ from one day to the next, so nothing here is a constant about "this CPU":
- bf16 matrix units: on a CPU, AMX-BF16 or AVX512-BF16 in the processor's flags together with oneDNN's
  bf16 support (without them bf16 is emulated; measured 15× slower than fp32 on an AVX2-only EPYC, see
  docs/BENCHMARKS.md); on a GPU, compute capability ≥ 8.0.
- ``--precision auto``: bf16-mixed where there are bf16 units, fp16-mixed (with a grad scaler, Lightning's)
  on older GPUs, fp32 elsewhere.
- ``--channels_last auto``: on for GPUs and for CPUs that train in bf16 (oneDNN's fast bf16 convolutions
  want NHWC); off for fp32 on a CPU, where it was no faster on the machines measured.
"""

from __future__ import annotations

import argparse
import os
import platform
from pathlib import Path
from typing import Any

PRECISIONS = ("auto", "32", "bf16-mixed", "16-mixed")


def cpu_flags() -> set[str]:
    """The processor's feature flags (Linux); empty where the system does not list them."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    line = next((line for line in text.splitlines() if line.startswith(("flags", "Features"))), "")
    return set(line.partition(":")[2].split())


def cpu_name() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
        return next(line.partition(":")[2].strip() for line in text.splitlines() if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def device_type(accelerator: str) -> str:
    """"cuda" or "cpu": what Lightning's --accelerator will use here."""
    import torch

    if accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        return "cuda"
    return "cpu"


def bf16_units(device: str) -> bool:
    import torch

    if device == "cuda":
        return torch.cuda.get_device_capability()[0] >= 8
    native = {"amx_bf16", "avx512_bf16"} & cpu_flags()
    return bool(native) and torch.ops.mkldnn._is_mkldnn_bf16_supported()


def choose_precision(requested: str, device: str) -> str:
    if requested != "auto":
        return requested
    if bf16_units(device):
        return "bf16-mixed"
    return "16-mixed" if device == "cuda" else "32"


def choose_channels_last(requested: bool | str, precision: str, device: str) -> bool:
    if requested != "auto":
        return bool(requested)
    return device == "cuda" or precision == "bf16-mixed"


def autocast_dtype(precision: str) -> Any:
    """The autocast dtype of a mixed precision (None for 32)."""
    import torch

    return {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(precision)


def auto_bool(value: str) -> bool | str:
    """A boolean flag that also takes 'auto' (chosen from the hardware)."""
    from mtl.flags import str2bool

    return "auto" if value.strip().lower() == "auto" else str2bool(value)


def describe(device: str) -> dict[str, Any]:
    """The hardware line written next to every figure and into each run directory."""
    import torch

    info: dict[str, Any] = {
        "cpu": cpu_name(),
        "cpu_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu_units": " ".join(sorted(f for f in cpu_flags() if f.startswith(("avx512", "amx", "avx2", "fma")))),
        "torch": str(torch.__version__),
        "torch_threads": torch.get_num_threads(),
        "device": device,
        "bf16_units": bf16_units(device),
    }
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name()
        info["gpu_capability"] = ".".join(map(str, torch.cuda.get_device_capability()))
    return info


def resolve(flags: argparse.Namespace) -> tuple[str, bool, dict[str, Any]]:
    """(precision, channels_last, the hardware record) for a run's --precision/--channels_last/--accelerator."""
    device = device_type(flags.accelerator)
    precision = choose_precision(flags.precision, device)
    channels_last = choose_channels_last(flags.channels_last, precision, device)
    record = {**describe(device), "precision": precision, "channels_last": channels_last}
    return precision, channels_last, record
