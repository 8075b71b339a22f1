"""Analytic ray intersection with boxes, ellipsoids and cylinders in their own (yawed) frames.

A shape is placed by a centre and a yaw about the world up axis. The intersection kernels take
local ray origins and directions (not necessarily unit length) and the shape's parameters, each
either one row for a single shape or one row per ray, so the same code intersects one shape with
many rays or many small shapes with their own rays in a single vectorised call. They return the
ray parameter of the first hit in front of the origin (inf for a miss): with camera rays (camera-z
component 1) that is the depth.
"""

from __future__ import annotations

import itertools

import numpy as np


EPS = 1e-4
_SIGNS = np.array(list(itertools.product((-1.0, 1.0), repeat=3)))


def dot3(a: np.ndarray, b) -> np.ndarray:
    """Dot product over the last axis (of size 3), broadcasting; written out instead of a matmul
    so that BLAS and its threads stay out of the worker processes."""
    b = np.asarray(b, dtype=np.float32)
    return a[..., 0] * b[..., 0] + a[..., 1] * b[..., 1] + a[..., 2] * b[..., 2]


def to_local(v: np.ndarray, cos, sin) -> np.ndarray:
    """World vectors (N, 3) into frames yawed by (cos, sin), scalars or one per vector."""
    x, z = v[..., 0], v[..., 2]
    lx, lz = cos * x - sin * z, sin * x + cos * z
    return np.stack([lx, np.broadcast_to(v[..., 1], lx.shape), lz], axis=-1)


def to_world(v: np.ndarray, cos, sin) -> np.ndarray:
    x, z = v[..., 0], v[..., 2]
    wx, wz = cos * x + sin * z, cos * z - sin * x
    return np.stack([wx, np.broadcast_to(v[..., 1], wx.shape), wz], axis=-1)


def box_hits(o: np.ndarray, d: np.ndarray, half: np.ndarray) -> np.ndarray:
    """Slab test against the box |p| <= half."""
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / d
        t1 = (-half - o) * inv
        t2 = (half - o) * inv
    lo, hi = np.fmin(t1, t2), np.fmax(t1, t2)  # fmin/fmax skip the NaN of 0·inf (ray along a face)
    near = np.fmax(np.fmax(lo[..., 0], lo[..., 1]), lo[..., 2])
    far = np.fmin(np.fmin(hi[..., 0], hi[..., 1]), hi[..., 2])
    t = np.where(near > EPS, near, far)
    return np.where((far >= near) & (t > EPS), t, np.inf).astype(np.float32, copy=False)


def ellipsoid_hits(o: np.ndarray, d: np.ndarray, inv_radii: np.ndarray) -> np.ndarray:
    """Unit-sphere test after scaling the local frame by 1 / radii."""
    o = o * inv_radii
    d = d * inv_radii
    a = dot3(d, d)
    b = dot3(d, o)
    c = dot3(o, o) - 1.0
    disc = b * b - a * c
    with np.errstate(invalid="ignore"):
        root = np.sqrt(disc)
    t0 = (-b - root) / a
    t1 = (-b + root) / a
    t = np.where(t0 > EPS, t0, t1)
    return np.where((disc >= 0) & (t > EPS), t, np.inf).astype(np.float32, copy=False)


def cylinder_hits(o: np.ndarray, d: np.ndarray, radius, half_length, axis: int) -> np.ndarray:
    """Closed cylinder around local ``axis``: side wall within ±half_length, and the two caps."""
    i, j = [k for k in range(3) if k != axis]
    oi, oj, oa = o[..., i], o[..., j], o[..., axis]
    di, dj, da = d[..., i], d[..., j], d[..., axis]
    a = di * di + dj * dj
    b = oi * di + oj * dj
    c = oi * oi + oj * oj - radius * radius
    disc = b * b - a * c
    with np.errstate(invalid="ignore", divide="ignore"):
        root = np.sqrt(disc)
        s0 = (-b - root) / a
        s1 = (-b + root) / a
        side0 = (disc >= 0) & (s0 > EPS) & (np.abs(oa + s0 * da) <= half_length)
        side1 = (disc >= 0) & (s1 > EPS) & (np.abs(oa + s1 * da) <= half_length)
        best = np.where(side0, s0, np.where(side1, s1, np.inf))
        for cap in (-half_length, half_length):
            tc = (cap - oa) / da
            ci, cj = oi + tc * di, oj + tc * dj
            ok = (tc > EPS) & (ci * ci + cj * cj <= radius * radius) & (tc < best)
            best = np.where(ok, tc, best)
    return best.astype(np.float32, copy=False)


