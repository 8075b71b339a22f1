"""Surface materials: albedo (linear RGB in [0, 1]) of the hit points of one part.

A material is called with a :class:`Hit` holding only the pixels a part won in the z-buffer, so its
cost grows with the visible area. Patterns are computed from the part's local coordinates (windows,
lamps, stripes) or from world coordinates (noise), never per pixel in Python.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from mtl.data.synth.noise import fine_weight, noise, smooth_noise


@dataclass
class Hit:
    local: np.ndarray  # (N, 3) hit points in the part's frame
    normal: np.ndarray  # (N, 3) unit normals in the part's frame
    world: np.ndarray  # (N, 3) hit points in the world
    depth: np.ndarray  # (N,) depth along the optical axis


def srgb(color) -> np.ndarray:
    """An sRGB 0..255 triple → linear albedo, so palettes can be written as ordinary colours."""
    # a tuple is already a cache key (200 and 200.0 hash alike); converting it on every call cost ~4 ms per image
    key = color if type(color) is tuple else tuple(float(c) for c in color)
    return _srgb(key).copy()


@functools.lru_cache(maxsize=None)
def _srgb(color: tuple[float, float, float]) -> np.ndarray:
    return ((np.array(color, dtype=np.float32) / 255.0) ** 2.2).astype(np.float32)


def _mix(a: np.ndarray, b: np.ndarray, w: np.ndarray) -> np.ndarray:
    return a + (b - a) * w[:, None]


class Solid:
    """A colour with low-frequency blotches (``grain`` is their relative strength)."""

    def __init__(self, color, grain: float = 0.12, scale: float = 4.0, offset: float = 0.0) -> None:
        self.color = srgb(color)
        self.grain, self.scale, self.offset = grain, scale, offset

    def __call__(self, hit: Hit) -> np.ndarray:
        w = hit.world
        n = smooth_noise((w[:, 0] + w[:, 2]) * self.scale + self.offset, w[:, 1] * self.scale + self.offset)
        return self.color * (1.0 + self.grain * (2.0 * n[:, None] - 1.0))


class Foliage:
    """Leaves: green with dark gaps and light clumps at two scales; fine detail fades with distance."""

    def __init__(self, color, offset: float) -> None:
        self.color = srgb(color)
        self.offset = offset

    def __call__(self, hit: Hit) -> np.ndarray:
        p = hit.local * 9.0 + self.offset
        coarse = smooth_noise(p[:, 0] + p[:, 2], p[:, 1])
        fine = smooth_noise(p[:, 0] * 5.0 - p[:, 2] * 3.0, p[:, 1] * 5.0 + p[:, 2] * 2.0)
        fw = fine_weight(hit.depth, 0.05)
        shade = 0.45 + 0.8 * coarse + fw * (1.4 * fine - 0.7)
        shade = np.clip(shade, 0.15, 1.6)
        tint = 0.3 * (coarse - 0.5)  # warmer where leaves are lit, bluer in the gaps
        out = np.empty((len(shade), 3), dtype=np.float32)
        out[:, 0] = self.color[0] * (1.0 + tint) * shade
        out[:, 1] = self.color[1] * shade
        out[:, 2] = self.color[2] * (1.0 - tint) * shade
        return out


class Facade:
    """Building walls: a plastered or brick facade with a grid of windows per floor and shop windows
    on the ground floor. Windows sit on the two local faces that have a horizontal normal."""

    def __init__(self, rng: np.random.Generator, half_height: float) -> None:
        palette = [(200, 185, 160), (170, 160, 150), (150, 90, 70), (220, 215, 200), (190, 150, 100),
                   (120, 120, 125), (230, 200, 170), (160, 170, 175)]
        self.wall = srgb(palette[rng.integers(len(palette))]) * rng.uniform(0.8, 1.1)
        self.trim = self.wall * rng.uniform(0.6, 1.3)
        glass = [(60, 70, 80), (45, 55, 70), (80, 90, 95), (50, 50, 55)]
        self.glass = srgb(glass[rng.integers(len(glass))])
        self.frame = srgb((235, 235, 230)) if rng.random() < 0.6 else self.wall * 0.5
        self.floor = rng.uniform(2.9, 3.6)
        self.ground_floor = self.floor * rng.uniform(1.0, 1.4)
        self.spacing = rng.uniform(2.2, 4.0)
        self.win_w = rng.uniform(0.35, 0.65)
        self.win_h = rng.uniform(0.4, 0.6)
        self.shops = rng.random() < 0.6
        self.brick = rng.random() < 0.25
        self.half_height = half_height
        self.offset = rng.uniform(0, 256)

    @functools.cached_property
    def palette(self) -> np.ndarray:
        # built on first use: most facades of a street are hidden and never shaded
        return np.stack([self.wall, self.glass, self.frame, self.glass * 0.8, self.trim, srgb((90, 88, 85))])

    def __call__(self, hit: Hit) -> np.ndarray:
        # one small palette indexed per pixel (wall, glass, frame, shop, trim, roof): far fewer
        # full-size array operations than blending colours mask by mask
        p, n = hit.local, hit.normal
        y = p[:, 1] + self.half_height  # height above the street
        along = np.where(np.abs(n[:, 0]) > 0.5, p[:, 2], p[:, 0])
        upper = y - self.ground_floor
        du = np.abs(along % self.spacing - self.spacing / 2)
        dv = np.abs(upper % self.floor - 0.45 * self.floor)
        half_w, half_h = self.win_w * self.spacing / 2, self.win_h * self.floor / 2
        window = (upper > 0) & (du < half_w) & (dv < half_h)
        kind = np.zeros(len(y), dtype=np.intp)
        kind[window] = 1
        kind[window & ((du > half_w - 0.08) | (dv > half_h - 0.08))] = 2
        if self.shops:
            shop = (y > 0.4) & (y < self.ground_floor * 0.8) & (np.abs(along % (2 * self.spacing) - self.spacing) < 0.76 * self.spacing)
            kind[shop] = 3
        kind[np.abs(y - self.ground_floor) < 0.15] = 4
        kind[n[:, 1] > 0.5] = 5
        bright = 0.85 + 0.3 * smooth_noise(along * 2.0 + self.offset, y * 2.0)
        glass = (kind == 1) | (kind == 3)
        bright[glass] = 0.7 + 0.6 * smooth_noise(along[glass] * 0.7 + self.offset, y[glass] * 0.3)
        if self.brick:
            mortar = ((y % 0.08) < 0.015) | (((along + 0.12 * (np.floor(y / 0.08) % 2)) % 0.24) < 0.015)
            bright *= 1.0 - 0.35 * (mortar & (kind == 0)) * fine_weight(hit.depth, 0.08)
        return self.palette[kind] * bright[:, None]


class Paneled:
    """Vehicles and other painted boxes: a body colour with a window band between two local heights
    on the vertical faces, optional head lights (local +z end) and tail lights (-z end) in the
    corners of the end faces."""

    def __init__(self, body, glass=(30, 35, 40), band=None, lights: tuple[float, float, float] | None = None,
                 pillar: float = 0.0) -> None:
        self.body = srgb(body)
        self.glass = srgb(glass)
        self.band = band  # (low, high) in local y (from the part's centre), or None
        self.lights = lights  # (half width of the box, low, high local y of the lamps), or None
        self.pillar = pillar  # spacing of window pillars along local z (0 = none)

    def __call__(self, hit: Hit) -> np.ndarray:
        p, n = hit.local, hit.normal
        vertical = np.abs(n[:, 1]) < 0.5
        shade = 1.0 + 0.08 * (smooth_noise(p[:, 0] * 3 + p[:, 2] * 3, p[:, 1] * 3) - 0.5)
        color = self.body * shade[:, None]
        if self.band is not None:
            win = vertical & (p[:, 1] > self.band[0]) & (p[:, 1] < self.band[1])
            if self.pillar > 0:
                win &= ~((np.abs(n[:, 0]) > 0.5) & ((p[:, 2] % self.pillar) < 0.12))
            color = np.where(win[:, None], self.glass, color)
        if self.lights is not None:
            hw, low, high = self.lights
            lamp = (np.abs(n[:, 2]) > 0.5) & (p[:, 1] > low) & (p[:, 1] < high)
            lamp &= (np.abs(p[:, 0]) > hw - 0.35) & (np.abs(p[:, 0]) < hw - 0.07)
            head = np.where((n[:, 2] > 0)[:, None], srgb((255, 250, 225)), srgb((190, 15, 15)))
            color = np.where(lamp[:, None], head, color)
        return color


class Lamps:
    """Traffic-light housing: dark box, three lamps on its local -z face, one of them lit."""

    def __init__(self, lit: int, half_height: float) -> None:
        self.lit = lit
        self.h = half_height

    def __call__(self, hit: Hit) -> np.ndarray:
        p, n = hit.local, hit.normal
        color = np.broadcast_to(srgb((35, 35, 30)), p.shape).copy()
        front = n[:, 2] < -0.5
        slot = np.clip(((p[:, 1] + self.h) / (2 * self.h) * 3).astype(np.int32), 0, 2)  # 0 bottom … 2 top
        centre = (slot + 0.5) / 3 * 2 * self.h - self.h
        r = np.hypot(p[:, 0], p[:, 1] - centre)
        lamp = front & (r < self.h / 3 * 0.7)
        colors = np.stack([srgb((40, 255, 90)), srgb((255, 190, 30)), srgb((255, 40, 30))])
        on = slot == (2 - self.lit)
        lamp_color = colors[slot] * np.where(on, 3.0, 0.25)[:, None]
        return np.where(lamp[:, None], lamp_color, color)


class SignFace:
    """Traffic-sign plate: a coloured face with a border band on its local -z side, metal behind."""

    def __init__(self, face, border, half_width: float, half_height: float, shape: str) -> None:
        self.face, self.border = srgb(face), srgb(border)
        self.hw, self.hh, self.shape = half_width, half_height, shape

    def __call__(self, hit: Hit) -> np.ndarray:
        p, n = hit.local, hit.normal
        x, y = np.abs(p[:, 0]) / self.hw, p[:, 1] / self.hh
        if self.shape == "circle":
            rim = np.hypot(x, y) > 0.78
        elif self.shape == "triangle":
            rim = (x / np.maximum((y + 1) / 2, 1e-3) > 0.72) | (y > 0.8)
        else:
            rim = np.maximum(x, np.abs(y)) > 0.85
        color = np.where(rim[:, None], self.border, self.face)
        return np.where((n[:, 2] < -0.5)[:, None], color, srgb((140, 140, 140)))


class Grass:
    """Terrain: green and dry grass mixed at a large scale, with fine tufts that fade with distance."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.green = srgb((85, 120, 45)) * rng.uniform(0.8, 1.1)
        self.dry = srgb((150, 140, 85)) * rng.uniform(0.8, 1.1)
        self.offset = rng.uniform(0, 256)

    def __call__(self, hit: Hit) -> np.ndarray:
        return grass(hit.world[:, 0], hit.world[:, 2], hit.depth, self.green, self.dry, self.offset)


