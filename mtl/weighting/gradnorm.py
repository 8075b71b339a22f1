"""GradNorm (Chen et al., "GradNorm: Gradient Normalization for Adaptive Loss Balancing", ICML 2018).

The model trains on Σ w_t·L_t; the weights w_t are parameters of their own, moved by the model's optimiser
along the gradient of L_grad = Σ_t |G_t − Ḡ·r_t^α| with the target Ḡ·r_t^α held constant, where
G_t = w_t·‖∇L_t‖ is the norm of the weighted task gradient, Ḡ its mean over tasks, and
r_t = L̃_t / mean(L̃) the relative inverse training rate (L̃_t = L_t / L_t(0), L_t(0) the first step's
loss). So ∂L_grad/∂w_t = sign(G_t − Ḡ·r_t^α)·‖∇L_t‖: a task that trains slower than the others (r_t > 1)
is pulled towards a larger gradient norm. After each step the weights are renormalised to Σ w_t = K.
α = 1.5 (``--weighting_gradnorm_alpha``), the paper's NYU-v2 value.

The paper takes the norms on the last shared layer's weights to save compute; here they are taken on the
shared representation (``--weighting_on representation``, the default: one backward pass through the heads
per task) or on all shared parameters (``parameters``: one full backward pass per task). Under DDP the
norms are those of the whole batch; with accumulation, of the whole step.

Reference: LibMTL's GradNorm (LibMTL/weighting/GradNorm.py). Deliberate differences: the place of the norms (above),
and the weights renormalised after the step as in the paper.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from mtl.flags import non_negative_float
from mtl.weighting.base import (
    Backward,
    StepContext,
    Weighting,
    all_reduce_mean,
    all_reduce_sum,
    mean_losses,
    register_weighting,
    world_size,
)

if TYPE_CHECKING:
    from torch import Tensor, nn


@register_weighting("gradnorm")
class GradNorm(Weighting):
    def __init__(
        self,
        tasks: Sequence[str],
        weights: Mapping[str, float] | None = None,
        *,
        alpha: float = 1.5,
        on: str = "auto",
    ) -> None:
        import torch

        super().__init__(tasks, {t: 1.0 for t in tasks} if weights is None else weights)
        if not (alpha >= 0 and math.isfinite(alpha)):
            raise ValueError(f"--weighting_gradnorm_alpha must be a finite number ≥ 0, got {alpha}")
        self.alpha = alpha
        self.on = "representation" if on == "auto" else on
        if self.on not in ("parameters", "representation"):
            raise ValueError(f"--weighting_on {on}: gradnorm works on parameters or representation")
        self.loss_weights = {t: torch.nn.Parameter(torch.ones(())) for t in self.tasks}
        self.initial_losses: Tensor | None = None
        self._norms_sq: Tensor | None = None  # representation: squared norms summed over the step's batches
        self._acc: Tensor | None = None  # parameters: K×D gradients summed over the step's batches
        self._loss_acc: Tensor | None = None

    @classmethod
    def add_arguments(cls, group: argparse._ArgumentGroup) -> None:
        group.add_argument("--weighting_gradnorm_alpha", type=non_negative_float, default=1.5,
                           help="strength of the pull towards equal relative training rates")

    @classmethod
    def from_flags(cls, flags: argparse.Namespace, tasks: Sequence[str]) -> Weighting:
        return cls(tasks, alpha=flags.weighting_gradnorm_alpha, on=getattr(flags, "weighting_on", "auto"))

    @property
    def wants_representation(self) -> bool:  # type: ignore[override]
        return self.on == "representation"

    def parameters(self) -> dict[str, nn.Parameter]:
        return dict(self.loss_weights)

    def renormalize(self) -> None:
        """w ← K·w / Σ w (kept positive), after each optimiser step."""
        import torch

        with torch.no_grad():
            values = torch.stack([self.loss_weights[t] for t in self.tasks]).clamp_min(1e-6)
            values = values * (len(self.tasks) / values.sum())
            for k, t in enumerate(self.tasks):
                self.loss_weights[t].copy_(values[k])
        self.weights = {t: self.loss_weights[t].detach().clone() for t in self.tasks}

    def weight_gradient(self, norms: Tensor, losses: Tensor) -> Tensor:
        """∂L_grad/∂w from the task gradients' norms ‖∇L_t‖ and the step's mean losses (fp64)."""
        import torch

        w = torch.stack([self.loss_weights[t].detach().double().cpu() for t in self.tasks])
        weighted = w * norms
        ratio = losses / self.initial_losses
        target = weighted.mean() * (ratio / ratio.mean()) ** self.alpha
        return torch.sign(weighted - target) * norms

    def backward(
        self, losses: Mapping[str, Tensor], shared: Sequence[Tensor], backward: Backward, context: StepContext
    ) -> Tensor:
        import torch

        mean = mean_losses(self, losses)
        if not bool(mean.isfinite().all()):
            return mean.sum()
        self.renormalize()
        self._accumulate(losses, shared, context)
        self._loss_acc = (0 if self._loss_acc is None else self._loss_acc) + mean.cpu() / context.micro_batches
        gradient = torch.zeros(len(self.tasks), dtype=torch.float64)
        if context.last:
            if self.initial_losses is None:
                self.initial_losses = self._loss_acc.clone()
            gradient = self.weight_gradient(self._norms(), self._loss_acc)
            self._norms_sq = self._acc = self._loss_acc = None
        objective = sum(self.loss_weights[t].detach() * losses[t] for t in self.tasks) / context.micro_batches
        # The weights' own gradient enters through the same backward pass (zero before the step's last batch),
        # so DDP sees every parameter used and averages identical values.
        for k, t in enumerate(self.tasks):
            objective = objective + self.loss_weights[t] * float(gradient[k])
        backward(objective)
        return self.loss({t: mean[k] for k, t in enumerate(self.tasks)}).detach()

    def _accumulate(self, losses: Mapping[str, Tensor], shared: Sequence[Tensor], context: StepContext) -> None:
        import torch

        n, scale = context.micro_batches, context.loss_scale
        if self.on == "representation":
            features = [z for z in context.representation if z.requires_grad]
            if not features:
                raise RuntimeError("gradnorm --weighting_on representation: no shared features were captured")
            sq = torch.zeros(len(self.tasks), dtype=torch.float64)
            for k, t in enumerate(self.tasks):
                grads = torch.autograd.grad(losses[t] * scale, features, retain_graph=True, allow_unused=True)
                sq[k] = sum(float((g.float() / scale).pow(2).sum()) for g in grads if g is not None) / n**2
            self._norms_sq = sq if self._norms_sq is None else self._norms_sq + sq
            return
        params = [p for p in shared if p.requires_grad]
        if not params:
            raise RuntimeError("gradnorm --weighting_on parameters: the model shares no parameters")
        rows = []
        for t in self.tasks:
            grads = torch.autograd.grad(losses[t] * scale, params, retain_graph=True, allow_unused=True)
            rows.append(torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1).float() for g, p in zip(grads, params)]))
        block = torch.stack(rows) / (scale * n)
        self._acc = block if self._acc is None else self._acc + block

    def _norms(self) -> Tensor:
        if self.on == "representation":
            # The whole batch's feature gradient is the processes' ones side by side, each ÷ N (a process's loss
            # is a mean over 1/N of the batch).
            return (all_reduce_sum(self._norms_sq.clone()) / world_size() ** 2).sqrt()
        return all_reduce_mean(self._acc).norm(dim=1).double().cpu()

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"initial_losses": self.initial_losses}
        if self._loss_acc is not None:  # inside an accumulation window
            state["window"] = {"norms_sq": self._norms_sq, "acc": self._acc, "loss_acc": self._loss_acc}
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.initial_losses = state.get("initial_losses")
        window = state.get("window") or {}
        self._norms_sq, self._acc, self._loss_acc = window.get("norms_sq"), window.get("acc"), window.get("loss_acc")
