"""Inference speed per image: PyTorch eager (fp32, and bf16 + channels_last) vs torch.compile vs ONNX Runtime,
at batch 1.

Usage: python bench/inference.py [--sizes 256x512,512x1024] [--warmup 3] [--repeats 7]
       [--model_name deeplabv3p] [--encoder resnet34] [--threads N] [--device auto|cpu|cuda]
       [--backends eager,eager_bf16,compile,onnxruntime]

Every backend runs the graph that `mtl export` writes (mtl.inference.export.ExportModel: normalisation, network,
final outputs, each task's decode) with random weights, on random RGB, so the numbers compare engines,
not models; eager_bf16 is what `mtl predict` uses where the hardware has bf16 units (--precision auto). Per input size, each backend first gets its warm-up runs (torch.compile compiles during the first
one; that time is reported apart), then the timed runs go round-robin over the backends, so that a change in
the machine's load (a shared machine) hits every backend alike; the table gives the median. On a GPU, eager and
compile run with CUDA and ONNX Runtime with CUDAExecutionProvider when the installed onnxruntime has it (inputs
are copied from the host on every run, as `session.run` with NumPy arrays does). A backend that fails is
reported in the table instead of stopping the benchmark.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from benchlib import hardware_line, train_flags

from mtl.inference.export import ExportModel, export_onnx
from mtl.inference.predictor import Predictor

BACKENDS = ("eager", "eager_bf16", "compile", "onnxruntime")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="256x512,512x1024", help="comma-separated HEIGHTxWIDTH")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--model_name", default="deeplabv3p")
    parser.add_argument("--encoder", default="resnet34")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="CPU threads (default: all cores)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--backends", default=",".join(BACKENDS), help=f"subset of {','.join(BACKENDS)}")
    args = parser.parse_args()
    try:
        args.sizes = [tuple(int(v) for v in s.lower().split("x")) for s in args.sizes.split(",")]
    except ValueError:
        parser.error(f"--sizes: expected HEIGHTxWIDTH[,HEIGHTxWIDTH…], got {args.sizes!r}")
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = [b for b in args.backends if b not in BACKENDS]
    if unknown:
        parser.error(f"--backends: unknown {unknown}; choose from {', '.join(BACKENDS)}")
    if args.warmup < 1 or args.repeats < 1:
        parser.error("--warmup and --repeats must be at least 1")
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    return args


def make_wrapper(model_name: str, encoder: str, channels_last: bool = False) -> ExportModel:
    flags = train_flags(["--model_name", model_name, "--model_encoder_name", encoder, "--channels_last", str(channels_last)])
    torch.manual_seed(0)
    return ExportModel(Predictor.from_flags(flags, {"depth": {"mean": 27.0727, "std": 29.1264}})).eval()


def failure(exc: Exception) -> str:
    lines = str(exc).strip().splitlines() or [""]
    return f"failed: {type(exc).__name__}: {lines[0][:80]}"


def onnx_session(wrapper: ExportModel, size: tuple[int, int], threads: int, device: str) -> Any:
    """An ONNX Runtime session of the exported wrapper (CUDA provider first on a GPU, when installed)."""
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        path = export_onnx(wrapper, Path(tmp) / "model.onnx", *size)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        providers = ["CPUExecutionProvider"]
        if device == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        return ort.InferenceSession(str(path), options, providers=providers)


def time_size(
    runs: dict[str, Callable[[], object]], warmup: int, repeats: int, sync: Callable[[], None]
) -> dict[str, tuple[float, float] | str]:
    """backend → (seconds of its first run, median seconds of its timed runs), or a failure message."""

    def timed(run: Callable[[], object]) -> float:
        start = time.perf_counter()
        run()
        sync()
        return time.perf_counter() - start

    first: dict[str, float] = {}
    results: dict[str, tuple[float, float] | str] = {}
    for backend, run in runs.items():
        print(f"  warming up {backend} …", file=sys.stderr, flush=True)
        try:
            first[backend] = timed(run)
            for _ in range(warmup - 1):
                timed(run)
        except Exception as exc:  # e.g. no C++ compiler for inductor: reported in the table
            results[backend] = failure(exc)
    times: dict[str, list[float]] = {backend: [] for backend in first}
    for _ in range(repeats):
        for backend in first:
            times[backend].append(timed(runs[backend]))
    for backend in first:
        results[backend] = (first[backend], statistics.median(times[backend]))
    return results


def main() -> int:
    args = parse_args()
    import onnxruntime as ort

    torch.set_num_threads(args.threads)
    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)
    wrapper = make_wrapper(args.model_name, args.encoder)
    session: Any = None
    if "onnxruntime" in args.backends:
        try:
            session = onnx_session(wrapper, args.sizes[0], args.threads, args.device)
        except Exception as exc:  # one failing engine must not hide the others
            session = failure(exc)
    wrapper.to(args.device)
    compiled = torch.compile(wrapper) if "compile" in args.backends else None
    bf16 = make_wrapper(args.model_name, args.encoder, channels_last=True).to(args.device)

    def run_bf16(rgb: torch.Tensor) -> object:
        with torch.autocast(args.device, dtype=torch.bfloat16):
            return bf16(rgb.contiguous(memory_format=torch.channels_last))

    table: dict[tuple[int, int], dict[str, tuple[float, float] | str]] = {}
    with torch.inference_mode():
        for size in args.sizes:
            print(f"timing {size[0]}x{size[1]}", file=sys.stderr, flush=True)
            rgb = torch.rand(1, 3, *size, generator=torch.Generator().manual_seed(0)) * 255
            rgb_device = rgb.to(args.device)
            feed = {"rgb": rgb.numpy()}
            runs: dict[str, Callable[[], object]] = {}
            for backend in args.backends:
                if backend == "eager":
                    runs[backend] = lambda: wrapper(rgb_device)
                elif backend == "eager_bf16":
                    runs[backend] = lambda: run_bf16(rgb_device)
                elif backend == "compile":
                    runs[backend] = lambda: compiled(rgb_device)
                elif not isinstance(session, str):
                    runs[backend] = lambda: session.run(None, feed)
            table[size] = time_size(runs, args.warmup, args.repeats, sync)
            if isinstance(session, str):
                table[size]["onnxruntime"] = session

    provider = session.get_providers()[0] if isinstance(session, ort.InferenceSession) else "-"
    load = f", load average {os.getloadavg()[0]:.1f} at the end" if hasattr(os, "getloadavg") else ""
    print(
        f"model {args.model_name}/{args.encoder} (random weights), batch 1, device {args.device}: "
        f"{hardware_line(args.device)}{load}; onnxruntime {ort.__version__} ({provider}); median of {args.repeats} "
        f"interleaved runs after {args.warmup} warm-up runs"
    )
    print()
    print("| backend | input (H×W) | ms / image | images / s | speed-up vs eager | first run (s) |")
    print("|---|---|---|---|---|---|")
    for size, results in table.items():
        eager = results.get("eager")
        for backend in args.backends:
            result = results[backend]
            if isinstance(result, str):
                print(f"| {backend} | {size[0]}×{size[1]} | {result} | | | |")
                continue
            first, median = result
            ratio = f"{eager[1] / median:.2f}×" if isinstance(eager, tuple) else "-"
            cells = [backend, f"{size[0]}×{size[1]}", f"{median * 1000:.0f}", f"{1 / median:.2f}", ratio]
            cells.append(f"{first:.1f}")
            print(f"| {' | '.join(cells)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
