"""Dynamic Weight Average (Liu, Johns & Davison, "End-to-End Multi-Task Learning with Attention", CVPR 2019).

w_t(e) = K · exp(r_t / T) / Σ_s exp(r_s / T) with r_t = L̄_t(e−1) / L̄_t(e−2), the ratio of the task's mean
training losses over the two previous epochs; w_t = 1 in the first two epochs. T = 2
(``--weighting_dwa_temperature``), the paper's value. The epoch means are over every process (the losses
are averaged over DDP processes first) and are state: a run resumed mid-epoch continues the same sums.

Reference: LibMTL's DWA (LibMTL/weighting/DWA.py), which this equals on the same epoch losses; no deliberate
difference.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from mtl.flags import positive_float
from mtl.weighting.base import Backward, StepContext, Weighting, mean_losses, register_weighting

if TYPE_CHECKING:
    from torch import Tensor


@register_weighting("dwa")
class DWA(Weighting):
    def __init__(
        self, tasks: Sequence[str], weights: Mapping[str, float] | None = None, *, temperature: float = 2.0
    ) -> None:
        super().__init__(tasks, {t: 1.0 for t in tasks} if weights is None else weights)
        if not (temperature > 0 and math.isfinite(temperature)):
            raise ValueError(f"--weighting_dwa_temperature must be a finite number > 0, got {temperature}")
        self.temperature = temperature
        self.weights = {t: 1.0 for t in self.tasks}
        self.epoch: int | None = None
        self.sums = [0.0] * len(self.tasks)  # this epoch's loss sums (means over processes)
        self.count = 0
        self.history: list[list[float]] = []  # mean losses of the last two finished epochs

    @classmethod
    def add_arguments(cls, group: argparse._ArgumentGroup) -> None:
        group.add_argument("--weighting_dwa_temperature", type=positive_float, default=2.0,
                           help="softmax temperature T of the loss-descent ratios")

    @classmethod
    def from_flags(cls, flags: argparse.Namespace, tasks: Sequence[str]) -> Weighting:
        return cls(tasks, temperature=flags.weighting_dwa_temperature)

    def epoch_weights(self) -> dict[str, float]:
        if len(self.history) < 2:
            return {t: 1.0 for t in self.tasks}
        ratios = [last / max(before, 1e-12) for last, before in zip(self.history[-1], self.history[-2])]
        top = max(ratios)
        e = [math.exp((r - top) / self.temperature) for r in ratios]
        return {t: len(self.tasks) * v / sum(e) for t, v in zip(self.tasks, e)}

    def backward(
        self, losses: Mapping[str, Tensor], shared: Sequence[Tensor], backward: Backward, context: StepContext
    ) -> Tensor:
        mean = mean_losses(self, losses).tolist()
        if self.epoch is not None and context.epoch != self.epoch and self.count:
            self.history = [*self.history, [s / self.count for s in self.sums]][-2:]
            self.sums, self.count = [0.0] * len(self.tasks), 0
        self.epoch = context.epoch
        self.weights = self.epoch_weights()
        if all(math.isfinite(v) for v in mean):
            self.sums = [s + v for s, v in zip(self.sums, mean)]
            self.count += 1
        return super().backward(losses, shared, backward, context)

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "sums": list(self.sums), "count": self.count, "history": [list(h) for h in self.history]}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state:
            self.epoch, self.count = state["epoch"], int(state["count"])
            self.sums = [float(v) for v in state["sums"]]
            self.history = [[float(v) for v in h] for h in state["history"]]
            self.weights = self.epoch_weights()
