"""What every gradient method shares: per-task gradients, reduced and accumulated, combined, written back.

A gradient method sees one gradient per task and returns the update of the shared parameters. This module
computes those gradients and applies the result, so that a method only says how it combines them
(``coefficients`` from the Gram matrix for the methods whose update is a combination Σ c_t·g_t of the task
gradients; ``combine`` for the others). It works in two places (``--weighting_on``):

* ``parameters``: g_t = ∇_θ L_t for the shared parameters θ, one backward pass per task (with
  ``torch.autograd.grad``, which also returns the task's gradient of the task-specific parameters, so no
  further pass is needed). Under DDP nothing reduces these, so the K×D matrix is averaged over the
  processes here, once per optimiser step, *before* the method combines it; the task-specific gradients are
  averaged the same way. With ``--accumulate_grad_batches N`` the per-task gradients are summed over the N
  batches and combined once, at the last one.
* ``representation``: g_t = ∇_z L_t for the shared features z (MGDA-UB's idea), which costs a backward
  pass through the task's head only; the combined feature gradient is then passed into the shared layers
  by one ordinary backward pass (a hook on z replaces what reaches it). The features of a batch are split
  over the DDP processes, so the Gram matrix of the whole batch is the sum of the processes' ones (÷ N²,
  as each process's loss is a mean over its 1/N of the batch); every process then applies the same
  coefficients to its own features, and DDP's averaging of ``.grad`` completes the update.

Either way the task-specific parameters receive the gradient of their own task's loss (MGDA's algorithm;
Nash-MTL and DB-MTL weight it, see ``head_weights``), everything is combined in fp32/fp64 outside autocast,
and under fp16 the loss scale is divided out before combining and multiplied back after.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from mtl.weighting.base import (
    Backward,
    StepContext,
    Weighting,
    all_reduce_mean,
    all_reduce_sum,
    clip_gradients,
    make_generator,
    mean_losses,
    no_autocast,
    world_size,
)

if TYPE_CHECKING:
    from torch import Tensor, nn


class GradientWeighting(Weighting):
    on_choices: ClassVar[tuple[str, ...]] = ("parameters", "representation")
    default_on: ClassVar[str] = "parameters"
    weights_task_layers: ClassVar[bool] = False  # the task-specific gradients are weighted by head_weights()

    def __init__(
        self,
        tasks: Sequence[str],
        weights: Mapping[str, float] | None = None,
        *,
        on: str = "auto",
        seed: int = 0,
        max_norm: float = 0.0,
    ) -> None:
        super().__init__(tasks, {t: 1.0 for t in tasks} if weights is None else weights)
        on = self.default_on if on == "auto" else on
        if on not in self.on_choices:
            raise ValueError(f"--weighting_on {on}: {self.name} works on {' or '.join(self.on_choices)}")
        if not (max_norm >= 0):
            raise ValueError(f"the gradient norm bound must be ≥ 0, got {max_norm}")
        self.on = on
        self.seed = seed
        self.max_norm = max_norm
        self.generator = make_generator(seed)
        self.coefficients_used: Tensor | None = None  # the last c (for tests and the logs)
        self._reset_window()

    @classmethod
    def from_flags(cls, flags: argparse.Namespace, tasks: Sequence[str]) -> Weighting:
        return cls(tasks, on=getattr(flags, "weighting_on", "auto"), seed=getattr(flags, "seed", 0), **cls.options(flags))

    @classmethod
    def options(cls, flags: argparse.Namespace) -> dict[str, Any]:
        """The method's own keyword arguments from its ``--weighting_<method>_<option>`` flags."""
        return {}

    @property
    def wants_representation(self) -> bool:  # type: ignore[override]
        return self.on == "representation"

    def check_accumulation(self, micro_batches: int) -> None:
        if micro_batches > 1 and self.on == "representation":
            raise ValueError(
                f"--loss_weighting {self.name} --weighting_on representation combines the feature gradients of one "
                f"batch, which cannot be accumulated; with --accumulate_grad_batches {micro_batches} use "
                "--weighting_on parameters"
            )

    # ------------------------------------------------------------------------------ what a method says
    def coefficients(self, gram: Tensor, losses: Tensor) -> Tensor:
        """The K coefficients c of the update Σ c_t·g_t from the K×K Gram matrix g_i·g_j (fp64, CPU) of the
        whole batch's task gradients and the tasks' mean losses (fp64)."""
        raise NotImplementedError

    def combine(self, grads: Tensor, losses: Tensor) -> Tensor:
        """The shared parameters' update from the K×D task gradients (fp32, the same on every process)."""
        gram = (grads @ grads.T).double().cpu()
        if not bool(gram.isfinite().all()):  # a non-finite gradient (fp16 overflow): leave it to the scaler
            return grads.sum(0)
        c = self._record(self.coefficients(gram, losses.cpu()))
        return c.to(grads) @ grads

    def combine_representation(self, grads: list[list[Tensor]], features: list[Tensor], losses: Tensor) -> list[Tensor]:
        """The gradient each feature tensor passes into the shared layers, from this process's per-task feature
        gradients ``grads[task][tensor]`` (fp32)."""
        import torch

        flat = torch.stack([torch.cat([g.reshape(-1) for g in per_task]) for per_task in grads])
        gram = all_reduce_sum((flat @ flat.T).double()) / world_size() ** 2
        if not bool(gram.isfinite().all()):
            return [sum(per_task[j] for per_task in grads) for j in range(len(features))]
        c = self._record(self.coefficients(gram.cpu(), losses.cpu())).to(flat)
        return [sum(c[k] * grads[k][j] for k in range(len(grads))) for j in range(len(features))]

    def head_weights(self, losses: Tensor) -> Tensor | None:
        """Weights of the task-specific gradients (``weights_task_layers``); None: each task's own loss unweighted."""
        return None

    def task_scales(self) -> Tensor | None:
        """Factors applied to the task losses before anything else (IMTL-L's learned scales); None: none."""
        return None

    def parameter_gradients(self, losses: Tensor) -> dict[nn.Parameter, Tensor]:
        """Gradients of the method's own ``parameters()`` at the optimiser step (given in closed form)."""
        return {}

    # ----------------------------------------------------------------------------------- the machinery
    def backward(
        self,
        losses: Mapping[str, Tensor],
        shared: Sequence[Tensor],
        backward: Backward,
        context: StepContext,
    ) -> Tensor:
        mean = mean_losses(self, losses)
        if not bool(mean.isfinite().all()):
            self._reset_window()
            return mean.sum()  # the trainer stops on a non-finite loss (on every process: the mean is shared)
        shared = [p for p in shared if p.requires_grad]
        if not shared:  # nothing shared (e.g. --task_encoders): every task trains its own parameters
            backward(sum(losses[t] for t in self.tasks) / context.micro_batches)
        elif self.on == "representation":
            if context.micro_batches > 1:
                self.check_accumulation(context.micro_batches)
            self._backward_representation(losses, shared, backward, context, mean)
        else:
            self._backward_parameters(losses, shared, context, mean)
        return self.loss({t: mean[k] for k, t in enumerate(self.tasks)}).detach()

    def _backward_parameters(
        self, losses: Mapping[str, Tensor], shared: list[Tensor], context: StepContext, mean: Tensor
    ) -> None:
        import torch

        shared_ids = {id(p) for p in shared}
        own = {id(p) for p in self.parameters().values()}
        others = [p for p in context.parameters if p.requires_grad and id(p) not in shared_ids and id(p) not in own]
        sizes = [p.numel() for p in shared]
        scale = context.loss_scale / context.micro_batches
        task_scales = self.task_scales()
        if self._acc is None:
            # The K×D buffer is kept between steps (it is needed every step; allocating it is not free).
            shape, device = (len(self.tasks), sum(sizes)), shared[0].device
            if self._buffer is None or self._buffer.shape != shape or self._buffer.device != device:
                self._buffer = torch.empty(shape, dtype=torch.float32, device=device)
            self._acc = self._buffer
            self._loss_acc = torch.zeros_like(mean)
            self._task_layers = [[None] * len(others) for _ in self.tasks] if self.weights_task_layers else None
            fresh = True  # the buffer's rows are written (not added to) by this batch
        else:
            fresh = False
        self._acc = self._acc.to(shared[0].device)
        self._loss_acc = self._loss_acc.to(mean.device)
        for k, task in enumerate(self.tasks):
            factor = scale * (1.0 if task_scales is None else float(task_scales[k]))
            grads = torch.autograd.grad(
                losses[task] * factor, [*shared, *others], retain_graph=k < len(self.tasks) - 1, allow_unused=True
            )
            offset = 0
            for g, n in zip(grads[: len(shared)], sizes):
                slot = self._acc[k, offset : offset + n]
                if g is None:
                    if fresh:
                        slot.zero_()
                elif fresh:
                    slot.copy_(g.reshape(-1))
                    if context.loss_scale != 1:
                        slot.div_(context.loss_scale)
                else:
                    slot.add_(g.reshape(-1), alpha=1.0 / context.loss_scale)
                offset += n
            for i, (p, g) in enumerate(zip(others, grads[len(shared) :])):
                if g is None:
                    continue
                if self._task_layers is not None:
                    held = self._task_layers[k][i]
                    self._task_layers[k][i] = g if held is None else held.to(g).add_(g)
                else:
                    p.grad = g if p.grad is None else p.grad.add_(g)
        self._loss_acc += mean / context.micro_batches
        if not context.last:
            return

        grads, window_losses = all_reduce_mean(self._acc), self._loss_acc
        with no_autocast(grads.device.type):
            update = self.combine(grads, window_losses)
            if not bool(update.isfinite().all()):
                update = grads.sum(0)  # non-finite gradients (fp16 overflow): the scaler will skip the step
            update = self._clip(update)
            heads = self.head_weights(window_losses)
        if context.loss_scale != 1:
            update = update * context.loss_scale
        offset = 0
        for p, n in zip(shared, sizes):
            p.grad = update[offset : offset + n].view_as(p).to(p.dtype)
            offset += n
        if self._task_layers is not None:
            for i, p in enumerate(others):
                parts = [(h, g[i]) for h, g in zip(heads.tolist(), self._task_layers) if g[i] is not None]
                if parts:
                    p.grad = sum(float(h) * g for h, g in parts)
        _all_reduce_grads([p for p in others if p.grad is not None])
        for p, g in self.parameter_gradients(window_losses).items():
            p.grad = (g * context.loss_scale).to(p)
        self._reset_window()

    def _backward_representation(
        self, losses: Mapping[str, Tensor], shared: list[Tensor], backward: Backward, context: StepContext, mean: Tensor
    ) -> None:
        import torch

        features = [z for z in context.representation if z.requires_grad]
        if not features:
            raise RuntimeError(f"{self.name} --weighting_on representation: no shared features were captured")
        task_scales = self.task_scales()
        factors = [1.0 if task_scales is None else float(task_scales[k]) for k in range(len(self.tasks))]
        grads = []
        for k, task in enumerate(self.tasks):
            g = torch.autograd.grad(
                losses[task] * (context.loss_scale * factors[k]), features, retain_graph=True, allow_unused=True
            )
            grads.append(
                [torch.zeros_like(z, dtype=torch.float32) if gi is None else gi.float() / context.loss_scale
                 for gi, z in zip(g, features)]
            )
        with no_autocast(features[0].device.type):
            finite = all(bool(g.isfinite().all()) for per_task in grads for g in per_task)
            if finite:
                combined = self.combine_representation(grads, features, mean)
            else:
                combined = [sum(per_task[j] for per_task in grads) for j in range(len(features))]
            heads = self.head_weights(mean)
        handles = [z.register_hook(_replacement(d * context.loss_scale)) for z, d in zip(features, combined)]
        try:
            objective = sum(
                losses[t] * (factors[k] * (1.0 if heads is None else float(heads[k]))) for k, t in enumerate(self.tasks)
            )
            # The method's own parameters get their closed-form gradient through the same backward pass, so
            # that DDP sees every parameter it expects in it.
            for p, g in self.parameter_gradients(mean).items():
                objective = objective + (p * g.to(p)).sum()
            backward(objective)
        finally:
            for handle in handles:
                handle.remove()
        if self.max_norm > 0:
            clip_gradients(shared, self.max_norm, context.loss_scale)

    # ----------------------------------------------------------------------------------------- helpers
    def _clip(self, update: Tensor) -> Tensor:
        if self.max_norm > 0:
            norm = float(update.norm())
            if norm > self.max_norm:
                update = update * (self.max_norm / norm)
        return update

    def _record(self, c: Tensor) -> Tensor:
        self.coefficients_used = c.detach().clone()
        self.weights = {t: float(c[k]) for k, t in enumerate(self.tasks)}
        return c

    def _reset_window(self) -> None:
        self._buffer: Tensor | None = getattr(self, "_buffer", None)
        self._acc: Tensor | None = None  # K×D per-task gradients of the shared parameters, summed over the window
        self._loss_acc: Tensor | None = None
        self._task_layers: list[list[Tensor | None]] | None = None

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"generator": self.generator.get_state(), "weights": dict(self.weights)}
        if self._acc is not None:  # a checkpoint taken inside an accumulation window
            state["window"] = {"acc": self._acc.clone(), "loss_acc": self._loss_acc, "task_layers": self._task_layers}
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if "generator" in state:
            self.generator.set_state(state["generator"])
        self.weights.update({t: float(w) for t, w in state.get("weights", {}).items() if t in self.weights})
        window = state.get("window")
        self._reset_window()
        if window is not None:
            self._acc, self._loss_acc, self._task_layers = window["acc"], window["loss_acc"], window["task_layers"]


