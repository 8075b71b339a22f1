"""What the hardware offers, detected at run time, and the precision and memory format chosen from it.

Machines differ from one day to the next, so nothing here is a constant about "this CPU":
- bf16 matrix units: on a CPU, AMX-BF16 or AVX512-BF16 in the processor's flags together with oneDNN's
  bf16 support (without them bf16 is emulated; measured 15× slower than fp32 on an AVX2-only EPYC, see
  docs/BENCHMARKS.md); on a GPU, compute capability ≥ 8.0.
- ``--precision auto``: bf16-mixed where there are bf16 units, 16-mixed with a gradient scaler on older GPUs,
  fp32 elsewhere.
- ``--channels_last auto``: on for GPUs and for CPUs that train in bf16 (oneDNN's fast bf16 convolutions
  want NHWC); off for fp32 on a CPU, where it was no faster on the machines measured.

``MTL_HARDWARE`` names the hardware to choose for instead of the detected one (``avx2``, ``avx512_bf16``,
``amx``, ``cpu`` or ``cuda_sm<major><minor>``, e.g. ``cuda_sm70``). It is what a user reaches for when
``auto`` guesses wrong, and what the tests use to run every branch on any machine. It changes the choices,
not the device: a CPU name keeps ``--accelerator auto`` on the CPU, a CUDA name runs on the GPU where there
is one and otherwise on the CPU with the GPU's choices (so a CPU-only machine exercises 16-mixed and its
gradient scaler). Every run records the hardware, what was detected, whether it was overridden and why the
precision was chosen (``hardware.yaml``).
"""

from __future__ import annotations

import os
import platform
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PRECISIONS = ("auto", "32", "bf16-mixed", "16-mixed")
HARDWARE_ENV = "MTL_HARDWARE"
# The CPU kinds ``auto`` tells apart, with what they have; CUDA kinds are ``cuda_sm<major><minor>``.
CPU_KINDS = {
    "amx": "AMX-BF16 units",
    "avx512_bf16": "AVX512-BF16 units",
    "avx2": "no bf16 units (AVX2)",
    "cpu": "no bf16 units",
}
_CUDA_KIND = re.compile(r"cuda_sm(\d)(\d+)")


class HardwareError(ValueError):
    """An ``MTL_HARDWARE`` value that names no known hardware; the message is one line."""


@dataclass(frozen=True)
class Hardware:
    """The hardware a choice is made for: a CPU kind or a CUDA compute capability."""

    kind: str  # amx, avx512_bf16, avx2, cpu, or cuda_sm<major><minor>
    overridden: bool = False  # named by MTL_HARDWARE rather than detected

    @property
    def device(self) -> str:
        return "cuda" if self.kind.startswith("cuda") else "cpu"

    @property
    def capability(self) -> tuple[int, int] | None:
        match = _CUDA_KIND.fullmatch(self.kind)
        return (int(match[1]), int(match[2])) if match else None

    @property
    def bf16_units(self) -> bool:
        capability = self.capability
        return capability[0] >= 8 if capability else self.kind in ("amx", "avx512_bf16")

    @property
    def units(self) -> str:
        """What the choice rests on, in words (e.g. "AVX512-BF16 units", "a GPU of compute capability 7.0")."""
        capability = self.capability
        return f"a GPU of compute capability {capability[0]}.{capability[1]}" if capability else CPU_KINDS[self.kind]


def parse_kind(name: str) -> Hardware:
    """The hardware an ``MTL_HARDWARE`` value names; HardwareError (one line) for anything else."""
    kind = name.strip().lower()
    if kind in CPU_KINDS or _CUDA_KIND.fullmatch(kind):
        return Hardware(kind, overridden=True)
    raise HardwareError(
        f"{HARDWARE_ENV}={name!r} names no hardware; use one of {', '.join(CPU_KINDS)} or cuda_sm<major><minor> "
        "(e.g. cuda_sm80), or unset it to detect the hardware"
    )


def overridden_kind() -> Hardware | None:
    """The hardware ``MTL_HARDWARE`` names, None when it is unset or empty."""
    value = os.environ.get(HARDWARE_ENV, "").strip()
    return parse_kind(value) if value else None


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


def detect(device: str) -> Hardware:
    """The hardware of ``device`` ("cpu" or "cuda") as found on this machine."""
    import torch

    if device == "cuda":
        major, minor = torch.cuda.get_device_capability()
        return Hardware(f"cuda_sm{major}{minor}")
    flags = cpu_flags()
    onednn_bf16 = bool({"amx_bf16", "avx512_bf16"} & flags) and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    if onednn_bf16:
        return Hardware("amx" if "amx_bf16" in flags else "avx512_bf16")
    return Hardware("avx2" if "avx2" in flags else "cpu")


