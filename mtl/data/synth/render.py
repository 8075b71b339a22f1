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
from mtl.data.synth.shapes import corners, dot3, to_local

SKY = CLASS_ID["sky"]
GROUND = -1  # part index of the ground plane (and of the sky, where the depth is inf)
SKY_PART = -2  # sorting key of sky pixels in the material pass
BATCH_AREA = 1500  # screen-box pixels up to which parts are intersected in batches
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
        """Geometry pass. Parts with a large screen box go one by one, nearest first, each skipping
        the pixels already covered by something nearer; the many small ones (people, poles, far
        cars…) are intersected a kind at a time in one vectorised batch, since per-part overhead
        would dominate their cost."""
        if not parts:
            return
        boxes, near = self.camera.screen_boxes(corners([p.shape for p in parts]))
        area = np.clip(boxes[:, 1] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 2], 0, None)
        alone = np.array([p.cutout is not None for p in parts]) | (area > BATCH_AREA)
        for k in np.argsort(near):
            if area[k] and alone[k]:
                r0, r1, c0, c1 = boxes[k]
                self._draw(k, parts[k], (slice(r0, r1), slice(c0, c1)), near[k])
        for ids in _group_by_kind(parts, np.flatnonzero((area > 0) & ~alone)):
            pix, pair = _box_pixels(boxes[ids], self.depth.shape[1])
            depth, owner = self.depth.reshape(-1), self.part.reshape(-1)
            keep = depth[pix] > near[ids][pair]
            pix, pair = pix[keep], pair[keep]
            t = _batch_hits([parts[k].shape for k in ids], self.origin, np.take(self.rays.reshape(-1, 3), pix, axis=0), pair)
            won = t < depth[pix]
            if not won.any():
                continue
            pix, pair, t = pix[won], pair[won], t[won]
            order = np.lexsort((t, pix))  # nearest candidate first within each pixel
            first = order[np.r_[True, pix[order][1:] != pix[order][:-1]]]
            depth[pix[first]] = t[first]
            owner[pix[first]] = ids[pair[first]]

    def _draw(self, index: int, part: Part, box: tuple[slice, slice], near: float) -> None:
        depth = self.depth[box]
        todo = np.flatnonzero(depth > near)  # pixels this part could still win
        if todo.size == 0:
            return
        shape = part.shape
        o_local = shape.local_points(self.origin)
        d_local = shape.local_dirs(np.take(self.rays[box].reshape(-1, 3), todo, axis=0))
        t = shape.hits(o_local, d_local, shape.params)
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
        """Material pass: label, albedo and normal of every pixel from the part that won it.

        Pixels are sorted by part once, so each part works on a contiguous slice; one gather at the
        end puts the results back in image order (row gathers with np.take are several times faster
        than fancy-index scatters).
        """
        flat = np.where(np.isfinite(self.depth), self.part, SKY_PART).astype(np.int16).reshape(-1)  # radix sort
        order = np.argsort(flat, kind="stable")
        ends = np.cumsum(np.bincount(flat - SKY_PART, minlength=len(parts) + 2))  # sky, ground, parts…
        depth = self.depth.reshape(-1)[order]
        rays = np.take(self.rays.reshape(-1, 3), order, axis=0)
        label = np.full(len(order), SKY, dtype=np.uint8)
        albedo = np.zeros((len(order), 3), dtype=np.float32)
        normal = np.zeros((len(order), 3), dtype=np.float32)

        span = slice(ends[0], ends[1])
        t = depth[span]
        world = self.origin + t[:, None] * rays[span]
        label[span], albedo[span] = ground.paint(world[:, 0], world[:, 2], t)
        normal[span, 1] = 1.0
        for k in np.flatnonzero(np.diff(ends[1:])):
            span = slice(ends[k + 1], ends[k + 2])
            part, shape = parts[k], parts[k].shape
            t, dirs = depth[span], rays[span]
            local = shape.local_points(self.origin) + t[:, None] * shape.local_dirs(dirs)
            n_local = shape.normal(local)
            albedo[span] = part.material(Hit(local, n_local, self.origin + t[:, None] * dirs, t))
            normal[span] = shape.world_dirs(n_local)
            label[span] = part.label
        back = np.empty_like(order)
        back[order] = np.arange(len(order))
        h, w = self.depth.shape
        self.label = label[back].reshape(h, w)
        self.albedo = np.take(albedo, back, axis=0).reshape(h, w, 3)
        self.normal = np.take(normal, back, axis=0).reshape(h, w, 3)

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
        points8 = corners([p.shape for p in casters])
        dropped = points8 - (np.maximum(points8[..., 1], 0.0) / sun_dir[1])[..., None] * sun_dir
        boxes, near = self.camera.screen_boxes(np.concatenate([points8, dropped], axis=1))
        area = np.clip(boxes[:, 1] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 2], 0, None)
        active = (near < SHADOW_RANGE) & (area > 0)
        flat_points = points.reshape(-1, 3)
        for k in np.flatnonzero(active & (area > BATCH_AREA)):
            r0, r1, c0, c1 = boxes[k]
            box = (slice(r0, r1), slice(c0, c1))
            idx = np.flatnonzero(test[box] & ~shadow[box])
            if idx.size == 0:
                continue
            origins = np.take(points[box].reshape(-1, 3), idx, axis=0)
            t = casters[k].shape.intersect(origins, np.broadcast_to(sun, origins.shape))
            hit = idx[np.isfinite(t)]
            shadow[hit // (c1 - c0) + r0, hit % (c1 - c0) + c0] = True
        flat_test, flat_shadow = test.reshape(-1), shadow.reshape(-1)
        for ids in _group_by_kind(casters, np.flatnonzero(active & (area <= BATCH_AREA))):
            pix, pair = _box_pixels(boxes[ids], w)
            keep = flat_test[pix] & ~flat_shadow[pix]
            pix, pair = pix[keep], pair[keep]
            t = _batch_hits([casters[k].shape for k in ids], np.take(flat_points, pix, axis=0),
                            np.broadcast_to(sun, (len(pix), 3)), pair)
            flat_shadow[pix[np.isfinite(t)]] = True
        return np.where(representative | mixed, shadow, up(shadow)) & facing


def _group_by_kind(parts: list[Part], ids: np.ndarray) -> list[np.ndarray]:
    kinds: dict[str, list[int]] = {}
    for k in ids:
        kinds.setdefault(parts[k].shape.kind, []).append(k)
    return [np.array(group) for group in kinds.values()]


def _box_pixels(boxes: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Flat indices of every pixel of every box, and for each the box it belongs to."""
    r0, r1, c0, c1 = boxes.T
    box_w = c1 - c0
    area = (r1 - r0) * box_w
    pair = np.repeat(np.arange(len(boxes)), area)
    offset = np.arange(area.sum()) - np.repeat(np.cumsum(area) - area, area)
    rows = r0[pair] + offset // box_w[pair]
    cols = c0[pair] + offset % box_w[pair]
    return rows * width + cols, pair


def _batch_hits(shapes: list, origins: np.ndarray, dirs: np.ndarray, pair: np.ndarray) -> np.ndarray:
    """Intersect ray i with shape ``pair[i]`` for shapes of one kind, all in one kernel call."""
    centers = np.array([s.center for s in shapes], dtype=np.float32)[pair]
    cos = np.array([s.cos for s in shapes], dtype=np.float32)[pair]
    sin = np.array([s.sin for s in shapes], dtype=np.float32)[pair]
    params = np.array([s.params for s in shapes], dtype=np.float32)[pair]
    o_local = to_local(origins - centers, cos, sin)
    d_local = to_local(dirs, cos, sin)
    return shapes[0].hits(o_local, d_local, params)


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
    color *= np.float32(0.2 / key * light.exposure)
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
