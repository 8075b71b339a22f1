"""Analytic ray intersection with boxes, ellipsoids and cylinders in their own (yawed) frames.

A shape is placed by a centre and a yaw about the world up axis. Rays are given as origins (3,) or
(N, 3) and directions (N, 3) in world coordinates, not necessarily unit length; ``intersect`` returns
the ray parameter of the first hit in front of the origin (inf for a miss), so with camera rays
(camera-z component 1) the result is the depth. Everything is vectorised over rays.
"""

from __future__ import annotations

import itertools

import numpy as np

from mtl.data.synth.camera import rotation_y

EPS = 1e-4
_SIGNS = np.array(list(itertools.product((-1.0, 1.0), repeat=3)))


def dot3(a: np.ndarray, b) -> np.ndarray:
    """Dot product over the last axis (of size 3), broadcasting; written out instead of a matmul
    so that BLAS and its threads stay out of the worker processes."""
    b = np.asarray(b, dtype=np.float32)
    return a[..., 0] * b[..., 0] + a[..., 1] * b[..., 1] + a[..., 2] * b[..., 2]


class Shape:
    """Base: local frame handling. Subclasses define ``half`` (local bounding half-sizes),
    ``intersect_local`` (rays already in the local frame) and ``normal``."""

    half: np.ndarray

    def __init__(self, center, yaw: float = 0.0) -> None:
        self.center = np.asarray(center, dtype=np.float64)
        self.yaw = float(yaw)
        self.rot = rotation_y(self.yaw)  # local-to-world
        self.rot32 = self.rot.astype(np.float32)

    def corners(self) -> np.ndarray:
        """The 8 world corners of the local bounding box."""
        return (_SIGNS * self.half) @ self.rot.T + self.center

    def to_local_dirs(self, d: np.ndarray) -> np.ndarray:
        if self.yaw == 0.0:
            return d
        r = self.rot32
        # explicit products: a (N,3)@(3,3) matmul would go through multi-threaded BLAS
        return np.stack(
            [
                d[:, 0] * r[0, 0] + d[:, 1] * r[1, 0] + d[:, 2] * r[2, 0],
                d[:, 0] * r[0, 1] + d[:, 1] * r[1, 1] + d[:, 2] * r[2, 1],
                d[:, 0] * r[0, 2] + d[:, 1] * r[1, 2] + d[:, 2] * r[2, 2],
            ],
            axis=1,
        )

    def to_local_points(self, p: np.ndarray) -> np.ndarray:
        p = np.asarray(p, dtype=np.float32)
        if p.ndim == 1:
            return ((p - self.center) @ self.rot).astype(np.float32)
        return self.to_local_dirs(p - self.center.astype(np.float32))

    def to_world_dirs(self, d: np.ndarray) -> np.ndarray:
        if self.yaw == 0.0:
            return d
        r = self.rot32
        return np.stack(
            [
                d[:, 0] * r[0, 0] + d[:, 1] * r[0, 1] + d[:, 2] * r[0, 2],
                d[:, 0] * r[1, 0] + d[:, 1] * r[1, 1] + d[:, 2] * r[1, 2],
                d[:, 0] * r[2, 0] + d[:, 1] * r[2, 1] + d[:, 2] * r[2, 2],
            ],
            axis=1,
        )

    def intersect(self, origin: np.ndarray, dirs: np.ndarray) -> np.ndarray:
        return self.intersect_local(self.to_local_points(origin), self.to_local_dirs(dirs))

    def normal(self, local_points: np.ndarray) -> np.ndarray:
        """Unit local normals at local hit points."""
        raise NotImplementedError

    def intersect_local(self, o: np.ndarray, d: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class Box(Shape):
    def __init__(self, center, size, yaw: float = 0.0) -> None:
        super().__init__(center, yaw)
        self.half = np.asarray(size, dtype=np.float64) / 2
        self.half32 = self.half.astype(np.float32)

    def intersect_local(self, o, d):
        with np.errstate(divide="ignore", invalid="ignore"):
            inv = 1.0 / d
            t1 = (-self.half32 - o) * inv
            t2 = (self.half32 - o) * inv
        # fmin/fmax skip the NaN of 0·inf when a ray runs exactly along a face
        near = np.fmax(np.fmax(np.fmin(t1[:, 0], t2[:, 0]), np.fmin(t1[:, 1], t2[:, 1])), np.fmin(t1[:, 2], t2[:, 2]))
        far = np.fmin(np.fmin(np.fmax(t1[:, 0], t2[:, 0]), np.fmax(t1[:, 1], t2[:, 1])), np.fmax(t1[:, 2], t2[:, 2]))
        t = np.where(near > EPS, near, far)
        return np.where((far >= near) & (t > EPS), t, np.inf).astype(np.float32)

    def normal(self, p):
        q = np.abs(p / self.half32)
        axis = np.argmax(q, axis=1)
        n = np.zeros_like(p)
        rows = np.arange(len(p))
        n[rows, axis] = np.sign(p[rows, axis])
        return n


class Ellipsoid(Shape):
    def __init__(self, center, radii, yaw: float = 0.0) -> None:
        super().__init__(center, yaw)
        self.half = np.asarray(radii, dtype=np.float64)
        self.inv32 = (1.0 / self.half).astype(np.float32)

    def intersect_local(self, o, d):
        o = o * self.inv32
        d = d * self.inv32
        a = (d * d).sum(axis=-1)
        b = (d * o).sum(axis=-1)
        c = (o * o).sum(axis=-1) - 1.0
        disc = b * b - a * c
        with np.errstate(invalid="ignore"):
            root = np.sqrt(disc)
        t0 = (-b - root) / a
        t1 = (-b + root) / a
        t = np.where(t0 > EPS, t0, t1)
        return np.where((disc >= 0) & (t > EPS), t, np.inf).astype(np.float32)

    def normal(self, p):
        n = p * self.inv32 * self.inv32
        return n / np.linalg.norm(n, axis=1, keepdims=True)


class Cylinder(Shape):
    """Closed cylinder with its axis along local ``axis`` (0 = x, 1 = y, 2 = z)."""

    def __init__(self, center, radius: float, length: float, axis: int = 1, yaw: float = 0.0) -> None:
        super().__init__(center, yaw)
        self.radius = float(radius)
        self.axis = axis
        self.others = [k for k in range(3) if k != axis]
        half = np.full(3, self.radius)
        half[axis] = length / 2
        self.half = half

    def intersect_local(self, o, d):
        a_ax, (i, j) = self.axis, self.others
        oi, oj = (o[i], o[j]) if o.ndim == 1 else (o[:, i], o[:, j])
        oa = o[a_ax] if o.ndim == 1 else o[:, a_ax]
        di, dj, da = d[:, i], d[:, j], d[:, a_ax]
        hl, r = np.float32(self.half[a_ax]), np.float32(self.radius)
        a = di * di + dj * dj
        b = oi * di + oj * dj
        c = oi * oi + oj * oj - r * r
        disc = b * b - a * c
        with np.errstate(invalid="ignore", divide="ignore"):
            root = np.sqrt(disc)
            s0 = (-b - root) / a
            s1 = (-b + root) / a
            side = np.where((disc >= 0) & (s0 > EPS) & (np.abs(oa + s0 * da) <= hl), s0, np.inf)
            side = np.where((disc >= 0) & ~np.isfinite(side) & (s1 > EPS) & (np.abs(oa + s1 * da) <= hl), s1, side)
            best = side
            for cap in (-hl, hl):
                tc = (cap - oa) / da
                ci, cj = oi + tc * di, oj + tc * dj
                ok = (tc > EPS) & (ci * ci + cj * cj <= r * r)
                best = np.where(ok & (tc < best), tc, best)
        return best.astype(np.float32)

    def normal(self, p):
        i, j = self.others
        n = np.zeros_like(p)
        on_cap = np.abs(p[:, self.axis]) >= self.half[self.axis] * 0.999
        n[:, i] = np.where(on_cap, 0.0, p[:, i] / self.radius)
        n[:, j] = np.where(on_cap, 0.0, p[:, j] / self.radius)
        n[:, self.axis] = np.where(on_cap, np.sign(p[:, self.axis]), 0.0)
        return n