def corners(shapes: list[Shape]) -> np.ndarray:
    """N×8×3 world corners of the local bounding boxes of many shapes."""
    center = np.array([s.center for s in shapes])
    half = np.array([s.half for s in shapes])
    cos = np.array([s.cos for s in shapes], dtype=np.float64)[:, None]
    sin = np.array([s.sin for s in shapes], dtype=np.float64)[:, None]
    local = _SIGNS[None] * half[:, None, :]
    return np.stack([cos * local[..., 0] + sin * local[..., 2], local[..., 1], cos * local[..., 2] - sin * local[..., 0]], axis=-1) + center[:, None, :]


class Shape:
    """Placement (centre, yaw) and the local bounding box. Subclasses set ``half`` (local
    half-extent), ``kind`` (shapes of one kind are intersected together), ``params`` and
    implement ``hits`` and ``normal``."""

    kind: str
    half: np.ndarray
    params: np.ndarray  # float32 row handed to the kernel

    def __init__(self, center, yaw: float = 0.0) -> None:
        self.center = np.asarray(center, dtype=np.float64)
        self.yaw = float(yaw)
        self.cos, self.sin = np.float32(np.cos(self.yaw)), np.float32(np.sin(self.yaw))

    def local_points(self, p: np.ndarray) -> np.ndarray:
        return to_local(np.asarray(p, dtype=np.float32) - self.center.astype(np.float32), self.cos, self.sin)

    def local_point(self, p: np.ndarray) -> np.ndarray:
        """One point (3,) into the local frame with scalar arithmetic: array calls on a single point
        cost more in overhead than the maths."""
        x, y, z = np.asarray(p, dtype=np.float32) - self.center.astype(np.float32)
        return np.array([self.cos * x - self.sin * z, y, self.sin * x + self.cos * z], dtype=np.float32)

    def local_dirs(self, d: np.ndarray) -> np.ndarray:
        return d if self.yaw == 0.0 else to_local(d, self.cos, self.sin)

    def intersect(self, origin: np.ndarray, dirs: np.ndarray) -> np.ndarray:
        """World rays → ray parameter of the first hit (inf for a miss)."""
        return self.hits(self.local_points(origin), self.local_dirs(dirs), self.params)

    def hits(self, o: np.ndarray, d: np.ndarray, params: np.ndarray) -> np.ndarray:
        """Kernel of this kind; ``params`` may hold one row per ray (batches of shapes)."""
        raise NotImplementedError

    def normals(self, p: np.ndarray, params: np.ndarray) -> np.ndarray:
        """Unit local normals at local hit points (``params`` as in ``hits``)."""
        raise NotImplementedError


    def sun_frame(self, x: np.ndarray, y: np.ndarray, z: np.ndarray, direction: np.ndarray) -> tuple[tuple, tuple]:
        """World points as local coordinate planes and one shared world direction as three local
        scalars: shadow rays all follow the sun, so ``blocks`` works on planes and scalars, with no
        per-ray direction arrays."""
        x, z = x - np.float32(self.center[0]), z - np.float32(self.center[2])
        local = (self.cos * x - self.sin * z, y - np.float32(self.center[1]), self.sin * x + self.cos * z)
        dx, dy, dz = np.asarray(direction, dtype=np.float32)
        return local, (self.cos * dx - self.sin * dz, dy, self.sin * dx + self.cos * dz)

    def blocks(self, x: np.ndarray, y: np.ndarray, z: np.ndarray, direction: np.ndarray) -> np.ndarray:
        """Any-hit test of rays from world points (x, y, z) along one shared direction (shadow rays)."""
        raise NotImplementedError


