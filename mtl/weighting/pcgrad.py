"""PCGrad (Yu et al., "Gradient Surgery for Multi-Task Learning", NeurIPS 2020).

Each task gradient g_i is projected, one other task j at a time in a random order, onto the normal plane
of g_j whenever the two conflict (g_i'·g_j < 0): g_i' ← g_i' − (g_i'·g_j / ‖g_j‖²)·g_j. The update is the
sum of the projected gradients (``--weighting_pcgrad_reduction mean`` averages them). Every g_i' stays a
combination of the original gradients, so the surgery is done on the Gram matrix and works on the
parameters or the representation alike. The random order comes from the method's own generator (seeded by
--seed, saved in checkpoints), so all DDP processes and a resumed run draw the same orders.

Reference: LibMTL's PCGrad (LibMTL/weighting/PCGrad.py): the sum of the projected gradients, the same projections
for the same order; the orders are drawn from the method's own generator instead of Python's random.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from mtl.weighting.base import register_weighting
from mtl.weighting.gradient import GradientWeighting

if TYPE_CHECKING:
    from torch import Tensor


@register_weighting("pcgrad")
class PCGrad(GradientWeighting):
    def __init__(
        self, tasks: Sequence[str], weights: Mapping[str, float] | None = None, *, reduction: str = "sum", **kw: Any
    ) -> None:
        super().__init__(tasks, weights, **kw)
        if reduction not in ("sum", "mean"):
            raise ValueError(f"--weighting_pcgrad_reduction must be sum or mean, got {reduction!r}")
        self.reduction = reduction

    @classmethod
    def add_arguments(cls, group: argparse._ArgumentGroup) -> None:
        group.add_argument(
            "--weighting_pcgrad_reduction", default="sum", choices=["sum", "mean"],
            help="sum (the paper) or average of the projected task gradients",
        )

    @classmethod
    def options(cls, flags: argparse.Namespace) -> dict[str, Any]:
        return {"reduction": flags.weighting_pcgrad_reduction}

    def coefficients(self, gram: Tensor, losses: Tensor) -> Tensor:
        import torch

        k = len(gram)
        rows = torch.eye(k, dtype=torch.float64)  # g_i' = Σ_s rows[i, s]·g_s
        for i in range(k):
            for j in torch.randperm(k, generator=self.generator).tolist():
                if j == i or not gram[j, j] > 0:
                    continue
                dot = rows[i] @ gram[:, j]
                if dot < 0:
                    rows[i, j] -= dot / gram[j, j]
        c = rows.sum(0)
        return c / k if self.reduction == "mean" else c
