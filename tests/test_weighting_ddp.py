"""Under DDP, N processes on a split batch must take the step one process takes on the whole batch.

Two gloo processes (CPU) each hold half of a batch of 8 and train a small shared encoder with three task heads
through torch's DistributedDataParallel, as Lightning's DDP strategy does: per-task gradients from
``torch.autograd.grad`` (which DDP does not reduce) must be averaged by the method before it combines them,
and the backward passes that DDP does reduce must not be averaged twice. The parameters after three SGD steps
are compared with a single process on all 8 samples, for every method and both places (parameters,
representation), and with two accumulated batches per process.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from torch import nn

from mtl.weighting import WEIGHTINGS
from mtl.weighting.base import StepContext

TASKS = ["a", "b", "c"]
STEPS = 3
CASES = [
    *[(name, "parameters", 1) for name in ["pcgrad", "mgda", "cagrad", "imtl", "nash_mtl", "aligned_mtl", "gradvac",
                                           "graddrop", "db_mtl", "gradnorm"]],
    *[(name, "representation", 1) for name in ["pcgrad", "mgda", "cagrad", "imtl", "nash_mtl", "aligned_mtl",
                                               "gradvac", "graddrop", "gradnorm"]],
    *[(name, None, 1) for name in ["fixed", "uncertainty", "dwa", "rlw", "famo"]],
    *[(name, "parameters", 2) for name in ["pcgrad", "mgda", "cagrad", "gradnorm"]],
    ("fixed", None, 2),
]


class Toy(nn.Module):
    def __init__(self, extra: dict[str, nn.Parameter]) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.encoder = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 8), nn.Tanh())
        self.heads = nn.ModuleList(nn.Linear(8, 1) for _ in TASKS)
        self.weighting = nn.ParameterDict(extra)  # learned loss weights live in the module, as in MultiTaskModule
        self.features: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        z = self.encoder(x)
        z = z.view_as(z)  # the cut MultiTaskModule makes at the shared representation
        self.features = z
        return [head(z).squeeze(-1) for head in self.heads]


def data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(STEPS, 8, 6, generator=g)
    y = torch.randn(STEPS, len(TASKS), 8, generator=g)
    y[:, 1] *= 5  # unequal loss scales
    return x, y


def build(name: str, on: str | None):
    cls = WEIGHTINGS[name]
    if name in ("fixed", "uncertainty"):
        return cls(TASKS, {t: 0.5 for t in TASKS})
    return cls(TASKS, on=on) if on is not None else cls(TASKS)


def train(name: str, on: str | None, micro: int, rank: int, world: int) -> torch.Tensor:
    method = build(name, on)
    model = Toy(method.parameters())
    net = nn.parallel.DistributedDataParallel(model) if world > 1 else model
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = data()
    per_process = 8 // world
    for step in range(STEPS):
        optimizer.zero_grad()
        rows = slice(rank * per_process, (rank + 1) * per_process)
        chunks = torch.arange(per_process).chunk(micro)
        for i, chunk in enumerate(chunks):
            xb, yb = x[step, rows][chunk], y[step, :, rows][:, chunk]
            outputs = net(xb)
            losses = {t: ((o - yb[k]) ** 2).mean() for k, (t, o) in enumerate(zip(TASKS, outputs))}
            ctx = StepContext(
                parameters=[p for n, p in model.named_parameters() if not n.startswith("weighting")],
                representation=[model.features], micro_batches=micro, last=i == len(chunks) - 1, epoch=step,
            )
            method.backward(losses, list(model.encoder.parameters()), lambda total: total.backward(), ctx)
        optimizer.step()
        if method.needs_losses_after_step:
            with torch.no_grad():
                outputs = model(xb)
                method.after_step({t: ((o - yb[k]) ** 2).mean() for k, (t, o) in enumerate(zip(TASKS, outputs))})
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(1)
    try:
        results = {f"{name}/{on}/{micro}": train(name, on, micro, rank, world) for name, on, micro in CASES}
        if rank == 0:
            torch.save(results, out)
    finally:
        torch.distributed.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_take_the_whole_batch_step(tmp_path: Path) -> None:
    out = tmp_path / "ddp.pt"
    mp.spawn(worker, args=(2, free_port(), str(out)), nprocs=2, join=True)
    distributed = torch.load(out, weights_only=True)
    for name, on, micro in CASES:
        single = train(name, on, 1, 0, 1)
        start = Toy(build(name, on).parameters())
        moved = float((single - torch.cat([p.detach().flatten() for p in start.parameters()])).norm())
        assert moved > 1e-3, f"{name}/{on}: the test would not notice a missing update"
        torch.testing.assert_close(distributed[f"{name}/{on}/{micro}"], single, atol=2e-6, rtol=1e-5,
                                   msg=lambda m, key=f"{name}/{on}/{micro}": f"{key}: {m}")


@pytest.mark.parametrize("name", ["pcgrad", "mgda", "cagrad"])
def test_the_check_would_catch_unreduced_gradients(name: str) -> None:
    """Without the averaging (one process's half batch alone) the update differs: the test above is not vacuous."""
    half = 8 // 2

    def first_half() -> torch.Tensor:
        method = build(name, "parameters")
        model = Toy(method.parameters())
        x, y = data()
        outputs = model(x[0, :half])
        losses = {t: ((o - y[0, k, :half]) ** 2).mean() for k, (t, o) in enumerate(zip(TASKS, outputs))}
        method.backward(losses, list(model.encoder.parameters()), lambda total: total.backward(),
                        StepContext(parameters=list(model.parameters())))
        return torch.cat([p.grad.flatten() for p in model.encoder.parameters()])

    def whole() -> torch.Tensor:
        method = build(name, "parameters")
        model = Toy(method.parameters())
        x, y = data()
        outputs = model(x[0])
        losses = {t: ((o - y[0, k]) ** 2).mean() for k, (t, o) in enumerate(zip(TASKS, outputs))}
        method.backward(losses, list(model.encoder.parameters()), lambda total: total.backward(),
                        StepContext(parameters=list(model.parameters())))
        return torch.cat([p.grad.flatten() for p in model.encoder.parameters()])

    assert float((first_half() - whole()).norm()) > 1e-3
