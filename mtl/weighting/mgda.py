"""MGDA (Sener & Koltun, "Multi-Task Learning as Multi-Objective Optimization", NeurIPS 2018).

The shared update is the point of minimum norm in the convex hull of the task gradients,
d = Σ α_t·g_t with α = argmin_{α ∈ simplex} ‖Σ α_t g_t‖², a direction that decreases every task's loss
(or is 0 at a Pareto-stationary point). The quadratic program over the simplex is solved by SciPy's SLSQP
(``scipy.optimize.minimize``) on the K×K Gram matrix.

``--weighting_on representation`` (the default) is the paper's MGDA-UB: the gradients are those of the
shared representation, whose min-norm point bounds the parameters' one from above at the cost of one
backward pass through the heads; ``parameters`` is exact MGDA. ``--weighting_mgda_normalization`` divides
each gradient before solving (the paper's code: ``l2`` by its norm, ``loss`` by the loss, ``loss+`` by
both); the weights found then multiply the unnormalised gradients, as in that code.

Reference: LibMTL's MGDA (LibMTL/weighting/MGDA.py, with ``mgda_gn`` the same normalisations), equal to solver
tolerance: its Frank-Wolfe min-norm solver and SciPy's SLSQP here reach the same point. The task-specific layers get
their own task's gradient, as in the paper.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from mtl.weighting.base import register_weighting
from mtl.weighting.gradient import GradientWeighting, simplex_minimize

if TYPE_CHECKING:
    from torch import Tensor

NORMALIZATIONS = ("none", "l2", "loss", "loss+")


def min_norm_weights(gram: Any) -> Any:
    """α on the simplex minimising αᵀ·gram·α (NumPy in and out)."""
    import numpy as np

    gram = np.asarray(gram, dtype=np.float64)
    scale = float(np.max(np.diag(gram))) if gram.size else 0.0
    if not scale > 0:
        return np.full(len(gram), 1.0 / len(gram))
    m = gram / scale
    return simplex_minimize(lambda a: 0.5 * a @ m @ a, lambda a: m @ a, len(m))


@register_weighting("mgda")
class MGDA(GradientWeighting):
    default_on = "representation"

    def __init__(
        self, tasks: Sequence[str], weights: Mapping[str, float] | None = None, *, normalization: str = "none", **kw: Any
    ) -> None:
        super().__init__(tasks, weights, **kw)
        if normalization not in NORMALIZATIONS:
            raise ValueError(f"--weighting_mgda_normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
        self.normalization = normalization

    @classmethod
    def add_arguments(cls, group: argparse._ArgumentGroup) -> None:
        group.add_argument(
            "--weighting_mgda_normalization", default="none", choices=NORMALIZATIONS,
            help="divide each task gradient by its norm (l2), its loss (loss) or both (loss+) before the min-norm solve",
        )

    @classmethod
    def options(cls, flags: argparse.Namespace) -> dict[str, Any]:
        return {"normalization": flags.weighting_mgda_normalization}

    def coefficients(self, gram: Tensor, losses: Tensor) -> Tensor:
        import torch

        norms = gram.diagonal().clamp_min(0).sqrt()
        divisor = {
            "none": torch.ones_like(norms),
            "l2": norms,
            "loss": losses.to(norms),
            "loss+": losses.to(norms) * norms,
        }[self.normalization].clamp_min(1e-12)
        normalized = gram / torch.outer(divisor, divisor)
        return torch.from_numpy(min_norm_weights(normalized.numpy()))
