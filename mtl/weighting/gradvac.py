"""GradVac (Wang et al., "Gradient Vaccine", ICLR 2021).

PCGrad corrects a pair of gradients only when their cosine is negative; GradVac sets, per ordered pair of
tasks, a target cosine φ̂_ij (an exponential moving average of the observed cosines, φ̂ ← (1−β)·φ̂ + β·φ,
starting at 0) and, whenever cos(g_i', g_j) = φ < φ̂_ij, adds the multiple of g_j that brings the cosine
exactly to φ̂_ij: g_i' ← g_i' + ‖g_i'‖·(φ̂√(1−φ²) − φ√(1−φ̂²)) / (‖g_j‖√(1−φ̂²))·g_j. Tasks j are visited
in a random order (the method's own generator); the update is Σ_i g_i'. The whole shared gradient is one
group (the paper's model-wise granularity). ``--weighting_gradvac_beta`` defaults to 0.01 (LibMTL uses 0.5).
The targets φ̂ are state, saved in checkpoints.

Reference: LibMTL's GradVac (LibMTL/weighting/GradVac.py) with granularity ``whole``; the one deliberate difference
is β's default (the paper's 0.01, not LibMTL's 0.5).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from mtl.flags import non_negative_float
from mtl.weighting.base import register_weighting
from mtl.weighting.gradient import GradientWeighting

if TYPE_CHECKING:
    from torch import Tensor


@register_weighting("gradvac")
class GradVac(GradientWeighting):
    def __init__(
        self, tasks: Sequence[str], weights: Mapping[str, float] | None = None, *, beta: float = 0.01, **kw: Any
    ) -> None:
        import torch

        super().__init__(tasks, weights, **kw)
        if not 0 <= beta <= 1:
            raise ValueError(f"--weighting_gradvac_beta must lie in [0, 1], got {beta}")
        self.beta = beta
        self.targets = torch.zeros(len(self.tasks), len(self.tasks), dtype=torch.float64)

    @classmethod
    def add_arguments(cls, group: argparse._ArgumentGroup) -> None:
        group.add_argument("--weighting_gradvac_beta", type=non_negative_float, default=0.01,
                           help="rate of the moving average of the target cosines")

    @classmethod
    def options(cls, flags: argparse.Namespace) -> dict[str, Any]:
        return {"beta": flags.weighting_gradvac_beta}

    def coefficients(self, gram: Tensor, losses: Tensor) -> Tensor:
        import torch

        k = len(gram)
        rows = torch.eye(k, dtype=torch.float64)
        for i in range(k):
            for j in torch.randperm(k, generator=self.generator).tolist():
                if j == i:
                    continue
                norm_i = math.sqrt(max(float(rows[i] @ gram @ rows[i]), 0.0))
                norm_j = math.sqrt(max(float(gram[j, j]), 0.0))
                if norm_i == 0 or norm_j == 0:
                    continue
                cos = min(max(float(rows[i] @ gram[:, j]) / (norm_i * norm_j), -1.0), 1.0)
                target = min(float(self.targets[i, j]), 1.0 - 1e-12)
                if cos < target:
                    rows[i, j] += (
                        norm_i * (target * math.sqrt(1 - cos**2) - cos * math.sqrt(1 - target**2))
                        / (norm_j * math.sqrt(1 - target**2))
                    )
                self.targets[i, j] = (1 - self.beta) * self.targets[i, j] + self.beta * cos
        return rows.sum(0)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "targets": self.targets}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        if "targets" in state:
            self.targets = state["targets"].to(self.targets)
