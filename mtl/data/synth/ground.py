"""The ground plane y = 0: asphalt with markings and tram rails on the streets, grass elsewhere.

Sidewalks, medians and kerbs are raised boxes drawn on top; this plane is what remains: the main
street (|x| ≤ road_half, along z), an optional cross street (|z − cross_z| ≤ cross_half, along x)
and terrain everywhere else.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mtl.data.synth.materials import grass, srgb
from mtl.data.synth.noise import fine_weight, noise, smooth_noise
from mtl.data.synth.objects import ROAD, TERRAIN


@dataclass
class LaneLine:
    x: float
    dash: float  # dash length in metres; 0 = solid
    double: bool = False


@dataclass
class Ground:
    road_half: float
    lane_width: float
    cross_z: float | None = None
    cross_half: float = 0.0
    lines: list[LaneLine] = field(default_factory=list)
    rails: list[float] = field(default_factory=list)  # tram track centres (x)
    asphalt: np.ndarray = field(default_factory=lambda: srgb((95, 95, 98)))
    green: np.ndarray = field(default_factory=lambda: srgb((85, 120, 45)))
    dry: np.ndarray = field(default_factory=lambda: srgb((150, 140, 85)))
    offset: float = 0.0

    def __post_init__(self) -> None:
        self.palette = np.stack([self.asphalt, srgb((225, 225, 220)), srgb((150, 150, 155))]).astype(np.float32)

    def is_road(self, x: np.ndarray, z: np.ndarray) -> np.ndarray:
        road = np.abs(x) <= self.road_half
        if self.cross_z is not None:
            road |= np.abs(z - self.cross_z) <= self.cross_half
        return road

    def paint(self, x: np.ndarray, z: np.ndarray, depth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Labels and linear albedo for ground points (x, z) seen at ``depth``."""
        road = self.is_road(x, z)
        label = np.where(road, ROAD, TERRAIN).astype(np.uint8)
        albedo = np.empty((len(x), 3), dtype=np.float32)
        albedo[road] = self._asphalt(x[road], z[road], depth[road])
        off = ~road
        albedo[off] = grass(x[off], z[off], depth[off], self.green, self.dry, self.offset)
        return label, albedo

    def _asphalt(self, x, z, depth):
        coarse = smooth_noise(x * 0.3 + self.offset, z * 0.3)
        patch = smooth_noise(x * 0.08, z * 0.08 + self.offset) > 0.62
        fine = noise(x * 40.0 + self.offset, z * 40.0)
        bright = 0.8 + 0.35 * coarse - 0.15 * patch + fine_weight(depth, 0.03) * (0.4 * fine - 0.2)
        lane_pos = (x + self.road_half) % self.lane_width - self.lane_width / 2
        bright -= 0.08 * (np.abs(np.abs(lane_pos) - 0.8) < 0.3)  # darker tyre tracks

        paint = np.zeros(len(x), dtype=bool)
        on_main = np.ones(len(x), dtype=bool)
        if self.cross_z is not None:
            gap = np.abs(z - self.cross_z) - self.cross_half
            on_main = gap > 0.5
            crossing = (gap > 1.0) & (gap < 5.0) & (np.abs(x) < self.road_half - 0.3)
            paint |= crossing & ((x % 1.0) < 0.5)
            paint |= (gap > 5.6) & (gap < 6.0) & (z < self.cross_z) & (x > 0) & (x < self.road_half - 0.3)
        for line in self.lines:
            near = np.abs(x - line.x) < 0.07 if not line.double else np.abs(np.abs(x - line.x) - 0.12) < 0.06
            if line.dash:
                near &= (z % (3 * line.dash)) < line.dash
            paint |= near & on_main
        kind = paint.astype(np.intp)
        bright[paint] = 0.75 + 0.25 * noise(x[paint] * 6.0, z[paint] * 2.0 + self.offset)
        for rail_x in self.rails:
            steel = np.abs(np.abs(x - rail_x) - 0.72) < 0.045
            kind[steel] = 2
            bright[steel] = 1.0
        return self.palette[kind] * bright[:, None]
