"""Weighting ``gls``: the geometric loss strategy (Chennupati et al., "MultiNet++", CVPR Workshops 2019).

The objective is the geometric mean of the task losses, G = (Π_t L_t)^(1/T). Its gradient with respect to L_t is
G/(T·L_t): every task is weighted by the inverse of its own loss, so a task whose loss lives on a larger scale
(squared depth errors beside a cross-entropy) does not drown the others, without a weight to tune or any state.
Those effective weights are what it records for the logs (``loss_weight/<task>``); ``--loss_weight_<task>`` is
not used, and the method has no flag of its own.

The mean is taken in log space, exp(mean_t log L_t): a product of many small losses would underflow in fp32.
A loss ≤ 0 has no logarithm (and a geometric mean with a zero factor gives the others no gradient): it is
refused, naming the task. A NaN loss passes through, for the trainer to report as it does for every method.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from mtl.weighting import Weighting, register_weighting

if TYPE_CHECKING:
    from torch import Tensor


@register_weighting("gls")
class GeometricLossStrategy(Weighting):
    def __init__(self, tasks: Sequence[str]) -> None:
        super().__init__(tasks, dict.fromkeys(tasks, 1.0))

    @classmethod
    def from_flags(cls, flags: argparse.Namespace, tasks: Sequence[str]) -> Weighting:
        return cls(tasks)

    def loss(self, losses: Mapping[str, Tensor]) -> Tensor:
        import torch

        self._check(losses)
        stacked = torch.stack([losses[task].float() for task in self.tasks])
        for task, value in zip(self.tasks, stacked.tolist()):
            if value <= 0:
                raise ValueError(f"gls: the {task} loss is {value:.4g}; a geometric mean needs every task loss > 0")
        objective = stacked.log().mean().exp()
        self.weights = dict(zip(self.tasks, (objective / (len(self.tasks) * stacked)).detach()))
        return objective
