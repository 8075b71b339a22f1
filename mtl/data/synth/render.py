"""Ray casting into a z-buffer, then deferred materials and shading (sun, cast shadows, sky, haze).

Every part is intersected only with the rays inside its projected screen-space bounding box, and
only with those whose current depth is beyond the part's nearest point, so the cost of a part grows
with the area it can still win. Parts with large screen boxes go one at a time, nearest first; the
many small ones (people, poles, far cars …) are intersected a shape kind at a time in one vectorised
batch, because per-part overhead would dominate their cost. The geometry pass keeps the nearest
depth and the index of the part that produced it; labels, normals and materials are then evaluated
once per pixel for the final winner, so labels and depth come from exactly the surface whose colour
is shown.
"""

from __future__ import annotations

import numpy as np

from mtl.data.classes import CLASS_ID, IGNORE_INDEX
from mtl.data.formats import ZMAX, ZMIN
from mtl.data.synth.camera import Camera
from mtl.data.synth.ground import Ground
from mtl.data.synth.materials import Hit
from mtl.data.synth.noise import smooth_noise
from mtl.data.synth.parts import Part
from mtl.data.synth.scene import Bonnet, Light, Scene
from mtl.data.synth.shapes import corners, dot3, to_local, to_world

SKY = CLASS_ID["sky"]
GROUND = -1  # part index of the ground plane (and of the sky, where the depth is inf)
SKY_PART = -2  # sorting key of sky pixels in the material pass
BATCH_AREA = 1500  # screen-box pixels up to which parts are intersected in batches
SHADOW_RANGE = 150.0  # metres; shadows further away are a few pixels lost in the haze


