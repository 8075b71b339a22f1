"""Kendall, Gal & Cipolla 2018: Σ ½·exp(−s_t)·L_t + ½·s_t with learned log-variances s_t = log σ_t².

The regression form is used for every task (as LibMTL does). s_t starts at −log(2·w_t), so the initial
weights ½·exp(−s_t) equal the configured ones (0.5/0.5 → s = 0). The objective can be negative.

Reference: LibMTL's UW (LibMTL/weighting/UW.py), the same objective. Deliberate difference from the paper: its
classification form (exp(−s)·L + s/2 for cross-entropy) is not used, as in LibMTL.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from mtl.weighting.base import Weighting, register_weighting

if TYPE_CHECKING:
    from torch import Tensor, nn


@register_weighting("uncertainty")
class UncertaintyWeighting(Weighting):
    def __init__(self, tasks: Sequence[str], weights: Mapping[str, float]) -> None:
        import torch

        super().__init__(tasks, weights)
        for task in self.tasks:
            if not self.weights[task] > 0:
                raise ValueError(
                    f"--loss_weight_{task} must be > 0 for uncertainty weighting (it sets the initial "
                    f"log-variance), got {self.weights[task]}"
                )
        self.log_vars = {t: torch.nn.Parameter(torch.tensor(-math.log(2.0 * self.weights[t]))) for t in self.tasks}
        self._update_weights()

    def parameters(self) -> dict[str, nn.Parameter]:
        return dict(self.log_vars)

    def _update_weights(self) -> None:
        # Detached 0-dim tensors, turned into floats only when logged: no device sync per step.
        self.weights = {t: 0.5 * (-self.log_vars[t].detach()).exp() for t in self.tasks}

    def loss(self, losses: Mapping[str, Tensor]) -> Tensor:
        self._check(losses)
        self._update_weights()
        return sum(0.5 * (-self.log_vars[t]).exp() * losses[t] + 0.5 * self.log_vars[t] for t in self.tasks)
