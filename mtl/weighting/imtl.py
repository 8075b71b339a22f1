"""IMTL (Liu et al., "Towards Impartial Multi-task Learning", ICLR 2021).

IMTL-G: the shared update d = Σ α_t g_t (Σ α_t = 1) has equal projections on every task's unit gradient
u_t = g_t/‖g_t‖, i.e. d·(u_1 − u_t) = 0 for all t — a K×K linear system in α built from the Gram matrix
(solved by NumPy's least squares, which also copes with parallel gradients). IMTL-L: every loss is
replaced by e^{s_t}·L_t − s_t with learned s_t (trained by the model's optimiser, with the closed-form
gradient e^{s_t}·L_t − 1), which drives the scaled losses to 1. ``--weighting_imtl_mode hybrid`` (the
paper's full method, default) uses both; ``gradient`` or ``loss`` one of them.

Reference: LibMTL's IMTL (LibMTL/weighting/IMTL.py), equal to solver tolerance (least squares here, a matrix inverse
there, which fails for parallel gradients).
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from mtl.weighting.base import Backward, StepContext, mean_losses, register_weighting
from mtl.weighting.gradient import GradientWeighting

if TYPE_CHECKING:
    from torch import Tensor, nn

MODES = ("hybrid", "gradient", "loss")


def impartial_weights(gram: Any) -> Any:
    """α with Σα = 1 and (Σ α_s g_s)·u_t equal for all t (NumPy in and out)."""
    import numpy as np

    gram = np.asarray(gram, dtype=np.float64)
    k = len(gram)
    norms = np.sqrt(np.clip(np.diag(gram), 0.0, None))
    if k == 1 or not np.all(norms > 0):
        return np.full(k, 1.0 / k)
    system = np.zeros((k, k))
    rhs = np.zeros(k)
    system[0] = 1.0
    rhs[0] = 1.0
    for t in range(1, k):
        system[t] = gram[:, 0] / norms[0] - gram[:, t] / norms[t]
    return np.linalg.lstsq(system, rhs, rcond=None)[0]


@register_weighting("imtl")
class IMTL(GradientWeighting):
    def __init__(
        self, tasks: Sequence[str], weights: Mapping[str, float] | None = None, *, mode: str = "hybrid", **kw: Any
    ) -> None:
        import torch

        super().__init__(tasks, weights, **kw)
        if mode not in MODES:
            raise ValueError(f"--weighting_imtl_mode must be one of {MODES}, got {mode!r}")
        self.mode = mode
        self.log_scales = (
            {t: torch.nn.Parameter(torch.zeros(())) for t in self.tasks} if mode in ("hybrid", "loss") else {}
        )

    @classmethod
    def add_arguments(cls, group: argparse._ArgumentGroup) -> None:
        group.add_argument("--weighting_imtl_mode", default="hybrid", choices=MODES,
                           help="IMTL-G and IMTL-L together (hybrid), or one of them")

    @classmethod
    def options(cls, flags: argparse.Namespace) -> dict[str, Any]:
        return {"mode": flags.weighting_imtl_mode}

    def parameters(self) -> dict[str, nn.Parameter]:
        return dict(self.log_scales)

    def task_scales(self) -> Tensor | None:
        import torch

        if not self.log_scales:
            return None
        return torch.stack([self.log_scales[t].detach().double().exp() for t in self.tasks]).cpu()

    def parameter_gradients(self, losses: Tensor) -> dict[nn.Parameter, Tensor]:
        scales = self.task_scales()
        if scales is None:
            return {}
        return {self.log_scales[t]: scales[k] * losses[k].cpu() - 1.0 for k, t in enumerate(self.tasks)}

    def coefficients(self, gram: Tensor, losses: Tensor) -> Tensor:
        import torch

        if self.mode == "loss":
            return torch.ones(len(gram), dtype=torch.float64)
        return torch.from_numpy(impartial_weights(gram.numpy()))

    def backward(
        self, losses: Mapping[str, Tensor], shared: Sequence[Tensor], backward: Backward, context: StepContext
    ) -> Tensor:
        if self.mode != "loss":
            return super().backward(losses, shared, backward, context)
        # IMTL-L alone is a loss weighting: one backward pass of Σ e^{s_t}·L_t − s_t.
        mean = mean_losses(self, losses)
        scales = self.task_scales()
        self.weights = {t: float(scales[k]) for k, t in enumerate(self.tasks)}
        objective = sum(self.log_scales[t].exp() * losses[t] - self.log_scales[t] for t in self.tasks)
        backward(objective / context.micro_batches)
        return self.loss({t: mean[k] for k, t in enumerate(self.tasks)}).detach()
