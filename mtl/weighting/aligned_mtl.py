"""Aligned-MTL (Senushkin et al., "Independent Component Alignment for Multi-Task Learning", CVPR 2023).

The task gradients G = [g_1 … g_K] are replaced by Ĝ = G·B, whose columns are orthogonal and of equal
norm (condition number 1): with the eigendecomposition GᵀG = V Λ Vᵀ (eigenvalues below the numerical
rank dropped), B = √λ_min · V Λ^{-1/2} Vᵀ, so ĜᵀĜ = λ_min·I. The update is Σ_t ĝ_t = G·B·1.
``--weighting_aligned_mtl_scale`` picks the common norm: the smallest eigenvalue (``min``, the paper), the
median or the mean (``rmse``). On the representation it is the paper's Aligned-MTL-UB.

Reference: the authors' ProcrustesSolver (SamsungLabs/MTL, code/optim/aligned/solver.py), which this equals on the
same Gram matrix. Its ``median`` is torch.median, the lower of the two middle eigenvalues for an even count (with 2
tasks it equals ``min``), not np.median's mean of the two; mtl follows the authors. Deliberate differences: the
eigenvalues are computed in float64 with NumPy (theirs in the gradients' precision with torch.symeig), and the rank
tolerance uses float32's epsilon (theirs the default dtype's: the same in fp32 training).
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from mtl.weighting.base import register_weighting
from mtl.weighting.gradient import GradientWeighting

if TYPE_CHECKING:
    from torch import Tensor

SCALES = ("min", "median", "rmse")


def alignment_matrix(gram: Any, scale: str = "min") -> Any:
    """B with (G B)ᵀ(G B) = s·I on the span of G (NumPy in and out)."""
    import numpy as np

    gram = np.asarray(gram, dtype=np.float64)
    values, vectors = np.linalg.eigh(gram)
    tol = max(float(values.max()), 0.0) * len(gram) * float(np.finfo(np.float32).eps)
    keep = values > tol
    if not keep.any():
        return np.zeros_like(gram)
    values, vectors = values[keep], vectors[:, keep]
    middle = np.sort(values)[(len(values) - 1) // 2]  # torch.median's (the authors') median: the lower middle one
    s = {"min": values.min(), "median": middle, "rmse": values.mean()}[scale]
    return np.sqrt(s) * (vectors / np.sqrt(values)) @ vectors.T


@register_weighting("aligned_mtl")
class AlignedMTL(GradientWeighting):
    renamed_flags = {"weighting_aligned_scale": "weighting_aligned_mtl_scale"}

    def __init__(
        self, tasks: Sequence[str], weights: Mapping[str, float] | None = None, *, scale: str = "min", **kw: Any
    ) -> None:
        super().__init__(tasks, weights, **kw)
        if scale not in SCALES:
            raise ValueError(f"--weighting_aligned_mtl_scale must be one of {SCALES}, got {scale!r}")
        self.scale = scale

    @classmethod
    def add_arguments(cls, group: argparse._ArgumentGroup) -> None:
        group.add_argument("--weighting_aligned_mtl_scale", default="min", choices=SCALES,
                           help="common norm² of the aligned gradients: smallest, median or mean eigenvalue")

    @classmethod
    def options(cls, flags: argparse.Namespace) -> dict[str, Any]:
        return {"scale": flags.weighting_aligned_mtl_scale}

    def coefficients(self, gram: Tensor, losses: Tensor) -> Tensor:
        import torch

        return torch.from_numpy(alignment_matrix(gram.numpy(), self.scale).sum(1))
