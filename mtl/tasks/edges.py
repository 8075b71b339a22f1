"""Edges: binary object boundaries, as the dense-prediction benchmarks (NYUD-v2, PASCAL-Context) evaluate them.

A layout that stores edges gives the matching tolerance of its benchmark as ``DatasetInfo.task_info["edges"] =
EdgesInfo(...)``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EdgesInfo:
    """How far (a fraction of the image diagonal) a predicted boundary pixel may lie from a ground-truth one and
    still match it: 0.0075 for PASCAL-Context, 0.011 for NYUD-v2 (the BSDS benchmark's ``maxDist``)."""

    tolerance: float = 0.0075
