"""A part is one shape with a semantic class, a material and optionally a cut-out pattern."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from mtl.data.synth.materials import Hit
from mtl.data.synth.shapes import Shape

Material = Callable[[Hit], np.ndarray]
# keep-mask from local hit points: lets a box show holes (fence bars, round sign plates)
Cutout = Callable[[np.ndarray], np.ndarray]


@dataclass(eq=False)
class Part:
    shape: Shape
    label: int
    material: Material
    cutout: Cutout | None = None
    casts_shadow: bool = True


class Placement:
    """An object's own frame on the ground: offsets are (right, up, forward) in that frame."""

    def __init__(self, x: float, y: float, z: float, yaw: float) -> None:
        self.origin = np.array([x, y, z], dtype=np.float64)
        self.yaw = float(yaw)
        self._cos, self._sin = math.cos(self.yaw), math.sin(self.yaw)

    def at(self, right: float, up: float, forward: float) -> tuple[float, float, float]:
        # plain floats: scenes place hundreds of parts, and tiny NumPy calls would dominate
        x, y, z = self.origin
        return (x + self._cos * right + self._sin * forward, y + up, z - self._sin * right + self._cos * forward)
