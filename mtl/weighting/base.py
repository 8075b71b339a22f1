"""What a weighting method provides: it turns the task losses of a step into parameter gradients.

A method owns the backward pass (as Nash-MTL's ``WeightMethod.backward`` does): it gets the task losses,
the shared parameters (those every task's loss reaches: the encoder) and a ``backward`` function that
back-propagates a scalar the way the trainer needs (mixed-precision scaling, DDP). A loss-weighting method
back-propagates one weighted sum; a gradient method may take per-task gradients of the shared parameters,
combine them, and write the result into their ``.grad``. Either way it records the task weights it used
in ``weights`` (task → float or 0-dim tensor) for the logs.

A method is one class registered with ``@register_weighting("name")``; its own hyper-parameters are flags
``--weighting_<option>`` declared in ``add_arguments``. Learnable weights are returned by ``parameters()``
(the trainer registers them with the model, so they move with it, are optimised with it and saved in its
state dict); any other state (running averages, loss history) goes through ``state_dict()``.
Modules here import torch inside their functions (see ``mtl.plugins``).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from mtl.plugins import Registry

if TYPE_CHECKING:
    from torch import Tensor, nn

WEIGHTINGS: Registry[type[Weighting]] = Registry("loss weighting", "mtl.weighting")
register_weighting = WEIGHTINGS.register

Backward = Callable[["Tensor"], None]


class Weighting:
    name: ClassVar[str]

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
        """The method's own flags, each named ``--weighting_<option>``."""

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

    def backward(self, losses: Mapping[str, Tensor], shared: Sequence[Tensor], backward: Backward) -> Tensor:
        """Back-propagate this step's losses into ``.grad``; returns the objective (detached) for the logs."""
        total = self.loss(losses)
        backward(total)
        return total.detach()

    def _check(self, losses: Mapping[str, Tensor]) -> None:
        if set(losses) != set(self.tasks):
            raise ValueError(f"expected losses for tasks {list(self.tasks)}, got {sorted(losses)}")


def build_weighting(flags: argparse.Namespace, tasks: Sequence[str]) -> Weighting:
    return WEIGHTINGS[flags.loss_weighting].from_flags(flags, tasks)
