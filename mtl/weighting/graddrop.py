"""GradDrop (Chen et al., "Just Pick a Sign: Optimizing Deep Multitask Models with Gradient Sign Dropout",
NeurIPS 2020).

Per element, the sign purity P = ½·(1 + Σ_t G_t / Σ_t |G_t|) says how much the tasks agree; a uniform draw
U keeps each task's gradient where its sign is the one chosen (positive if P > U, negative if P < U):
M_t = [P > U]·[G_t > 0] + [P < U]·[G_t < 0], and the update is Σ_t (ℓ + (1 − ℓ)·M_t)·g_t with leak ℓ
(``--weighting_graddrop_leak``, 0). On the representation (the paper's setting and the default) G_t is
the gradient times the sign of the features, summed over the batch (so the mask is per feature and the
same for every sample; under DDP the sums are over all processes), and the masked feature gradients flow
into the shared layers; on the parameters G_t = g_t element by element. U comes from the method's own
generator: the same draws on every process and after a resume.

Reference: LibMTL's GradDrop (LibMTL/weighting/GradDrop.py) on the representation, equal for the same draws U; the
draws come from the method's own generator.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from mtl.flags import non_negative_float
from mtl.weighting.base import all_reduce_sum, register_weighting
from mtl.weighting.gradient import GradientWeighting

if TYPE_CHECKING:
    from torch import Tensor


@register_weighting("graddrop")
class GradDrop(GradientWeighting):
    default_on = "representation"

    def __init__(
        self, tasks: Sequence[str], weights: Mapping[str, float] | None = None, *, leak: float = 0.0, **kw: Any
    ) -> None:
        super().__init__(tasks, weights, **kw)
        if not 0 <= leak <= 1:
            raise ValueError(f"--weighting_graddrop_leak must lie in [0, 1], got {leak}")
        self.leak = leak

    @classmethod
    def add_arguments(cls, group: argparse._ArgumentGroup) -> None:
        group.add_argument("--weighting_graddrop_leak", type=non_negative_float, default=0.0,
                           help="fraction of every task gradient kept whatever the mask")

    @classmethod
    def options(cls, flags: argparse.Namespace) -> dict[str, Any]:
        return {"leak": flags.weighting_graddrop_leak}

    def keep(self, signed: Tensor) -> Tensor:
        """K×… factors ℓ + (1 − ℓ)·M_t from the K×… signed gradients G_t."""
        import torch

        purity = 0.5 * (1 + signed.sum(0) / (signed.abs().sum(0) + 1e-7))
        draw = torch.rand(purity.shape, generator=self.generator).to(purity)
        mask = ((purity > draw) & (signed > 0)) | ((purity < draw) & (signed < 0))
        return self.leak + (1 - self.leak) * mask.to(signed.dtype)

    def combine(self, grads: Tensor, losses: Tensor) -> Tensor:
        self.weights = {t: 1.0 for t in self.tasks}
        return (grads * self.keep(grads)).sum(0)

    def combine_representation(self, grads: list[list[Tensor]], features: list[Tensor], losses: Tensor) -> list[Tensor]:
        import torch

        self.weights = {t: 1.0 for t in self.tasks}
        out = []
        for j, z in enumerate(features):
            per_task = torch.stack([g[j] for g in grads])  # K × batch × …
            signed = all_reduce_sum((per_task * z.detach().sign().to(per_task.dtype)).sum(1))
            out.append((per_task * self.keep(signed).unsqueeze(1)).sum(0))
        return out
