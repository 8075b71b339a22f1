"""Nash-MTL (Navon et al., "Multi-Task Learning as a Bargaining Game", ICML 2022).

The update d = Σ α_t g_t is the Nash bargaining solution: α > 0 with Gᵀ G α = 1/α elementwise (each task's
gain g_tᵀd equals 1/α_t). That is exactly the stationarity condition of the strictly convex problem
min_{α>0} ½·αᵀ(GᵀG)α − Σ log α_t, solved here by SciPy's SLSQP (with bounds) on the Gram matrix scaled to
unit Frobenius norm (α for the unscaled matrix is α̂ / √scale). A ridge of 1e-9 on that scaled matrix keeps
the problem bounded when the gradients are linearly dependent (e.g. two exactly opposite gradients, for
which no bargaining solution exists). As in the paper's code the task-specific layers get Σ α_t ∇L_t too,
the shared gradient is clipped to ``--weighting_nash_mtl_max_norm`` (1.0; 0 = off) and the weights may be
recomputed only every ``--weighting_nash_mtl_update_every`` steps (1), the steps in between being one ordinary
backward pass of Σ α_t L_t.

Reference: the authors' NashMTL (AvivNavon/nash-mtl, methods/weight_methods.py), equal to solver tolerance: they
solve the same condition with cvxpy's ECOS by a sequence of linearised problems, here in one convex problem by
SLSQP.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from mtl.flags import non_negative_float, positive_int
from mtl.weighting.base import Backward, StepContext, clip_gradients, mean_losses, register_weighting
from mtl.weighting.gradient import GradientWeighting

if TYPE_CHECKING:
    from torch import Tensor


def bargaining_weights(gram: Any, start: Any = None) -> Any:
    """α > 0 with gram·α = 1/α (NumPy in and out)."""
    import numpy as np
    from scipy.optimize import minimize

    gram = np.asarray(gram, dtype=np.float64)
    k = len(gram)
    scale = float(np.linalg.norm(gram))
    if not scale > 0:
        return np.ones(k)
    m = gram / scale + 1e-9 * np.eye(k)
    x0 = np.ones(k) if start is None else np.clip(np.asarray(start, dtype=np.float64) * np.sqrt(scale), 1e-6, None)
    result = minimize(
        lambda a: 0.5 * a @ m @ a - np.log(a).sum(),
        x0,
        jac=lambda a: m @ a - 1.0 / a,
        method="SLSQP",
        bounds=[(1e-12, None)] * k,
        options={"ftol": 1e-15, "maxiter": 500},
    )
    return result.x / np.sqrt(scale)


@register_weighting("nash_mtl")
class NashMTL(GradientWeighting):
    weights_task_layers = True
    renamed_flags = {
        "weighting_nash_update_every": "weighting_nash_mtl_update_every",
        "weighting_nash_max_norm": "weighting_nash_mtl_max_norm",
    }

    def __init__(
        self,
        tasks: Sequence[str],
        weights: Mapping[str, float] | None = None,
        *,
        update_every: int = 1,
        max_norm: float = 1.0,
        **kw: Any,
    ) -> None:
        super().__init__(tasks, weights, max_norm=max_norm, **kw)
        if update_every < 1:
            raise ValueError(f"--weighting_nash_mtl_update_every must be ≥ 1, got {update_every}")
        self.update_every = update_every
        self.steps = 0  # optimiser steps taken
        self.alpha: Tensor | None = None

    @classmethod
    def add_arguments(cls, group: argparse._ArgumentGroup) -> None:
        group.add_argument("--weighting_nash_mtl_update_every", type=positive_int, default=1,
                           help="solve for the weights every N optimiser steps (reused in between)")
        group.add_argument("--weighting_nash_mtl_max_norm", type=non_negative_float, default=1.0,
                           help="clip the shared parameters' gradient to this norm (0: off)")

    @classmethod
    def options(cls, flags: argparse.Namespace) -> dict[str, Any]:
        return {"update_every": flags.weighting_nash_mtl_update_every, "max_norm": flags.weighting_nash_mtl_max_norm}

    def coefficients(self, gram: Tensor, losses: Tensor) -> Tensor:
        import torch

        start = None if self.alpha is None else self.alpha.numpy()
        self.alpha = torch.from_numpy(bargaining_weights(gram.numpy(), start))
        return self.alpha

    def head_weights(self, losses: Tensor) -> Tensor | None:
        return self.alpha

    def backward(
        self, losses: Mapping[str, Tensor], shared: Sequence[Tensor], backward: Backward, context: StepContext
    ) -> Tensor:
        if self.alpha is None or self.steps % self.update_every == 0:
            total = super().backward(losses, shared, backward, context)
        else:  # reuse the last weights: one backward pass (DDP averages it)
            mean = mean_losses(self, losses)
            backward(sum(float(self.alpha[k]) * losses[t] for k, t in enumerate(self.tasks)) / context.micro_batches)
            if context.last and self.max_norm > 0:
                clip_gradients([p for p in shared if p.requires_grad], self.max_norm, context.loss_scale)
            total = self.loss({t: mean[k] for k, t in enumerate(self.tasks)}).detach()
        if context.last:
            self.steps += 1
        return total

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "steps": self.steps, "alpha": self.alpha}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self.steps = int(state.get("steps", 0))
        self.alpha = state.get("alpha")
