"""Weighting ``dirichlet_rlw``: random loss weighting, the task weights drawn from a Dirichlet distribution.

RLW (Lin et al., TMLR 2022; mtl's ``rlw``) trains on Σ_t w_t·L_t with new weights at every optimiser step, by
default softmax of a normal draw. A Dirichlet(α, …, α) draw is a point of the simplex too, with one knob for how
uneven the weights are: α = 1 is uniform over all weightings, a large α tends to equal weights, α < 1 favours one
task at a time (``--weighting_dirichlet_rlw_alpha``).

Everything else is inherited from ``RLW``: one draw per optimiser step (also under gradient accumulation), from
the method's own torch generator seeded by ``--seed`` and saved in checkpoints with the weights in use, so that
every DDP process and a resumed run draw the same weights. torch's Dirichlet sampler takes no generator (it would
draw from the global one, which a resume does not restore), so each draw seeds a NumPy one from that generator:
the generator's state stays the method's only state.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Mapping, Sequence

import numpy as np

from mtl.flags import positive_float
from mtl.weighting import Weighting, register_weighting
from mtl.weighting.rlw import RLW

DEFAULT_ALPHA = 1.0


@register_weighting("dirichlet_rlw")
class DirichletRLW(RLW):
    def __init__(
        self,
        tasks: Sequence[str],
        weights: Mapping[str, float] | None = None,
        *,
        seed: int = 0,
        alpha: float = DEFAULT_ALPHA,
    ) -> None:
        if not (math.isfinite(alpha) and alpha > 0):
            raise ValueError(f"--weighting_dirichlet_rlw_alpha must be a finite number > 0, got {alpha}")
        super().__init__(tasks, weights, seed=seed)
        self.alpha = alpha

    @classmethod
    def add_arguments(cls, group: argparse._ArgumentGroup) -> None:
        group.add_argument(
            "--weighting_dirichlet_rlw_alpha", type=positive_float, default=DEFAULT_ALPHA, metavar="ALPHA",
            help="concentration of the Dirichlet(ALPHA, ..., ALPHA) the task weights are drawn from: 1 uniform over "
            "all weightings, larger nearer equal weights, below 1 mostly one task at a time",
        )

    @classmethod
    def from_flags(cls, flags: argparse.Namespace, tasks: Sequence[str]) -> Weighting:
        return cls(tasks, seed=getattr(flags, "seed", 0), alpha=flags.weighting_dirichlet_rlw_alpha)

    def draw(self) -> dict[str, float]:
        import torch

        seed = int(torch.randint(2**62, (1,), generator=self.generator))
        weights = np.random.default_rng(seed).dirichlet(np.full(len(self.tasks), self.alpha))
        return dict(zip(self.tasks, weights.tolist()))
