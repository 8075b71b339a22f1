"""CAGrad (Liu et al., "Conflict-Averse Gradient Descent for Multi-task Learning", NeurIPS 2021).

The update maximises the worst task's improvement within a ball around the average gradient g0:
max_d min_t g_tᵀd subject to ‖d − g0‖ ≤ c·‖g0‖. Its dual is a problem over the simplex,
w* = argmin_w g_wᵀg0 + c·‖g0‖·‖g_w‖ with g_w = Σ w_t g_t, solved here by SciPy's SLSQP on the Gram
matrix; then d = g0 + (c·‖g0‖ / ‖g_w‖)·g_w, divided by 1 + c² (``--weighting_cagrad_rescale 1``, the
paper's code; 0: not divided, 2: by 1 + c). With c = 0 it is the average gradient. Default c = 0.4, the
paper's value for NYU-v2 and Cityscapes.

Reference: LibMTL's CAGrad (the average-gradient scale), which this equals on the same Gram matrix. The authors'
code (Cranial-XIX/CAGrad, nyuv2/utils.py and cityscapes/utils.py ``overwrite_grad``) then multiplies the update by
the number of tasks K "to match the sum loss": at the same learning rate it steps K times as far.
``--weighting_cagrad_scale sum`` does the same; the default ``mean`` keeps LibMTL's scale (and that of every other
method here, whose update is on the scale of one task's gradient).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from mtl.flags import non_negative_float
from mtl.weighting.base import register_weighting
from mtl.weighting.gradient import GradientWeighting, simplex_minimize

if TYPE_CHECKING:
    from torch import Tensor

SCALES = ("mean", "sum")


@register_weighting("cagrad")
class CAGrad(GradientWeighting):
    def __init__(
        self,
        tasks: Sequence[str],
        weights: Mapping[str, float] | None = None,
        *,
        c: float = 0.4,
        rescale: int = 1,
        scale: str = "mean",
        **kw: Any,
    ) -> None:
        super().__init__(tasks, weights, **kw)
        if not (c >= 0 and math.isfinite(c)):
            raise ValueError(f"--weighting_cagrad_c must be a finite number ≥ 0, got {c}")
        if rescale not in (0, 1, 2):
            raise ValueError(f"--weighting_cagrad_rescale must be 0, 1 or 2, got {rescale}")
        if scale not in SCALES:
            raise ValueError(f"--weighting_cagrad_scale must be one of {', '.join(SCALES)}, got {scale!r}")
        self.c, self.rescale, self.scale = c, rescale, scale

    @classmethod
    def add_arguments(cls, group: argparse._ArgumentGroup) -> None:
        group.add_argument("--weighting_cagrad_c", type=non_negative_float, default=0.4,
                           help="radius of the ball around the average gradient, × its norm (0: plain average)")
        group.add_argument("--weighting_cagrad_rescale", type=int, default=1, choices=[0, 1, 2],
                           help="divide the update by 1 (0), 1 + c² (1) or 1 + c (2)")
        group.add_argument("--weighting_cagrad_scale", default="mean", choices=SCALES,
                           help="mean: the update on the average gradient's scale (LibMTL); sum: × the number of tasks, "
                           "as the authors' code")

    @classmethod
    def options(cls, flags: argparse.Namespace) -> dict[str, Any]:
        return {"c": flags.weighting_cagrad_c, "rescale": flags.weighting_cagrad_rescale,
                "scale": flags.weighting_cagrad_scale}

    def coefficients(self, gram: Tensor, losses: Tensor) -> Tensor:
        import numpy as np
        import torch

        k = len(gram)
        c = np.full(k, 1.0 / k)
        m = gram.numpy()
        scale = float(np.trace(m)) / k
        if self.c > 0 and scale > 0:
            m = m / scale  # the weights w do not depend on the scale; the coefficients below neither
            radius = self.c * math.sqrt(max(float(c @ m @ c), 0.0))
            mean_dots = m @ c

            def objective(w: Any) -> float:
                return float(w @ mean_dots + radius * math.sqrt(max(float(w @ m @ w), 0.0) + 1e-20))

            def jacobian(w: Any) -> Any:
                return mean_dots + radius * (m @ w) / math.sqrt(max(float(w @ m @ w), 0.0) + 1e-20)

            w = simplex_minimize(objective, jacobian, k)
            norm_w = math.sqrt(max(float(w @ m @ w), 0.0))
            if norm_w > 0:
                c = c + (radius / norm_w) * w
        c = c / {0: 1.0, 1: 1.0 + self.c**2, 2: 1.0 + self.c}[self.rescale]
        return torch.from_numpy(c * (k if self.scale == "sum" else 1))
