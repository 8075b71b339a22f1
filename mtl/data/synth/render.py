"""Ray casting into a z-buffer, then deferred shading: sun with cast shadows, sky light, haze, sky.

Every part is intersected only with the rays inside its projected screen-space bounding box, so the
cost of a part grows with the area it covers. The buffers keep, per pixel, the nearest hit's depth,
class, albedo and world normal; labels and depth therefore come from exactly the surface whose colour
is shown.
"""

from __future__ import annotations

import numpy as np

from mtl.data.classes import CLASS_ID, IGNORE_INDEX
from mtl.data.synth.camera import Camera
from mtl.data.synth.ground import Ground
from mtl.data.synth.materials import Hit
from mtl.data.synth.noise import noise
from mtl.data.synth.parts import Part
from mtl.data.synth.scene import Bonnet, Light, Scene

SKY = CLASS_ID["sky"]


class Frame:
    """Per-pixel buffers of the nearest surface hit so far."""

    def __init__(self, camera: Camera) -> None:
        self.camera = camera
        self.rays = camera.rays()
        h, w = camera.height, camera.width
        self.origin = camera.position.astype(np.float32)
        self.depth = np.full((h, w), np.inf, dtype=np.float32)
        self.label = np.full((h, w), SKY, dtype=np.uint8)
        self.albedo = np.zeros((h, w, 3), dtype=np.float32)
        self.normal = np.zeros((h, w, 3), dtype=np.float32)

    def draw_ground(self, ground: Ground) -> None:
        dy = self.rays[..., 1]
        hit = dy < 0
        t = -self.origin[1] / dy[hit]
        world = self.origin + t[:, None] * self.rays[hit]
        label, albedo = ground.paint(world[:, 0], world[:, 2], t)
        self.depth[hit] = t
        self.label[hit] = label
        self.albedo[hit] = albedo
        self.normal[hit] = (0.0, 1.0, 0.0)

    def draw(self, part: Part) -> None:
        box = self.camera.screen_bbox(part.shape.corners())
        if box is None:
            return
        shape = part.shape
        block_w = box[1].stop - box[1].start
        dirs = self.rays[box].reshape(-1, 3)
        o_local = shape.to_local_points(self.origin)
        d_local = shape.to_local_dirs(dirs)
        t = shape.intersect_local(o_local, d_local)
        won = np.flatnonzero(t < self.depth[box].ravel())
        if won.size == 0:
            return
        t = t[won]
        local = o_local + t[:, None] * d_local[won]
        if part.cutout is not None:
            keep = part.cutout(local)
            won, t, local = won[keep], t[keep], local[keep]
            if won.size == 0:
                return
        normal_local = shape.normal(local)
        world = self.origin + t[:, None] * dirs[won]
        albedo = part.material(Hit(local, normal_local, world, t))
        rows = won // block_w + box[0].start
        cols = won % block_w + box[1].start
        self.depth[rows, cols] = t
        self.label[rows, cols] = part.label
        self.albedo[rows, cols] = albedo
        self.normal[rows, cols] = shape.to_world_dirs(normal_local)

    def shadows(self, parts: list[Part], sun_dir: np.ndarray) -> np.ndarray:
        """H×W bool: pixels facing the sun whose ray towards it hits a shadow-casting part.

        A caster can only darken pixels inside the screen box of its shadow volume (its corners and
        their projections along the sun onto the ground), so only those pixels are tested.
        """
        shadow = np.zeros(self.depth.shape, dtype=bool)
        if sun_dir[1] <= 0.05:
            return shadow
        facing = np.isfinite(self.depth) & ((self.normal @ sun_dir.astype(np.float32)) > 0.0)
        points = self.origin + self.depth[..., None] * self.rays + 0.02 * self.normal
        sun = sun_dir.astype(np.float32)
        for part in parts:
            if not part.casts_shadow:
                continue
            corners = part.shape.corners()
            dropped = corners - np.outer(np.maximum(corners[:, 1], 0.0) / sun_dir[1], sun_dir)
            box = self.camera.screen_bbox(np.vstack([corners, dropped]))
            if box is None:
                continue
            todo = facing[box] & ~shadow[box]
            idx = np.flatnonzero(todo)
            if idx.size == 0:
                continue
            origins = points[box].reshape(-1, 3)[idx]
            t = part.shape.intersect(origins, np.broadcast_to(sun, origins.shape))
            block = shadow[box].reshape(-1)
            block[idx[np.isfinite(t)]] = True
            shadow[box] = block.reshape(shadow[box].shape)
        return shadow


