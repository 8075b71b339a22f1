"""What a weighting method provides: it turns the task losses of a step into parameter gradients.

A method owns the backward pass (as Nash-MTL's ``WeightMethod.backward`` does): it gets the task losses,
the shared parameters (those every task's loss reaches: the encoder) and a ``backward`` function that
back-propagates a scalar the way the trainer needs (mixed-precision scaling, DDP). A loss-weighting method
back-propagates one weighted sum; a gradient method may take per-task gradients of the shared parameters,
combine them, and write the result into their ``.grad``. Either way it records the task weights it used
in ``weights`` (task → float or 0-dim tensor) for the logs.

A method is one class registered with ``@register_weighting("name")``; its own hyper-parameters are flags
``--weighting_<method>_<option>`` declared in ``add_arguments`` (the registry refuses any other name;
``--weighting_on`` is common to all, see ``mtl.config``), and a flag renamed since keeps working under its
former name through ``renamed_flags``. Learnable weights are returned by ``parameters()`` (the trainer registers them with the
model, so they move with it, are optimised with it and saved in its state dict); any other state (running
averages, loss history, a method's own optimiser, its random generator) goes through ``state_dict()``.

What the trainer knows about a step reaches the method as a ``StepContext``: the trainable parameters, the
shared representation when the method asked for it (``wants_representation``), how many batches are
accumulated into this optimiser step and whether this batch is the last of them, and the loss scale of
fp16 mixed precision. Under DDP a method reduces what it combines itself (``all_reduce_mean``): Lightning
averages ``.grad`` in a backward pass, but not what ``torch.autograd.grad`` returns.
Modules here import torch inside their functions (see ``mtl.plugins``).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from mtl.flags import flag_key
from mtl.plugins import Registry

if TYPE_CHECKING:
    from torch import Tensor, nn

WEIGHTINGS: Registry[type[Weighting]] = Registry("loss weighting", "mtl.weighting")

Backward = Callable[["Tensor"], None]


def register_weighting(name: str) -> Callable[[type[Weighting]], type[Weighting]]:
    """Class decorator: ``@register_weighting("name")`` makes the method ``--loss_weighting name``. Its flags must
    be ``--weighting_<name>_<option>`` (so that two methods cannot clash, and a reader knows whose flag it is);
    ValueError naming the method and the flag otherwise."""

    def decorator(cls: type[Weighting]) -> type[Weighting]:
        scratch = argparse.ArgumentParser(add_help=False)
        cls.add_arguments(scratch.add_argument_group(name))
        prefix = f"weighting_{name}_"
        for flag in (s for action in scratch._actions for s in action.option_strings):
            if not flag_key(flag).startswith(prefix):
                raise ValueError(f"loss weighting {name!r}: its flag {flag} must be named --{prefix}<option>")
        return WEIGHTINGS.register(name)(cls)

    return decorator


def renamed_flags() -> dict[str, str]:
    """Former flag names of the registered methods → today's (without dashes): what old command lines, presets and
    recorded runs may still say (accepted with a note naming the new name)."""
    return {old: new for _, method in WEIGHTINGS.items() for old, new in method.renamed_flags.items()}


@dataclass
class StepContext:
    """What the trainer tells a method about the batch whose losses it back-propagates."""

    parameters: Sequence[Tensor] = ()  # every trainable parameter of the model (shared and task-specific)
    representation: Sequence[Tensor] = ()  # the shared features of this batch, if the method asked for them
    micro_batches: int = 1  # batches accumulated into this optimiser step (--accumulate_grad_batches)
    last: bool = True  # this batch completes the optimiser step: the method combines now
    epoch: int = 0
    loss_scale: float = 1.0  # the GradScaler's factor under 16-mixed precision (backward() applies it itself)


class Weighting:
    name: ClassVar[str]
    # A method that needs the losses of the same batch again after the optimiser step (FAMO) says so; the
    # trainer then evaluates them (no gradient, normalisation statistics untouched) and calls after_step().
    needs_losses_after_step: ClassVar[bool] = False
    wants_representation: bool = False  # capture the shared features for StepContext.representation
    # Former names of the method's flags → today's, without dashes ({"weighting_old": "weighting_<name>_new"}).
    renamed_flags: ClassVar[Mapping[str, str]] = {}

    def __init__(self, tasks: Sequence[str], weights: Mapping[str, float]) -> None:
        if not tasks or len(set(tasks)) != len(tasks):
            raise ValueError(f"tasks must be a non-empty list without repeats, got {list(tasks)}")
        missing = [t for t in tasks if t not in weights]
        if missing:
            raise ValueError(f"no weight for task {missing[0]!r} (--loss_weight_{missing[0]})")
        for task in tasks:
            w = float(weights[task])
            if not (math.isfinite(w) and w >= 0):
                raise ValueError(f"--loss_weight_{task} must be a finite number ≥ 0, got {w}")
        self.tasks = tuple(tasks)
        self.weights: dict[str, float | Tensor] = {t: float(weights[t]) for t in self.tasks}  # float() when logging

    @classmethod
    def add_arguments(cls, group: argparse._ArgumentGroup) -> None:
        """The method's own flags, each named ``--weighting_<name>_<option>``."""

    @classmethod
    def from_flags(cls, flags: argparse.Namespace, tasks: Sequence[str]) -> Weighting:
        return cls(tasks, {t: getattr(flags, f"loss_weight_{t}") for t in tasks})

    def parameters(self) -> dict[str, nn.Parameter]:
        """Learnable weights, trained by the model's optimiser (none by default)."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        """State other than ``parameters()`` that a resumed run needs (plain values and tensors)."""
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        pass

    def loss(self, losses: Mapping[str, Tensor]) -> Tensor:
        """The scalar objective with the current weights: what a loss weighting back-propagates, and what
        is logged as the total loss (in training and validation) for every method."""
        self._check(losses)
        return sum(self.weights[t] * losses[t] for t in self.tasks)

    def backward(
        self,
        losses: Mapping[str, Tensor],
        shared: Sequence[Tensor],
        backward: Backward,
        context: StepContext,
    ) -> Tensor:
        """Back-propagate this batch's losses into ``.grad`` (added to what earlier batches of an accumulated
        step left there); returns the objective (detached) for the logs."""
        total = self.loss(losses)
        backward(total / context.micro_batches)
        return total.detach()

    def after_step(self, losses: Mapping[str, Tensor]) -> None:
        """The losses of the step's last batch re-evaluated after the optimiser step (if ``needs_losses_after_step``)."""

    def check_accumulation(self, micro_batches: int) -> None:
        """Raise ValueError (naming the flags) if the method cannot accumulate this many batches per step."""

    def _check(self, losses: Mapping[str, Tensor]) -> None:
        if set(losses) != set(self.tasks):
            raise ValueError(f"expected losses for tasks {list(self.tasks)}, got {sorted(losses)}")


