"""DB-MTL (Lin et al., "Dual-Balancing for Multi-Task Learning", 2023).

Loss-scale balancing: every task trains on log L_t, whose gradient is ∇L_t / L_t. Gradient-magnitude
balancing: the shared gradients of the log losses are smoothed by an exponential moving average,
ĝ_t ← g_t + β_k·(ĝ_t − g_t) with β_k = β / k^σ at optimiser step k (``--weighting_db_mtl_beta`` 0.9,
``--weighting_db_mtl_beta_sigma`` 0, LibMTL's defaults, starting from ĝ = 0), and each is rescaled to the
largest norm: d = Σ_t (max_s ‖ĝ_s‖ / ‖ĝ_t‖)·ĝ_t. The task-specific layers get ∇L_t / L_t. Under DDP and
accumulation the logarithm is applied to the loss of the whole batch (the gradient divided by the mean
loss), not per process or per batch. The moving averages are K vectors of the shared parameters' size,
saved in checkpoints; the method works on the parameters only.

Reference: LibMTL's DB_MTL (LibMTL/weighting/DB_MTL.py), which this equals on the same gradients; no deliberate
difference.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from mtl.flags import non_negative_float
from mtl.weighting.base import register_weighting
from mtl.weighting.gradient import GradientWeighting

if TYPE_CHECKING:
    from torch import Tensor

EPS = 1e-8


@register_weighting("db_mtl")
class DBMTL(GradientWeighting):
    on_choices = ("parameters",)
    weights_task_layers = True
    renamed_flags = {
        "weighting_dbmtl_beta": "weighting_db_mtl_beta", "weighting_dbmtl_beta_sigma": "weighting_db_mtl_beta_sigma"
    }

    def __init__(
        self,
        tasks: Sequence[str],
        weights: Mapping[str, float] | None = None,
        *,
        beta: float = 0.9,
        beta_sigma: float = 0.0,
        **kw: Any,
    ) -> None:
        super().__init__(tasks, weights, **kw)
        if not 0 <= beta <= 1:
            raise ValueError(f"--weighting_db_mtl_beta must lie in [0, 1], got {beta}")
        self.beta, self.beta_sigma = beta, beta_sigma
        self.steps = 0
        self.averages: Tensor | None = None

    @classmethod
    def add_arguments(cls, group: argparse._ArgumentGroup) -> None:
        group.add_argument("--weighting_db_mtl_beta", type=non_negative_float, default=0.9,
                           help="moving-average rate of the log-loss gradients")
        group.add_argument("--weighting_db_mtl_beta_sigma", type=non_negative_float, default=0.0,
                           help="the rate decays as beta / step^sigma")

    @classmethod
    def options(cls, flags: argparse.Namespace) -> dict[str, Any]:
        return {"beta": flags.weighting_db_mtl_beta, "beta_sigma": flags.weighting_db_mtl_beta_sigma}

    def combine(self, grads: Tensor, losses: Tensor) -> Tensor:
        self.steps += 1
        log_grads = grads / (losses.to(grads) + EPS)[:, None]
        rate = self.beta / self.steps**self.beta_sigma
        if self.averages is None:
            self.averages = grads.new_zeros(grads.shape)
        self.averages = self.averages.to(grads)
        self.averages = log_grads + rate * (self.averages - log_grads)
        norms = self.averages.norm(dim=1)
        alpha = norms.max() / (norms + EPS)
        self.weights = {t: float(alpha[k] / (losses[k] + EPS)) for k, t in enumerate(self.tasks)}
        return alpha @ self.averages

    def head_weights(self, losses: Tensor) -> Tensor | None:
        return 1.0 / (losses.cpu() + EPS)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "steps": self.steps, "averages": self.averages}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self.steps = int(state.get("steps", 0))
        self.averages = state.get("averages")