def sky_color(rays: np.ndarray, light: Light) -> np.ndarray:
    """Horizon-to-zenith gradient, clouds on a far plane, a glow around the sun."""
    d = rays / np.linalg.norm(rays, axis=-1, keepdims=True)
    up = np.clip(d[..., 1], 0.0, 1.0)
    color = light.horizon + (light.zenith - light.horizon) * np.sqrt(up)[..., None]
    if light.clouds > 0:
        k = 1.0 / np.maximum(d[..., 1], 0.03)
        cloud = noise(d[..., 0] * k * 6.0 + 50.0, d[..., 2] * k * 6.0)
        cover = np.clip((cloud - (1.0 - light.clouds)) * 3.0, 0.0, 1.0) * np.clip(up * 8.0, 0.0, 1.0)
        white = np.maximum(light.horizon.max(), 0.85) * (0.85 + 0.3 * cloud)
        color = color + (white[..., None] - color) * cover[..., None]
    if light.sun.any():
        glow = np.clip(d @ light.sun_dir, 0.0, 1.0) ** 64
        color = color + 0.6 * glow[..., None]
    return color.astype(np.float32)


def shade(frame: Frame, light: Light, shadow: np.ndarray) -> np.ndarray:
    """Linear radiance → sRGB uint8 with automatic exposure."""
    n = frame.normal
    direct = np.clip(n @ light.sun_dir.astype(np.float32), 0.0, None) * ~shadow
    irradiance = direct[..., None] * light.sun + (0.6 + 0.4 * n[..., 1:2]) * light.ambient
    color = frame.albedo * irradiance
    sky = ~np.isfinite(frame.depth)
    distance = np.where(sky, 0.0, frame.depth) * np.linalg.norm(frame.rays, axis=-1)
    fog = np.exp(-distance / light.haze)[..., None]
    color = color * fog + light.horizon * (1.0 - fog)
    color[sky] = sky_color(frame.rays[sky], light)
    luminance = color @ np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)
    key = np.exp(np.mean(np.log(luminance + 1e-3)))
    color = color * (0.3 / key * light.exposure)
    color = color / (1.0 + 0.15 * color)  # soft shoulder instead of hard clipping of highlights
    return (np.clip(color, 0.0, 1.0) ** (1 / 2.2) * 255.0 + 0.5).astype(np.uint8)


def draw_bonnet(rgb: np.ndarray, label: np.ndarray, depth: np.ndarray, bonnet: Bonnet, light: Light) -> None:
    """The ego car's bonnet across the bottom rows: ignore label, invalid depth (closer than 4 m)."""
    h, w = label.shape
    x = (np.arange(w) + 0.5) / w * 2 - 1
    top = h * (1.0 - bonnet.height * (1.0 - 0.45 * x**2))
    rows = np.arange(h)[:, None] + 0.5
    mask = rows >= top[None, :]
    v = np.clip((rows - top[None, :]) / (bonnet.height * h), 0, 1)
    reflect = light.horizon * (1.0 - v[..., None]) * 0.5
    color = (bonnet.color * (0.35 + 0.3 * v[..., None]) + reflect) * 255.0
    shaded = (np.clip(color / 255.0, 0, 1) ** (1 / 2.2) * 255).astype(np.uint8)
    rgb[mask] = shaded[mask]
    label[mask] = IGNORE_INDEX
    depth[mask] = np.nan


def render(scene: Scene) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rgb uint8 H×W×3, trainIds uint8 H×W, depth float32 H×W metres with NaN where invalid)."""
    frame = Frame(scene.camera)
    frame.draw_ground(scene.ground)
    for part in scene.parts:
        frame.draw(part)
    shadow = frame.shadows(scene.parts, scene.light.sun_dir) if scene.light.sun.any() else np.zeros(frame.depth.shape, bool)
    rgb = shade(frame, scene.light, shadow)
    label = frame.label
    depth = frame.depth.copy()
    depth[(depth < 4.0) | (depth > 300.0) | ~np.isfinite(depth)] = np.nan
    if scene.bonnet is not None:
        draw_bonnet(rgb, label, depth, scene.bonnet, scene.light)
    return rgb, label, depth
