"""Inference speed per image: PyTorch eager vs torch.compile vs ONNX Runtime, at batch 1.

Usage: python bench/inference.py [--sizes 256x512,512x1024] [--warmup 3] [--repeats 5]
       [--model_name deeplabv3p] [--encoder resnet34] [--threads N] [--device auto|cpu|cuda]
       [--backends eager,compile,onnxruntime]

Every backend runs the graph that `mtl export` writes (mtl.inference.ExportModel: normalisation, network,
final outputs, depth decode to metres) with random weights, on random RGB, so the numbers compare engines,
not models. Each configuration gets warm-up runs (torch.compile compiles during the first one; that time is
reported apart), then the median of the timed runs. On a GPU, eager and compile run with CUDA and ONNX Runtime
with CUDAExecutionProvider when the installed onnxruntime has it (inputs are copied from the host on every run,
as `session.run` with NumPy arrays does). A backend that fails is reported in the table instead of stopping
the benchmark.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from mtl.engine.config import build_parser
from mtl.engine.module import MultiTaskModule
from mtl.inference.export import ExportModel, export_onnx

BACKENDS = ("eager", "compile", "onnxruntime")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="256x512,512x1024", help="comma-separated HEIGHTxWIDTH")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
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
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    return args


def make_wrapper(model_name: str, encoder: str) -> ExportModel:
    cfg = build_parser().parse_args(["--dataset_root", ".", "--model_name", model_name, "--model_encoder_name", encoder])
    config = {k: list(v) if isinstance(v, tuple) else v for k, v in vars(cfg).items()}
    torch.manual_seed(0)
    return ExportModel.from_module(MultiTaskModule(config, 27.0727, 29.1264))


def measure(run: Callable[[], object], warmup: int, repeats: int, sync: Callable[[], None]) -> tuple[float, float]:
    """(seconds of the first warm-up run, median seconds of the timed runs)."""
    first = 0.0
    for i in range(warmup):
        start = time.perf_counter()
        run()
        sync()
        if i == 0:
            first = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        sync()
        times.append(time.perf_counter() - start)
    return first, statistics.median(times)


def hardware(device: str, threads: int) -> str:
    if device == "cuda":
        return f"{torch.cuda.get_device_name()} (CUDA {torch.version.cuda})"
    cpu = platform.processor() or platform.machine()
    try:
        names = [line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    load = ", load average %.1f" % os.getloadavg()[0] if hasattr(os, "getloadavg") else ""
    return f"{cpu}, {os.cpu_count()} cores, {threads} threads{load}"


def main() -> int:
    args = parse_args()
    import onnxruntime as ort

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    wrapper = make_wrapper(args.model_name, args.encoder)
    results: dict[tuple[str, tuple[int, int]], tuple[float, float] | str] = {}
    session: ort.InferenceSession | str | None = None
    with tempfile.TemporaryDirectory() as tmp:
        if "onnxruntime" in args.backends:
            try:
                path = export_onnx(wrapper, Path(tmp) / "model.onnx", *args.sizes[0])
                options = ort.SessionOptions()
                options.intra_op_num_threads = args.threads
                providers = ["CPUExecutionProvider"]
                if device.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
                    providers.insert(0, "CUDAExecutionProvider")
                session = ort.InferenceSession(str(path), options, providers=providers)
            except Exception as exc:  # reported in the table: one failing engine must not hide the others
                session = f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:80]}"
    wrapper.to(device)

    with torch.inference_mode():
        compiled = torch.compile(wrapper) if "compile" in args.backends else None
        for size in args.sizes:
            rgb = torch.rand(1, 3, *size, generator=torch.Generator().manual_seed(0)) * 255
            rgb_device = rgb.to(device)
            for backend in args.backends:
                print(f"timing {backend} at {size[0]}x{size[1]} …", file=sys.stderr, flush=True)
                try:
                    if backend == "eager":
                        run = lambda: wrapper(rgb_device)  # noqa: E731
                    elif backend == "compile":
                        run = lambda: compiled(rgb_device)  # noqa: E731
                    else:
                        if isinstance(session, str):
                            results[(backend, size)] = session
                            continue
                        feed = {"rgb": rgb.numpy()}
                        run = lambda: session.run(None, feed)  # noqa: E731
                    results[(backend, size)] = measure(run, args.warmup, args.repeats, sync)
                except Exception as exc:  # e.g. no C++ compiler for inductor; reported in the table
                    results[(backend, size)] = f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:80]}"

    provider = session.get_providers()[0] if isinstance(session, ort.InferenceSession) else "-"
    print(
        f"model {args.model_name}/{args.encoder} (random weights), batch 1, device {args.device}: "
        f"{hardware(args.device, args.threads)}; torch {torch.__version__}, onnxruntime {ort.__version__} ({provider}); "
        f"median of {args.repeats} after {args.warmup} warm-up runs"
    )
    print()
    print("| backend | input (H×W) | ms / image | images / s | speed-up vs eager | first run (s) |")
    print("|---|---|---|---|---|---|")
    for size in args.sizes:
        eager = results.get(("eager", size))
        for backend in args.backends:
            result = results[(backend, size)]
            if isinstance(result, str):
                print(f"| {backend} | {size[0]}×{size[1]} | {result} | | | |")
                continue
            first, median = result
            ratio = f"{eager[1] / median:.2f}×" if isinstance(eager, tuple) else "-"
            print(f"| {backend} | {size[0]}×{size[1]} | {median * 1000:.1f} | {1 / median:.2f} | {ratio} | {first:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
