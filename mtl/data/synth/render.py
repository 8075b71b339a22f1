"""Ray casting into a z-buffer, then deferred materials and shading (sun, cast shadows, sky, haze).

Every part is intersected only with the rays inside its projected screen-space bounding box, and
only with those whose current depth is beyond the part's nearest point (parts are drawn nearest
first), so the cost of a part grows with the area it can still win. The geometry pass keeps the
nearest depth and the index of the part that produced it; materials, labels and normals are then
evaluated once per pixel for the final winner. Labels and depth therefore come from exactly the
surface whose colour is shown.
"""

from __future__ import annotations

import numpy as np

from mtl.data.classes import CLASS_ID, IGNORE_INDEX
from mtl.data.formats import ZMAX, ZMIN
from mtl.data.synth.camera import Camera
from mtl.data.synth.ground import Ground
from mtl.data.synth.materials import Hit
from mtl.data.synth.noise import noise
from mtl.data.synth.parts import Part
from mtl.data.synth.scene import Bonnet, Light, Scene
from mtl.data.synth.shapes import dot3

SKY = CLASS_ID["sky"]
GROUND = -1  # part index of the ground plane (and of the sky, where the depth is inf)
SHADOW_RANGE = 150.0  # metres; shadows further away are a few pixels lost in the haze


