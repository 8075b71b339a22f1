"""Random Loss Weighting (Lin et al., "Reasonable Effectiveness of Random Weighting", TMLR 2022).

Every optimiser step draws z ~ N(0, I_K) and trains on Σ softmax(z)_t · L_t (the paper's default
distribution). The draws come from the method's own generator, seeded by --seed and saved in checkpoints:
every DDP process and a resumed run use the same weights; with accumulation one draw serves the whole step.

Reference: LibMTL's RLW (LibMTL/weighting/RLW.py): the same distribution and weights; the draws differ (its global
torch generator, here the method's own, for DDP and resume).
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from mtl.weighting.base import Backward, StepContext, Weighting, make_generator, register_weighting

if TYPE_CHECKING:
    from torch import Tensor


@register_weighting("rlw")
class RLW(Weighting):
    def __init__(self, tasks: Sequence[str], weights: Mapping[str, float] | None = None, *, seed: int = 0) -> None:
        super().__init__(tasks, {t: 1.0 for t in tasks} if weights is None else weights)
        self.generator = make_generator(seed)
        self.drawn = False  # weights drawn for the current optimiser step

    @classmethod
    def from_flags(cls, flags: argparse.Namespace, tasks: Sequence[str]) -> Weighting:
        return cls(tasks, seed=getattr(flags, "seed", 0))

    def draw(self) -> dict[str, float]:
        import torch

        z = torch.randn(len(self.tasks), generator=self.generator, dtype=torch.float64)
        return dict(zip(self.tasks, torch.softmax(z, 0).tolist()))

    def backward(
        self, losses: Mapping[str, Tensor], shared: Sequence[Tensor], backward: Backward, context: StepContext
    ) -> Tensor:
        if not self.drawn:
            self.weights, self.drawn = self.draw(), True
        total = super().backward(losses, shared, backward, context)
        self.drawn = not context.last
        return total

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state(), "drawn": self.drawn, "weights": dict(self.weights)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state:
            self.generator.set_state(state["generator"])
            self.drawn = bool(state["drawn"])
            self.weights = {t: float(state["weights"][t]) for t in self.tasks}