class PartTable:
    """The parts' placements and kernel parameters as arrays, gathered per ray by part index."""

    def __init__(self, parts: list[Part]) -> None:
        shapes = [p.shape for p in parts]
        self.shapes = shapes
        self.center = np.array([s.center for s in shapes], dtype=np.float32).reshape(-1, 3)
        self.cos = np.array([s.cos for s in shapes], dtype=np.float32)
        self.sin = np.array([s.sin for s in shapes], dtype=np.float32)
        self.label = np.array([p.label for p in parts], dtype=np.uint8)

    def by_kind(self, ids: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """Split part indices by shape kind: (ids of one kind, their kernel parameters)."""
        kinds: dict[str, list[int]] = {}
        for k in ids:
            kinds.setdefault(self.shapes[k].kind, []).append(int(k))
        return [(np.array(g), np.array([self.shapes[k].params for k in g], dtype=np.float32)) for g in kinds.values()]

    def hits(self, ids: np.ndarray, params: np.ndarray, origins: np.ndarray, dirs: np.ndarray, pair: np.ndarray) -> np.ndarray:
        """Ray i against part ``ids[pair[i]]`` for parts of one kind, in one kernel call."""
        k = ids[pair]
        cos, sin = self.cos[k], self.sin[k]
        if len(dirs) == 1:  # one shared direction (shadow rays): rotated once per part, then gathered
            local_dirs = np.take(to_local(dirs, self.cos[ids], self.sin[ids]), pair, axis=0)
        else:
            local_dirs = to_local(dirs, cos, sin)
        return self.shapes[ids[0]].hits(to_local(origins - self.center[k], cos, sin), local_dirs, np.take(params, pair, axis=0))


class Frame:
    """Per-pixel buffers: depth and winning part, then label, albedo and world normal."""

    def __init__(self, camera: Camera) -> None:
        self.camera = camera
        self.rays = camera.rays()
        h, w = camera.height, camera.width
        self.origin = camera.position.astype(np.float32)
        with np.errstate(divide="ignore"):  # the ground plane: rays pointing down hit it
            self.depth = np.where(self.rays[..., 1] < 0, -self.origin[1] / self.rays[..., 1], np.inf).astype(np.float32)
        self.part = np.full((h, w), GROUND, dtype=np.int32)
        self.index = np.arange(h * w).reshape(h, w)  # flat pixel index: a box's pixels by one mask lookup
        self.label = np.full((h, w), SKY, dtype=np.uint8)
        self.albedo = np.zeros((h, w, 3), dtype=np.float32)
        self.normal = np.zeros((h, w, 3), dtype=np.float32)

    def draw_parts(self, parts: list[Part]) -> None:
        """Geometry pass: nearest depth and winning part index per pixel."""
        if not parts:
            return
        table = PartTable(parts)
        boxes, near = self.camera.screen_boxes(corners(table.shapes))
        area = _area(boxes)
        alone = np.array([p.cutout is not None for p in parts]) | (area > BATCH_AREA)
        for k in np.argsort(near):
            if area[k] and alone[k]:
                r0, r1, c0, c1 = boxes[k]
                self._draw(k, parts[k], (slice(r0, r1), slice(c0, c1)), near[k])
        depth, owner = self.depth.reshape(-1), self.part.reshape(-1)
        rays = self.rays.reshape(-1, 3)
        for ids, params in table.by_kind(np.flatnonzero((area > 0) & ~alone)):
            pix, pair = _box_pixels(boxes[ids], self.camera.width)
            keep = depth[pix] > near[ids][pair]
            pix, pair = pix[keep], pair[keep]
            t = table.hits(ids, params, self.origin, np.take(rays, pix, axis=0), pair)
            won = t < depth[pix]
            if not won.any():
                continue
            pix, pair, t = pix[won], pair[won], t[won]
            order = np.lexsort((t, pix))  # nearest candidate first within each pixel
            first = order[np.r_[True, pix[order][1:] != pix[order][:-1]]]
            depth[pix[first]] = t[first]
            owner[pix[first]] = ids[pair[first]]

    def _draw(self, index: int, part: Part, box: tuple[slice, slice], near: float) -> None:
        pix = self.index[box][self.depth[box] > near]  # pixels this part could still win
        if pix.size == 0:
            return
        depth = self.depth.reshape(-1)
        shape = part.shape
        o_local = shape.local_point(self.origin)
        d_local = shape.local_dirs(np.take(self.rays.reshape(-1, 3), pix, axis=0))
        t = shape.hits(o_local, d_local, shape.params)
        won = t < depth[pix]
        if part.cutout is not None:
            hit = np.flatnonzero(won)
            won[hit] = part.cutout(o_local + t[hit, None] * d_local[hit])
        depth[pix[won]] = t[won]
        self.part.reshape(-1)[pix[won]] = index

    def resolve(self, parts: list[Part], ground: Ground) -> None:
        """Material pass: label, albedo and normal of every pixel from the part that won it.

        Pixels are sorted once by winner (sky, ground, then the parts grouped by shape kind), so
        normals are computed a kind at a time on contiguous slices and each material gets the
        contiguous slice of its part; one gather at the end restores image order (np.take row
        gathers are several times faster than fancy-index scatters).
        """
        table = PartTable(parts)
        groups = table.by_kind(np.arange(len(parts)))
        # sort key per winner index; sky (-2) and ground (-1) index the last two entries
        rank = np.empty(len(parts) + 2, dtype=np.int16 if len(parts) < 32000 else np.int32)
        rank[[SKY_PART, GROUND]] = (0, 1)
        ranked = np.concatenate([ids for ids, _ in groups]) if groups else np.zeros(0, dtype=int)
        rank[ranked] = np.arange(2, len(parts) + 2)
        key = rank[np.where(np.isfinite(self.depth), self.part, SKY_PART).reshape(-1)]
        order = np.argsort(key, kind="stable")  # radix sort for int16 keys
        ends = np.concatenate([[0], np.cumsum(np.bincount(key, minlength=len(parts) + 2))])
        depth = self.depth.reshape(-1)[order]
        rays = np.take(self.rays.reshape(-1, 3), order, axis=0)
        label = np.full(len(order), SKY, dtype=np.uint8)
        albedo = np.zeros((len(order), 3), dtype=np.float32)
        normal = np.zeros((len(order), 3), dtype=np.float32)

        on_ground = slice(ends[1], ends[2])
        t = depth[on_ground]
        world = self.origin + t[:, None] * rays[on_ground]
        label[on_ground], albedo[on_ground] = ground.paint(world[:, 0], world[:, 2], t)
        normal[on_ground, 1] = 1.0

        start = ends[2]
        if start == len(order):
            self._unsort(order, label, albedo, normal)
            return
        counts = np.diff(ends[2:])  # pixels per part, in rank order
        t, dirs = depth[start:], rays[start:]
        cos, sin = np.repeat(table.cos[ranked], counts), np.repeat(table.sin[ranked], counts)
        center = np.repeat(table.center[ranked], counts, axis=0)
        local = to_local(self.origin - center, cos, sin) + t[:, None] * to_local(dirs, cos, sin)
        n_local = np.empty_like(local)
        first = 0
        for ids, params in groups:
            n = counts[first : first + len(ids)]
            span = slice(ends[2 + first] - start, ends[2 + first + len(ids)] - start)
            n_local[span] = table.shapes[ids[0]].normals(local[span], np.repeat(params, n, axis=0))
            first += len(ids)
        normal[start:] = to_world(n_local, cos, sin)
        label[start:] = np.repeat(table.label[ranked], counts)
        world = self.origin + t[:, None] * dirs
        for r in np.flatnonzero(counts):
            a, b = ends[2 + r] - start, ends[3 + r] - start
            albedo[start + a : start + b] = parts[ranked[r]].material(Hit(local[a:b], n_local[a:b], world[a:b], t[a:b]))
        self._unsort(order, label, albedo, normal)

    def _unsort(self, order: np.ndarray, label: np.ndarray, albedo: np.ndarray, normal: np.ndarray) -> None:
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

        def up(a: np.ndarray) -> np.ndarray:  # each 2×2 block's top-left value, in one copy
            q = a[::2, ::2]
            return np.broadcast_to(q[:, None, :, None], (q.shape[0], 2, q.shape[1], 2)).reshape(2 * q.shape[0], -1)[:h, :w]

        representative = np.zeros((h, w), dtype=bool)
        representative[::2, ::2] = True
        with np.errstate(invalid="ignore"):
            mixed = (self.label != up(self.label)) | ~(np.abs(self.depth - up(self.depth)) <= 0.03 * self.depth)
        test = facing & (representative | mixed)
        # shadow-ray origins only for the pixels to test; ``slot`` maps a pixel to its row
        tested = np.flatnonzero(test)
        slot = np.zeros(h * w, dtype=np.intp)
        slot[tested] = np.arange(len(tested))
        depth = self.depth.reshape(-1)[tested]
        points = self.origin + depth[:, None] * np.take(self.rays.reshape(-1, 3), tested, axis=0)
        points += 0.02 * np.take(self.normal.reshape(-1, 3), tested, axis=0)
        coords = [np.ascontiguousarray(points[:, k]) for k in range(3)]  # for large casters
        sun = sun_dir.astype(np.float32)
        table = PartTable(casters)
        ends = corners(table.shapes)
        dropped = ends - (np.maximum(ends[..., 1], 0.0) / sun_dir[1])[..., None] * sun_dir
        boxes, near = self.camera.screen_boxes(np.concatenate([ends, dropped], axis=1))
        area = _area(boxes)
        active = (near < SHADOW_RANGE) & (area > 0)
        flat_test, flat_shadow = test.reshape(-1), shadow.reshape(-1)
        for k in np.flatnonzero(active & (area > BATCH_AREA)):
            r0, r1, c0, c1 = boxes[k]
            box = (slice(r0, r1), slice(c0, c1))
            mask = test[box] & ~shadow[box]
            pix = self.index[box][mask]
            rows = slot[pix]
            blocked = casters[k].shape.blocks(*(np.take(c, rows) for c in coords), sun)
            flat_shadow[pix[blocked]] = True
        for ids, params in table.by_kind(np.flatnonzero(active & (area <= BATCH_AREA))):
            pix, pair = _box_pixels(boxes[ids], w)
            keep = flat_test[pix] & ~flat_shadow[pix]
            pix, pair = pix[keep], pair[keep]
            t = table.hits(ids, params, np.take(points, slot[pix], axis=0), sun[None, :], pair)
            flat_shadow[pix[np.isfinite(t)]] = True
        return np.where(representative | mixed, shadow, up(shadow)) & facing


def _area(boxes: np.ndarray) -> np.ndarray:
    return np.clip(boxes[:, 1] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 2], 0, None)


