"""Task weighting: how the per-task losses become the one scalar that is back-propagated.

Interface (as in Nash-MTL / LibMTL): ``weighting(losses: dict[task, scalar], shared_parameters=None)``
returns the scalar to back-propagate and records the weights it used in ``weighting.weights``
(task → detached 0-dim tensor; call ``float()`` when logging, so no GPU sync happens per step).
``shared_parameters`` is for gradient-based methods (GradNorm, Nash-MTL, …); the two here ignore it.
Weightings are nn.Modules so that learnable ones move with ``.to(device)``, join the optimizer through
``.parameters()`` and are saved in checkpoints through ``state_dict()``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch
from torch import Tensor, nn


class Weighting(nn.Module):
    def __init__(self, tasks: Sequence[str]) -> None:
        super().__init__()
        if not tasks or len(set(tasks)) != len(tasks):
            raise ValueError(f"tasks must be a non-empty list without repeats, got {list(tasks)}")
        self.tasks = tuple(tasks)
        self.weights: dict[str, Tensor] = {}

    def _check(self, losses: dict[str, Tensor]) -> None:
        if set(losses) != set(self.tasks):
            raise ValueError(f"expected losses for tasks {list(self.tasks)}, got {sorted(losses)}")

    def forward(self, losses: dict[str, Tensor], shared_parameters: Iterable[Tensor] | None = None) -> Tensor:
        raise NotImplementedError


class FixedWeighting(Weighting):
    """Σ w_t·L_t with constant weights (the course: 0.5/0.5; a single task keeps only its own term)."""

    def __init__(self, tasks: Sequence[str], weights: dict[str, float]) -> None:
        super().__init__(tasks)
        self.weights = {t: torch.tensor(float(weights[t])) for t in self.tasks}

    def forward(self, losses: dict[str, Tensor], shared_parameters: Iterable[Tensor] | None = None) -> Tensor:
        self._check(losses)
        return sum(float(self.weights[t]) * losses[t] for t in self.tasks)


class UncertaintyWeighting(Weighting):
    """Kendall, Gal & Cipolla 2018: Σ ½·exp(−s_t)·L_t + ½·s_t with learned log-variances s_t = log σ_t².

    The regression form is used for every task (as LibMTL does). s_t starts at −log(2·w_t), so the
    initial weights ½·exp(−s_t) equal the configured ones (0.5/0.5 → s = 0). The total can be negative.
    """

    def __init__(self, tasks: Sequence[str], weights: dict[str, float]) -> None:
        super().__init__(tasks)
        self.log_vars = nn.ParameterDict(
            {t: nn.Parameter(torch.tensor(-math.log(2.0 * weights[t]))) for t in self.tasks}
        )
        self.weights = self._current_weights()

    def _current_weights(self) -> dict[str, Tensor]:
        return {t: (0.5 * torch.exp(-self.log_vars[t])).detach() for t in self.tasks}

    def forward(self, losses: dict[str, Tensor], shared_parameters: Iterable[Tensor] | None = None) -> Tensor:
        self._check(losses)
        self.weights = self._current_weights()
        return sum(0.5 * torch.exp(-self.log_vars[t]) * losses[t] + 0.5 * self.log_vars[t] for t in self.tasks)


WEIGHTINGS: dict[str, type[Weighting]] = {"fixed": FixedWeighting, "uncertainty": UncertaintyWeighting}


def build_weighting(name: str, tasks: Sequence[str], weights: dict[str, float]) -> Weighting:
    """The weighting ``name`` for ``tasks``; ``weights`` holds each task's ``--loss_weight_<task>``."""
    if name not in WEIGHTINGS:
        raise ValueError(f"unknown loss weighting {name!r}; choose one of {', '.join(WEIGHTINGS)}")
    for task in tasks:
        if task not in weights:
            raise ValueError(f"no weight for task {task!r} (--loss_weight_{task})")
        w = float(weights[task])
        if name == "fixed" and not (math.isfinite(w) and w >= 0):
            raise ValueError(f"--loss_weight_{task} must be a finite number ≥ 0, got {w}")
        if name == "uncertainty" and not (math.isfinite(w) and w > 0):
            raise ValueError(f"--loss_weight_{task} must be > 0 for uncertainty weighting (it sets the initial log-variance), got {w}")
    return WEIGHTINGS[name](tasks, weights)