def build_weighting(flags: argparse.Namespace, tasks: Sequence[str]) -> Weighting:
    weighting = WEIGHTINGS[flags.loss_weighting].from_flags(flags, tasks)
    weighting.check_accumulation(getattr(flags, "accumulate_grad_batches", 1))
    return weighting


# ------------------------------------------------------------------------------------------ helpers
def world_size() -> int:
    import torch.distributed as dist

    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def all_reduce_sum(tensor: Tensor) -> Tensor:
    """Sum over the processes of a DDP run, in place (a no-op in one process)."""
    if world_size() > 1:
        import torch.distributed as dist

        dist.all_reduce(tensor)
    return tensor


def all_reduce_mean(tensor: Tensor) -> Tensor:
    """Mean over the processes, in place: what one process would compute on the union of their batches when
    ``tensor`` is a batch mean (the processes hold equal batches)."""
    n = world_size()
    if n > 1:
        all_reduce_sum(tensor).div_(n)
    return tensor


def mean_losses(weighting: Weighting, losses: Mapping[str, Tensor]) -> Tensor:
    """The task losses as one fp64 vector (task order), averaged over the processes: every process gets the same
    values, so weights computed from them agree (and a NaN on one process stops them all)."""
    import torch

    weighting._check(losses)
    vector = torch.stack([losses[t].detach().to(torch.float64) for t in weighting.tasks])
    return all_reduce_mean(vector)


def make_generator(seed: int) -> Any:
    """A CPU generator of the method's own: the same draws on every process and after a resume."""
    import torch

    return torch.Generator().manual_seed(int(seed))


def clip_gradients(params: Sequence[Tensor], max_norm: float, loss_scale: float = 1.0) -> None:
    """Scale the ``.grad`` of ``params`` so that their joint L2 norm (the loss scale divided out) is at most
    ``max_norm`` (torch.nn.utils.clip_grad_norm_'s rule, on gradients that may hold fp16's loss scale)."""
    import torch

    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    norm = float(torch.sqrt(sum((g.float() ** 2).sum() for g in grads))) / loss_scale
    if norm > max_norm:
        for g in grads:
            g.mul_(max_norm / norm)


def no_autocast(device_type: str) -> Any:
    """Combinations are computed in fp32/fp64 even inside a bf16/fp16 autocast region."""
    import torch

    return torch.autocast(device_type, enabled=False)