def grass(x, z, depth, green, dry, offset) -> np.ndarray:
    coarse = smooth_noise(x * 0.4 + offset, z * 0.4)
    fine = noise(x * 25.0, z * 25.0 + offset)
    fw = fine_weight(depth, 0.04)
    color = _mix(green, dry, np.clip(coarse * 1.6 - 0.5, 0, 1))
    return color * (0.75 + 0.3 * smooth_noise(x * 3.0, z * 3.0 + offset) + fw * (0.5 * fine - 0.25))[:, None]


class Paving:
    """Sidewalk: square tiles with darker joints on top faces, kerb stone on the vertical faces."""

    def __init__(self, rng: np.random.Generator) -> None:
        tiles = [(170, 165, 160), (150, 150, 150), (185, 170, 150), (160, 120, 110), (130, 130, 135)]
        self.tile = srgb(tiles[rng.integers(len(tiles))])
        self.kerb = srgb((175, 175, 170))
        self.size = rng.uniform(0.3, 0.6)
        self.offset = rng.uniform(0, 256)

    def __call__(self, hit: Hit) -> np.ndarray:
        w, n = hit.world, hit.normal
        x, z = w[:, 0], w[:, 2]
        blotch = smooth_noise(x * 1.5 + self.offset, z * 1.5)
        fw = fine_weight(hit.depth, self.size / 4)
        joint = ((x % self.size) < 0.02) | ((z % self.size) < 0.02)
        tile_var = noise(np.floor(x / self.size) * 7.0, np.floor(z / self.size) * 7.0 + self.offset)
        top = self.tile * (0.8 + 0.25 * blotch + 0.12 * fw * (tile_var - 0.5))[:, None]
        top = top * (1.0 - 0.35 * fw * joint)[:, None]
        side = self.kerb * (0.9 + 0.2 * blotch)[:, None]
        return np.where((np.abs(n[:, 1]) > 0.5)[:, None], top, side)