class Box(Shape):
    kind = "box"

    def __init__(self, center, size, yaw: float = 0.0) -> None:
        super().__init__(center, yaw)
        self.half = np.asarray(size, dtype=np.float64) / 2
        self.params = self.half.astype(np.float32)

    def hits(self, o, d, params):
        return box_hits(o, d, params)

    def normals(self, p, params):
        axis = np.argmax(np.abs(p / params), axis=1)
        return np.where(axis[:, None] == np.arange(3), np.sign(p), 0.0).astype(np.float32)


    def blocks(self, x, y, z, direction):
        # With one direction the slab order per axis is known: no per-ray min/max or (N, 3) arrays.
        local, d = self.sun_frame(x, y, z, direction)
        near, far, inside = None, None, None
        for o, dk, h in zip(local, d, self.params):
            if dk == 0:
                ok = np.abs(o) <= h
                inside = ok if inside is None else inside & ok
                continue
            lo, hi = (-h - o) / dk, (h - o) / dk
            if dk < 0:
                lo, hi = hi, lo
            near = lo if near is None else np.maximum(near, lo)
            far = hi if far is None else np.minimum(far, hi)
        hit = (far >= near) & (far > EPS)
        return hit if inside is None else hit & inside


class Ellipsoid(Shape):
    kind = "ellipsoid"

    def __init__(self, center, radii, yaw: float = 0.0) -> None:
        super().__init__(center, yaw)
        self.half = np.asarray(radii, dtype=np.float64)
        self.params = (1.0 / self.half).astype(np.float32)

    def hits(self, o, d, params):
        return ellipsoid_hits(o, d, params)

    def blocks(self, x, y, z, direction):
        # Hit iff the far root of the unit-sphere quadratic lies ahead (the near one may be behind).
        (ox, oy, oz), (dx, dy, dz) = self.sun_frame(x, y, z, direction)
        ix, iy, iz = self.params
        ox, oy, oz, dx, dy, dz = ox * ix, oy * iy, oz * iz, dx * ix, dy * iy, dz * iz
        a = dx * dx + dy * dy + dz * dz
        b = dx * ox + dy * oy + dz * oz
        disc = b * b - a * (ox * ox + oy * oy + oz * oz - 1.0)
        with np.errstate(invalid="ignore"):
            return (disc >= 0) & (np.sqrt(disc) - b > EPS * a)

    def normals(self, p, params):
        n = p * params * params
        return n / np.sqrt(dot3(n, n))[:, None]


class Cylinder(Shape):
    """Closed cylinder with its axis along local ``axis`` (0 = x, 1 = y, 2 = z)."""

    def __init__(self, center, radius: float, length: float, axis: int = 1, yaw: float = 0.0) -> None:
        super().__init__(center, yaw)
        self.axis = axis
        self.kind = f"cylinder{axis}"
        self.half = np.full(3, float(radius))
        self.half[axis] = length / 2
        self.params = np.array([radius, length / 2], dtype=np.float32)

    def hits(self, o, d, params):
        return cylinder_hits(o, d, params[..., 0], params[..., 1], self.axis)

    def blocks(self, x, y, z, direction):
        # Any hit on the side wall (either root) or on a cap; a direction along or across the axis
        # drops the terms that would divide by zero.
        local, d = self.sun_frame(x, y, z, direction)
        i, j = [k for k in range(3) if k != self.axis]
        oi, oj, oa = local[i], local[j], local[self.axis]
        di, dj, da = d[i], d[j], d[self.axis]
        radius, half_length = self.params
        r2 = radius * radius
        hit = np.zeros(oi.shape, dtype=bool)
        a = di * di + dj * dj
        if a != 0:
            b = oi * di + oj * dj
            disc = b * b - a * (oi * oi + oj * oj - r2)
            with np.errstate(invalid="ignore"):
                root = np.sqrt(disc)
            for s in ((-b - root) / a, (-b + root) / a):
                hit |= (disc >= 0) & (s > EPS) & (np.abs(oa + s * da) <= half_length)
        if da != 0:
            for cap in (-half_length, half_length):
                tc = (cap - oa) / da
                ci, cj = oi + tc * di, oj + tc * dj
                hit |= (tc > EPS) & (ci * ci + cj * cj <= r2)
        return hit

    def normals(self, p, params):
        radius, half_length = params[..., 0], params[..., 1]
        on_cap = np.abs(p[:, self.axis]) >= half_length * 0.999
        n = p / np.asarray(radius)[..., None]
        n[:, self.axis] = 0.0
        n[on_cap] = 0.0
        n[on_cap, self.axis] = np.sign(p[on_cap, self.axis])
        return n
