"""FAMO (Liu et al., "FAMO: Fast Adaptive Multitask Optimization", NeurIPS 2023).

The model trains on Σ_t z_t·log(L_t − m_t + ε) / c with z = softmax(ξ) and c = Σ_t z_t / (L_t − m_t + ε),
i.e. on Σ_t w_t·L_t with w_t = z_t / (c·(L_t − m_t + ε)) (m_t: the losses' lower bounds, 0). After the
optimiser step the same batch is evaluated again (the trainer does it, without gradients and without
touching normalisation statistics) and the logits ξ take one step of their own Adam (lr
``--weighting_famo_lr`` 0.025, weight decay ``--weighting_famo_gamma`` 0.001, the paper's values) along
Jᵀδ, δ_t = log(L_t^before − m_t + ε) − log(L_t^after − m_t + ε), J the Jacobian of the softmax: tasks whose
loss fell less get more weight. ξ, that optimiser's state and the pending losses are saved in checkpoints.
The weights use the losses averaged over DDP processes, so every process applies the same ones (a log of
the per-process losses would not average to the whole batch's). With accumulation the weights come from
each batch's own losses and the update uses the step's last batch before and after the step.

Reference: the authors' FAMO (Cranial-XIX/FAMO, methods/weight_methods.py), which this equals on the same losses.
Their WeightMethod is built with ``max_norm=1.0`` and calls clip_grad_norm_ on the shared parameters — before
``loss.backward()``, right after the trainer's ``optimizer.zero_grad()``, so no gradient of the step exists yet and
their update is not clipped. mtl's default (``--weighting_famo_max_norm 0``) does the same; a positive value clips
the shared parameters' gradient to that norm after the backward pass, what their code seems meant to do.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from mtl.flags import non_negative_float, positive_float
from mtl.weighting.base import Backward, StepContext, Weighting, clip_gradients, mean_losses, register_weighting

if TYPE_CHECKING:
    from torch import Tensor

EPS = 1e-8


@register_weighting("famo")
class FAMO(Weighting):
    needs_losses_after_step = True

    def __init__(
        self,
        tasks: Sequence[str],
        weights: Mapping[str, float] | None = None,
        *,
        lr: float = 0.025,
        gamma: float = 1e-3,
        min_losses: Sequence[float] | None = None,
        max_norm: float = 0.0,
    ) -> None:
        import torch

        super().__init__(tasks, {t: 1.0 for t in tasks} if weights is None else weights)
        self.logits = torch.zeros(len(self.tasks), dtype=torch.float64, requires_grad=True)
        self.optimizer = torch.optim.Adam([self.logits], lr=lr, weight_decay=gamma)
        self.min_losses = torch.zeros(len(self.tasks), dtype=torch.float64)
        if min_losses is not None:
            self.min_losses = torch.tensor(list(min_losses), dtype=torch.float64)
        self.before: Tensor | None = None  # the step's last batch losses before the step
        self.max_norm = max_norm

    @classmethod
    def add_arguments(cls, group: argparse._ArgumentGroup) -> None:
        group.add_argument("--weighting_famo_lr", type=positive_float, default=0.025, help="learning rate of the logits")
        group.add_argument("--weighting_famo_gamma", type=non_negative_float, default=1e-3,
                           help="weight decay of the logits")
        group.add_argument("--weighting_famo_max_norm", type=non_negative_float, default=0.0,
                           help="clip the shared parameters' gradient to this norm after backward (0: never, which is "
                           "what the authors' code does in effect, see docs/METHODS.md)")

    @classmethod
    def from_flags(cls, flags: argparse.Namespace, tasks: Sequence[str]) -> Weighting:
        return cls(tasks, lr=flags.weighting_famo_lr, gamma=flags.weighting_famo_gamma,
                   max_norm=flags.weighting_famo_max_norm)

    def task_weights(self, mean: Tensor) -> Tensor:
        """w_t = z_t / (c·D_t) for the fp64 vector of mean losses."""
        import torch

        z = torch.softmax(self.logits.detach(), 0)
        gap = mean.cpu() - self.min_losses + EPS
        c = (z / gap).sum()
        return z / (c * gap)

    def backward(
        self, losses: Mapping[str, Tensor], shared: Sequence[Tensor], backward: Backward, context: StepContext
    ) -> Tensor:
        mean = mean_losses(self, losses)
        if not bool(mean.isfinite().all()):
            return mean.sum()
        w = self.task_weights(mean)
        self.weights = {t: float(w[k]) for k, t in enumerate(self.tasks)}
        backward(sum(self.weights[t] * losses[t] for t in self.tasks) / context.micro_batches)
        if context.last:
            self.before = mean.cpu()
            if self.max_norm > 0:
                clip_gradients([p for p in shared if p.requires_grad], self.max_norm, context.loss_scale)
        return self.loss({t: mean[k] for k, t in enumerate(self.tasks)}).detach()

    def after_step(self, losses: Mapping[str, Tensor]) -> None:
        import torch

        after = mean_losses(self, losses).cpu()
        if self.before is None or not bool(after.isfinite().all()):
            return
        delta = (self.before - self.min_losses + EPS).log() - (after - self.min_losses + EPS).log()
        z = torch.softmax(self.logits.detach(), 0)
        self.optimizer.zero_grad()
        self.logits.grad = z * (delta - (z * delta).sum())  # Jᵀδ of the softmax
        self.optimizer.step()
        self.before = None

    def state_dict(self) -> dict[str, Any]:
        return {
            "logits": self.logits.detach().clone(),
            "optimizer": self.optimizer.state_dict(),
            "before": self.before,
            "weights": dict(self.weights),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        import torch

        if state:
            with torch.no_grad():
                self.logits.copy_(state["logits"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.before = state["before"]
            self.weights = {t: float(state["weights"][t]) for t in self.tasks}
