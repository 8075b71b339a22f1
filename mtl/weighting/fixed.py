"""Constant task weights: Σ w_t·L_t (the course: 0.5/0.5; a single task keeps only its own term).

Reference: LibMTL's EW with these weights (and the course's framework with 0.5/0.5).
"""

from __future__ import annotations

from mtl.weighting.base import Weighting, register_weighting


@register_weighting("fixed")
class FixedWeighting(Weighting):
    pass