class Frame:
    """Per-pixel buffers: depth and winning part, then label, albedo and world normal."""

    def __init__(self, camera: Camera) -> None:
        self.camera = camera
        self.rays = camera.rays()
        h, w = camera.height, camera.width
        self.origin = camera.position.astype(np.float32)
        self.depth = np.where(self.rays[..., 1] < 0, -self.origin[1] / self.rays[..., 1], np.inf).astype(np.float32)
        self.part = np.full((h, w), GROUND, dtype=np.int32)
        self.label = np.full((h, w), SKY, dtype=np.uint8)
        self.albedo = np.zeros((h, w, 3), dtype=np.float32)
        self.normal = np.zeros((h, w, 3), dtype=np.float32)

    def draw_parts(self, parts: list[Part]) -> None:
        """Geometry pass, nearest first, so a part skips every pixel already covered by something nearer."""
        if not parts:
            return
        boxes, near = self.camera.screen_boxes(np.stack([p.shape.corners() for p in parts]))
        for k in np.argsort(near):
            r0, r1, c0, c1 = boxes[k]
            if r0 < r1 and c0 < c1:
                self._draw(k, parts[k], (slice(r0, r1), slice(c0, c1)), near[k])

    def _draw(self, index: int, part: Part, box: tuple[slice, slice], near: float) -> None:
        depth = self.depth[box]
        todo = np.flatnonzero(depth > near)  # pixels this part could still win
        if todo.size == 0:
            return
        shape = part.shape
        o_local = shape.to_local_points(self.origin)
        d_local = shape.to_local_dirs(self.rays[box].reshape(-1, 3)[todo])
        t = shape.intersect_local(o_local, d_local)
        won = t < depth.reshape(-1)[todo]
        if part.cutout is not None:
            hit = np.flatnonzero(won)
            won[hit] = part.cutout(o_local + t[hit, None] * d_local[hit])
        pixel = todo[won]
        width = box[1].stop - box[1].start
        rows, cols = pixel // width + box[0].start, pixel % width + box[1].start
        self.depth[rows, cols] = t[won]
        self.part[rows, cols] = index

    def resolve(self, parts: list[Part], ground: Ground) -> None:
        """Material pass: label, albedo and normal of every pixel from the part that won it."""
        flat = self.part.reshape(-1)
        order = np.argsort(flat, kind="stable")
        ends = np.cumsum(np.bincount(flat + 1, minlength=len(parts) + 1))
        depth, rays = self.depth.reshape(-1), self.rays.reshape(-1, 3)
        label, albedo, normal = self.label.reshape(-1), self.albedo.reshape(-1, 3), self.normal.reshape(-1, 3)

        pixels = order[: ends[0]]
        pixels = pixels[np.isfinite(depth[pixels])]  # ground; the rest of GROUND is sky
        t = depth[pixels]
        world = self.origin + t[:, None] * rays[pixels]
        label[pixels], albedo[pixels] = ground.paint(world[:, 0], world[:, 2], t)
        normal[pixels] = (0.0, 1.0, 0.0)

        for k in np.flatnonzero(np.diff(ends)):
            pixels = order[ends[k] : ends[k + 1]]
            part, shape = parts[k], parts[k].shape
            t = depth[pixels]
            dirs = rays[pixels]
            local = shape.to_local_points(self.origin) + t[:, None] * shape.to_local_dirs(dirs)
            n_local = shape.normal(local)
            world = self.origin + t[:, None] * dirs
            albedo[pixels] = part.material(Hit(local, n_local, world, t))
            normal[pixels] = shape.to_world_dirs(n_local)
            label[pixels] = part.label

    def shadows(self, parts: list[Part], sun_dir: np.ndarray) -> np.ndarray:
        """H×W bool: pixels facing the sun whose ray towards it hits a shadow-casting part.

        A caster can only darken pixels inside the screen box of its shadow volume (its corners and
        their projections along the sun onto the ground), so only those pixels are tested. Rays are
        traced for one pixel per 2×2 block and for every pixel whose block mixes surfaces (label or
        depth changes); the other pixels copy their block's result, which keeps edges exact at about
        a third of the cost.
        """
        h, w = self.depth.shape
        shadow = np.zeros((h, w), dtype=bool)
        casters = [p for p in parts if p.casts_shadow]
        if sun_dir[1] <= 0.05 or not casters:
            return shadow
        facing = (self.depth < SHADOW_RANGE) & (dot3(self.normal, sun_dir) > 0.0)

        def up(a: np.ndarray) -> np.ndarray:
            return np.repeat(np.repeat(a[::2, ::2], 2, axis=0), 2, axis=1)[:h, :w]

        representative = np.zeros((h, w), dtype=bool)
        representative[::2, ::2] = True
        with np.errstate(invalid="ignore"):
            mixed = (self.label != up(self.label)) | ~(np.abs(self.depth - up(self.depth)) <= 0.03 * self.depth)
        test = facing & (representative | mixed)
        points = self.origin + self.depth[..., None] * self.rays + 0.02 * self.normal
        sun = sun_dir.astype(np.float32)
        corners = np.stack([p.shape.corners() for p in casters])
        dropped = corners - (np.maximum(corners[..., 1], 0.0) / sun_dir[1])[..., None] * sun_dir
        boxes, near = self.camera.screen_boxes(np.concatenate([corners, dropped], axis=1))
        for k in np.flatnonzero(near < SHADOW_RANGE):
            r0, r1, c0, c1 = boxes[k]
            if r0 >= r1 or c0 >= c1:
                continue
            box = (slice(r0, r1), slice(c0, c1))
            idx = np.flatnonzero(test[box] & ~shadow[box])
            if idx.size == 0:
                continue
            origins = points[box].reshape(-1, 3)[idx]
            t = casters[k].shape.intersect(origins, np.broadcast_to(sun, origins.shape))
            hit = idx[np.isfinite(t)]
            shadow[hit // (c1 - c0) + r0, hit % (c1 - c0) + c0] = True
        return np.where(representative | mixed, shadow, up(shadow)) & facing


def sky_color(rays: np.ndarray, light: Light) -> np.ndarray:
    """Horizon-to-zenith gradient, clouds on a far plane, a glow around the sun (N×3 linear RGB)."""
    d = rays / np.sqrt(dot3(rays, rays))[:, None]
    up = np.clip(d[:, 1], 0.0, 1.0)
    horizon, zenith = light.horizon.astype(np.float32), light.zenith.astype(np.float32)
    color = horizon + (zenith - horizon) * np.sqrt(up)[:, None]
    if light.clouds > 0:
        k = 6.0 / np.maximum(d[:, 1], 0.03)
        cloud = noise(d[:, 0] * k + 50.0, d[:, 2] * k)
        cover = np.clip((cloud - (1.0 - light.clouds)) * 3.0, 0.0, 1.0) * np.clip(up * 8.0, 0.0, 1.0)
        white = max(float(light.horizon.max()), 0.85) * (0.85 + 0.3 * cloud)
        color += (white[:, None] - color) * cover[:, None]
    if light.sun.any():
        glow = np.clip(dot3(d, light.sun_dir.astype(np.float32)), 0.0, 1.0) ** 64
        color += 0.6 * glow[:, None]
    return color


# sRGB encoding through a table indexed by sqrt(linear): fine steps in the shadows, no pow() per pixel
_SRGB_STEPS = 4096
_SRGB = (np.linspace(0.0, 1.0, _SRGB_STEPS) ** (2 / 2.2) * 255.0 + 0.5).astype(np.uint8)


def to_srgb(linear: np.ndarray) -> np.ndarray:
    index = (np.sqrt(np.clip(linear, 0.0, 1.0)) * (_SRGB_STEPS - 1) + 0.5).astype(np.int32)
    return _SRGB[index]


def shade(frame: Frame, light: Light, shadow: np.ndarray) -> np.ndarray:
    """Linear radiance → sRGB uint8 with automatic exposure."""
    n = frame.normal
    sun, ambient, horizon = (a.astype(np.float32) for a in (light.sun, light.ambient, light.horizon))
    direct = np.clip(dot3(n, light.sun_dir.astype(np.float32)), 0.0, None)
    direct[shadow] = 0.0
    sky_light = 0.6 + 0.4 * n[..., 1]
    color = frame.albedo * (direct[..., None] * sun + sky_light[..., None] * ambient)
    sky = ~np.isfinite(frame.depth)
    distance = np.where(sky, 0.0, frame.depth) * np.sqrt(dot3(frame.rays, frame.rays))
    fog = np.exp(distance * np.float32(-1.0 / light.haze))[..., None]
    color = color * fog + horizon * (1.0 - fog)
    color[sky] = sky_color(frame.rays[sky], light)
    luminance = dot3(color[::2, ::2], (0.2126, 0.7152, 0.0722))
    key = float(np.exp(np.mean(np.log(luminance + 1e-3))))
    color *= np.float32(0.3 / key * light.exposure)
    color /= 1.0 + 0.15 * color  # soft shoulder instead of hard clipping of highlights
    return to_srgb(color)


def draw_bonnet(rgb: np.ndarray, label: np.ndarray, depth: np.ndarray, bonnet: Bonnet, light: Light) -> None:
    """The ego car's bonnet across the bottom rows: ignore label, invalid depth (closer than 4 m)."""
    h, w = label.shape
    x = (np.arange(w) + 0.5) / w * 2 - 1
    top = h * (1.0 - bonnet.height * (1.0 - 0.45 * x**2))
    rows = np.arange(h)[:, None] + 0.5
    mask = rows >= top[None, :]
    v = np.clip((rows - top[None, :]) / (bonnet.height * h), 0, 1)
    color = bonnet.color * (0.35 + 0.3 * v[..., None]) + light.horizon * (1.0 - v[..., None]) * 0.5
    rgb[mask] = to_srgb(color[mask])
    label[mask] = IGNORE_INDEX
    depth[mask] = np.nan


def render(scene: Scene) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rgb uint8 H×W×3, trainIds uint8 H×W, depth float32 H×W metres with NaN where invalid)."""
    frame = Frame(scene.camera)
    frame.draw_parts(scene.parts)
    frame.resolve(scene.parts, scene.ground)
    shadow = frame.shadows(scene.parts, scene.light.sun_dir) if scene.light.sun.any() else np.zeros(frame.depth.shape, bool)
    rgb = shade(frame, scene.light, shadow)
    label = frame.label
    depth = frame.depth.copy()
    depth[~((depth >= ZMIN) & (depth <= ZMAX))] = np.nan  # sky (inf), too near, too far
    if scene.bonnet is not None:
        draw_bonnet(rgb, label, depth, scene.bonnet, scene.light)
    return rgb, label, depth