def _box_pixels(boxes: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Flat indices of every pixel of every box, and for each the box it belongs to. Built row by
    row: one run of consecutive indices per box row, so no per-pixel division or modulo."""
    r0, r1, c0, c1 = boxes.T
    box_w, box_h = c1 - c0, r1 - r0
    pair = np.repeat(np.arange(len(boxes)), box_h * box_w)
    row_box = np.repeat(np.arange(len(boxes)), box_h)
    row = r0[row_box] + np.arange(len(row_box)) - np.repeat(np.cumsum(box_h) - box_h, box_h)
    run = box_w[row_box]
    start = row * width + c0[row_box] - (np.cumsum(run) - run)  # minus the run's offset in the list
    return np.repeat(start, run) + np.arange(len(pair)), pair


def sky_color(rays: np.ndarray, light: Light) -> np.ndarray:
    """Horizon-to-zenith gradient, clouds on a far plane, a glow around the sun (N×3 linear RGB)."""
    d = rays / np.sqrt(dot3(rays, rays))[:, None]
    up = np.clip(d[:, 1], 0.0, 1.0)
    horizon, zenith = light.horizon.astype(np.float32), light.zenith.astype(np.float32)
    color = horizon + (zenith - horizon) * np.sqrt(up)[:, None]
    if light.clouds > 0:
        k = 6.0 / np.maximum(d[:, 1], 0.03)
        cloud = smooth_noise(d[:, 0] * k + 50.0, d[:, 2] * k)
        cover = np.clip((cloud - (1.0 - light.clouds)) * 3.0, 0.0, 1.0) * np.clip(up * 8.0, 0.0, 1.0)
        white = max(float(light.horizon.max()), 0.85) * (0.85 + 0.3 * cloud)
        color += (white[:, None] - color) * cover[:, None]
    if light.sun.any():
        glow = np.clip(dot3(d, light.sun_dir.astype(np.float32)), 0.0, 1.0) ** 64
        color += 0.6 * glow[:, None]
    return color


# Tone mapping and sRGB encoding through one table per image, indexed by sqrt(radiance): fine steps
# in the shadows, and no pow(), exposure or shoulder arithmetic per pixel.
_STEPS = 4096
_RANGE = 16.0  # radiance (in units of the exposure key) mapped to the table's last entry


def tone_table(gain: float) -> np.ndarray:
    """uint8 sRGB for radiance (i / (steps − 1))² · RANGE: exposure ``gain``, then a soft shoulder
    x / (1 + 0.15 x) instead of hard clipping of highlights, then the sRGB curve (gamma 2.2)."""
    x = gain * np.linspace(0.0, 1.0, _STEPS) ** 2 * _RANGE
    return (np.clip(x / (1.0 + 0.15 * x), 0.0, 1.0) ** (1 / 2.2) * 255.0 + 0.5).astype(np.uint8)


def to_srgb(radiance: np.ndarray, table: np.ndarray) -> np.ndarray:
    scaled = np.clip(radiance, 0.0, _RANGE)  # the one copy; the rest works in place
    scaled *= np.float32(1.0 / _RANGE)
    np.sqrt(scaled, out=scaled)
    scaled *= _STEPS - 1
    scaled += 0.5
    return table[scaled.astype(np.int32)]


def shade(frame: Frame, light: Light, shadow: np.ndarray) -> np.ndarray:
    """Linear radiance → sRGB uint8 with automatic exposure."""
    n = frame.normal
    sun, ambient, horizon = (a.astype(np.float32) for a in (light.sun, light.ambient, light.horizon))
    direct = np.clip(dot3(n, light.sun_dir.astype(np.float32)), 0.0, None)
    direct[shadow] = 0.0
    sky = ~np.isfinite(frame.depth)
    distance = np.where(sky, 0.0, frame.depth) * np.sqrt(dot3(frame.rays, frame.rays))
    fog = np.exp(distance * np.float32(-1.0 / light.haze))
    # albedo · light · fog + horizon · (1 − fog), built in place: one H×W×3 buffer instead of five
    color = direct[..., None] * sun
    color += (0.6 + 0.4 * n[..., 1])[..., None] * ambient
    color *= frame.albedo
    color *= fog[..., None]
    color += (1.0 - fog)[..., None] * horizon
    color[sky] = sky_color(frame.rays[sky], light)
    luminance = dot3(color[::2, ::2], (0.2126, 0.7152, 0.0722))
    key = float(np.exp(np.mean(np.log(luminance + 1e-3))))
    return to_srgb(color, tone_table(0.2 / key * light.exposure))


def draw_bonnet(rgb: np.ndarray, label: np.ndarray, depth: np.ndarray, bonnet: Bonnet, light: Light) -> None:
    """The ego car's bonnet across the bottom rows: ignore label, invalid depth (closer than 4 m)."""
    h, w = label.shape
    x = (np.arange(w) + 0.5) / w * 2 - 1
    top = h * (1.0 - bonnet.height * (1.0 - 0.45 * x**2))
    rows, cols = np.nonzero(np.arange(h)[:, None] + 0.5 >= top[None, :])
    v = np.clip((rows + 0.5 - top[cols]) / (bonnet.height * h), 0, 1)[:, None].astype(np.float32)
    color = bonnet.color * (0.35 + 0.3 * v) + light.horizon.astype(np.float32) * (1.0 - v) * 0.5
    rgb[rows, cols] = to_srgb(color, tone_table(1.0))
    label[rows, cols] = IGNORE_INDEX
    depth[rows, cols] = np.nan


def camera_normals(frame: Frame, valid: np.ndarray) -> np.ndarray:
    """H×W×3 float32 unit geometric normals of the winning hits in camera coordinates (x right,
    y down, z forward), turned to face the camera (n · ray ≤ 0), NaN outside ``valid``.

    ``frame.normal`` is the analytic normal of the primitive hit (ground plane, box face, ellipsoid,
    cylinder wall or cap) in world coordinates, the one shading uses; materials only change albedo,
    so it is the geometric normal. The camera rotation's columns are the camera axes in the world,
    so the camera components are the dot products with them (written out: no BLAS).
    """
    n, r = frame.normal, frame.camera.rotation.astype(np.float32)
    out = np.empty_like(n)
    for k in range(3):
        out[..., k] = n[..., 0] * r[0, k] + n[..., 1] * r[1, k] + n[..., 2] * r[2, k]
    with np.errstate(invalid="ignore", divide="ignore"):
        # the camera-frame ray of pixel (u, v) is (u, v, 1): flip normals seen from behind (a camera
        # inside a crown or a hit on a far wall), then renormalise the cylinders' near-unit normals
        u = (np.arange(frame.camera.width, dtype=np.float32) + 0.5 - frame.camera.width / 2) / np.float32(frame.camera.focal)
        v = (np.arange(frame.camera.height, dtype=np.float32) + 0.5 - frame.camera.height / 2) / np.float32(frame.camera.focal)
        facing = out[..., 0] * u[None, :] + out[..., 1] * v[:, None] + out[..., 2]
        scale = np.where(facing > 0, np.float32(-1.0), np.float32(1.0)) / np.sqrt(dot3(out, out))
        out *= scale[..., None]
    out[~valid] = np.nan
    return out


def render(scene: Scene) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(rgb uint8 H×W×3, trainIds uint8 H×W, depth float32 H×W metres with NaN where invalid,
    normals float32 H×W×3 unit camera-frame normals with NaN exactly where the depth is NaN)."""
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
    return rgb, label, depth, camera_normals(frame, np.isfinite(depth))