def _replacement(gradient: Tensor) -> Any:
    return lambda incoming: gradient.to(incoming.dtype)


def _all_reduce_grads(params: list[Tensor]) -> None:
    """Average ``.grad`` over the processes, in one flat buffer."""
    if world_size() == 1 or not params:
        return
    import torch

    flat = torch.cat([p.grad.reshape(-1) for p in params])
    all_reduce_mean(flat)
    offset = 0
    for p in params:
        n = p.numel()
        p.grad.copy_(flat[offset : offset + n].view_as(p.grad))
        offset += n


def simplex_minimize(objective: Any, jacobian: Any, k: int, start: Any = None) -> Any:
    """argmin over the probability simplex {w ≥ 0, Σw = 1} of a smooth convex function, with SciPy's SLSQP
    (the sequential least-squares QP solver of scipy.optimize)."""
    import numpy as np
    from scipy.optimize import minimize

    if k == 1:
        return np.ones(1)
    x0 = np.full(k, 1.0 / k) if start is None else np.asarray(start, dtype=np.float64)
    result = minimize(
        objective,
        x0,
        jac=jacobian,
        method="SLSQP",
        bounds=[(0.0, 1.0)] * k,
        constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1.0, "jac": lambda w: np.ones_like(w)}],
        options={"ftol": 1e-15, "maxiter": 500},
    )
    w = np.clip(result.x, 0.0, None)
    return w / w.sum()