def device_type(accelerator: str, override: Hardware | None = None) -> str:
    """"cuda" or "cpu": where a run with this --accelerator goes. With ``auto``, a CPU kind named by
    MTL_HARDWARE keeps the run on the CPU; otherwise the GPU is used where there is one."""
    import torch

    if accelerator == "cpu" or (accelerator == "auto" and override is not None and override.device == "cpu"):
        return "cpu"
    if accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        return "cuda"
    return "cpu"


def default_device() -> str:
    """Where a command runs when not told: the GPU where there is one, unless MTL_HARDWARE names a CPU kind."""
    return device_type("auto", overridden_kind())


def choose_precision(requested: str, hardware: Hardware) -> str:
    if requested != "auto":
        return requested
    if hardware.bf16_units:
        return "bf16-mixed"
    return "16-mixed" if hardware.device == "cuda" else "32"


def choose_channels_last(requested: bool | str, precision: str, hardware: Hardware) -> bool:
    if requested != "auto":
        return bool(requested)
    return hardware.device == "cuda" or precision == "bf16-mixed"


@dataclass(frozen=True)
class Choice:
    """Where a run or a prediction goes and in which precision and memory format, with the reason."""

    device: str  # cpu or cuda: where the computation runs
    hardware: Hardware  # what the choices were made for
    detected: Hardware  # what this machine's device is
    precision: str
    channels_last: bool
    auto: bool  # --precision auto decided the precision

    @property
    def grad_scaler(self) -> bool:
        """fp16 gradients underflow without loss scaling (bf16 has fp32's exponent range and needs none)."""
        return self.precision == "16-mixed"

    @property
    def reason(self) -> str:
        """One line: what was chosen and why, e.g. "bf16-mixed + channels_last: AVX512-BF16 units (auto)"."""
        chosen = ("fp32" if self.precision == "32" else self.precision) + (" + channels_last" if self.channels_last else "")
        if self.grad_scaler:
            chosen += " + gradient scaler"
        why = f"{self.hardware.units} (auto)" if self.auto else f"--precision {self.precision}"
        if self.hardware.overridden:
            detected = "as detected" if self.hardware.kind == self.detected.kind else f"detected: {self.detected.kind}"
            why += f"; {HARDWARE_ENV}={self.hardware.kind} ({detected})"
        if self.device != self.hardware.device:
            why += f"; running on the {self.device.upper()}"
        return f"{chosen}: {why}"

    def record(self) -> dict[str, Any]:
        """The hardware line written into each run directory (hardware.yaml) and next to every figure."""
        return {
            **describe(self.device),
            "hardware": self.hardware.kind,
            "hardware_detected": self.detected.kind,
            "hardware_overridden": self.hardware.overridden,
            "precision": self.precision,
            "channels_last": self.channels_last,
            "grad_scaler": self.grad_scaler,
            "reason": self.reason,
        }


def choose(precision: str, channels_last: bool | str, accelerator: str) -> Choice:
    """The device, precision and memory format for --precision/--channels_last/--accelerator on this machine
    (or on the hardware MTL_HARDWARE names). HardwareError for an MTL_HARDWARE value that names nothing."""
    override = overridden_kind()
    device = device_type(accelerator, override)
    detected = detect(device)
    hardware = override or detected
    chosen = choose_precision(precision, hardware)
    return Choice(
        device, hardware, detected, chosen, choose_channels_last(channels_last, chosen, hardware), precision == "auto"
    )


def autocast_dtype(precision: str) -> Any:
    """The autocast dtype of a mixed precision (None for 32)."""
    import torch

    return {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(precision)


def auto_bool(value: str) -> bool | str:
    """A boolean flag that also takes 'auto' (chosen from the hardware)."""
    from mtl.flags import str2bool

    return "auto" if value.strip().lower() == "auto" else str2bool(value)


def describe(device: str) -> dict[str, Any]:
    """What the machine is: CPU model, cores, vector units, torch, and the GPU where one is used."""
    import torch

    info: dict[str, Any] = {
        "cpu": cpu_name(),
        "cpu_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu_units": " ".join(sorted(f for f in cpu_flags() if f.startswith(("avx512", "amx", "avx2", "fma")))),
        "torch": str(torch.__version__),
        "torch_threads": torch.get_num_threads(),
        "device": device,
        "bf16_units": detect(device).bf16_units,
    }
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name()
        info["gpu_capability"] = ".".join(map(str, torch.cuda.get_device_capability()))
    return info


def machine_label(record: dict[str, Any]) -> str:
    """A short name of the machine of a hardware record, for tables: the GPU, else the CPU and its bf16 kind."""
    if record.get("gpu"):
        return str(record["gpu"])
    kind = record.get("hardware_detected") or ("bf16 units" if record.get("bf16_units") else "")
    return f"{record.get('cpu', '?')} ({kind})" if kind else str(record.get("cpu", "?"))
