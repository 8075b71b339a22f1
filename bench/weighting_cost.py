"""Training-step time of every weighting method relative to fixed weighting, for 2 and 3 tasks.

Usage: python bench/weighting_cost.py [--model_name deeplabv3p] [--encoder resnet18] [--crop 64]
       [--batch_size 2] [--rounds 8] [--warmup 1] [--threads N] [--out table.md]

Each configuration runs the toolkit's own step (MultiTaskModule's shared-representation capture, the task
losses, the method's backward pass through StepContext, the optimiser step, FAMO's re-evaluation of the
batch) on a fixed random batch; data loading is left out. Gradient methods run on the shared parameters and,
where the method allows it, on the shared representation. All configurations share one model and are timed
in the same process, interleaved round by round (one step of each per round), so that slow drifts affect
them alike; the fastest of the rounds after the warm-up is reported (other processes on the machine only
ever add time, so the minimum is the least disturbed figure), as seconds per step and as a ratio to fixed
weighting on the same tasks. The hardware line says what it ran on.
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import time
from pathlib import Path

import torch

from mtl.config import build_parser
from mtl.datasets import DATASETS
from mtl.engine.module import MultiTaskModule
from mtl.inference.predictor import Predictor
from mtl.optimization import OptimizerOptions, ScheduleOptions
from mtl.tasks import TASKS
from mtl.weighting import WEIGHTINGS, build_weighting
from mtl.weighting.base import StepContext
from mtl.weighting.gradient import GradientWeighting

TASK_SETS = (("semseg", "depth"), ("semseg", "depth", "normals"))


def configurations() -> list[tuple[str, str]]:
    """(method, --weighting_on) pairs: fixed first, then every method in each place it supports."""
    out = [("fixed", "auto")]
    for name, cls in WEIGHTINGS.items():
        if name == "fixed":
            continue
        if issubclass(cls, GradientWeighting):
            out += [(name, on) for on in cls.on_choices]
        elif name == "gradnorm":
            out += [(name, "parameters"), (name, "representation")]
        else:
            out.append((name, "auto"))
    return out


def hardware() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    line = f"{cpu}, torch {torch.__version__}, {torch.get_num_threads()} threads"
    if torch.cuda.is_available():
        line += f", {torch.cuda.get_device_name()}"
    return line


def random_batch(tasks: tuple[str, ...], batch_size: int, crop: int, device: torch.device) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    batch = {"rgb": torch.randint(0, 256, (batch_size, 3, crop, crop), generator=g, dtype=torch.uint8)}
    batch["semseg"] = torch.randint(0, 19, (batch_size, crop, crop), generator=g)
    batch["depth"] = 4 + 100 * torch.rand(batch_size, crop, crop, generator=g)
    if "normals" in tasks:
        batch["normals"] = torch.nn.functional.normalize(torch.randn(batch_size, 3, crop, crop, generator=g), dim=1)
    return {k: v.to(device) for k, v in batch.items() if k == "rgb" or k in tasks}


class Config:
    """One method on one task set: its module (sharing the task set's model) and optimiser."""

    def __init__(self, flags: argparse.Namespace, predictor: Predictor, method: str, on: str) -> None:
        flags = argparse.Namespace(**vars(flags))
        flags.loss_weighting, flags.weighting_on = method, on
        self.label = (method, on if method != "fixed" and on != "auto" else "")
        self.module = MultiTaskModule(
            predictor, build_weighting(flags, flags.tasks), DATASETS["miniscapes"]("."),
            OptimizerOptions.from_flags(flags), ScheduleOptions.from_flags(flags), hparams={"config": {}},
        )
        # Plain SGD keeps no state: many configurations can share one model without multiplying its memory.
        self.optimizer = torch.optim.SGD(self.module.parameters(), lr=1e-4)
        self.times: list[float] = []

    def step(self, batch: dict[str, torch.Tensor], device: torch.device, buffers: dict) -> float:
        module, weighting = self.module, self.module.weighting
        if hasattr(weighting, "_buffer"):
            # Dozens of configurations share the machine: gradient methods of one task set share the K×D buffer
            # a method keeps between steps (as one method would keep it in a run), instead of one each.
            weighting._buffer = buffers.get(len(weighting.tasks))
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        self.optimizer.zero_grad(set_to_none=True)
        with module.representation.capturing() if module.representation else contextlib.nullcontext(()) as representation:
            outputs = module(batch["rgb"])
        losses = module.task_losses(outputs, batch)
        context = StepContext(parameters=[p for p in module.predictor.parameters() if p.requires_grad],
                              representation=representation)
        weighting.backward(losses, module.shared_parameters(), lambda total: total.backward(), context)
        self.optimizer.step()
        if weighting.needs_losses_after_step:
            weighting.after_step(module.losses_after_step(batch))
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        if hasattr(weighting, "_buffer"):
            buffers[len(weighting.tasks)], weighting._buffer = weighting._buffer, None
        return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model_name", default="deeplabv3p")
    parser.add_argument("--encoder", default="resnet18")
    parser.add_argument("--crop", type=int, default=64)
    parser.add_argument("--batch_size", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=8, help="timed steps per configuration")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps per configuration first")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--out", default=None, help="also write the table (markdown) to this file")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    names = configurations()

    setups = []
    for tasks in TASK_SETS:
        flags = build_parser().parse_args(["--model_name", args.model_name, "--model_encoder_name", args.encoder,
                                           "--depth_stats", "miniscapes"])
        flags.tasks = tasks
        torch.manual_seed(0)
        states = {name: TASKS[name].prepare(flags, None) for name in tasks}
        predictor = Predictor.from_flags(flags, states).to(device).train()
        configs = [Config(flags, predictor, method, on) for method, on in names]
        for config in configs:
            config.module.to(device)
        setups.append((tasks, random_batch(tasks, args.batch_size, args.crop, device), configs))

    buffers: dict[int, torch.Tensor] = {}
    for round_index in range(args.warmup + args.rounds):
        for tasks, batch, configs in setups:
            for config in configs:
                seconds = config.step(batch, device, buffers)
                if round_index >= args.warmup:
                    config.times.append(seconds)

    lines = [
        f"Hardware: {hardware()}",
        f"Model {args.model_name} ({args.encoder}), batch {args.batch_size} × {args.crop}², fp32, fastest of "
        f"{args.rounds} interleaved steps after {args.warmup} warm-up step(s)",
        "",
        "| method | on | " + " | ".join(f"{len(t)} tasks: s/step | × fixed" for t, _, _ in setups) + " |",
        "|---|---|" + "---:|---:|" * len(setups),
    ]
    for index, (method, on) in enumerate(names):
        cells = []
        for _, _, configs in setups:
            seconds = min(configs[index].times)
            baseline = min(configs[0].times)
            cells += [f"{seconds:.3f}", f"{seconds / baseline:.2f}"]
        label = configs[index].label
        lines.append(f"| {label[0]} | {label[1]} | " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    print(table)
    if args.out:
        Path(args.out).write_text(table + "\n")


if __name__ == "__main__":
    main()
