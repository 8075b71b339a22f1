"""Pinhole camera: per-pixel rays and near-plane-clipped screen bounding boxes.

World frame: x right, y up, z forward along the street. Camera frame (OpenCV): x right, y down,
z forward. Ray directions are scaled so that their camera-z component is 1: the ray parameter t of
a hit *is* its depth along the optical axis, which is what the depth maps store.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NEAR = 0.05  # metres; geometry closer than this to the camera plane is never drawn


def rotation_y(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _rotation_x(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def _rotation_z(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


@dataclass(frozen=True)
class Camera:
    width: int
    height: int
    focal: float  # pixels, same for x and y (square pixels)
    position: np.ndarray  # (3,) world
    rotation: np.ndarray  # (3, 3) camera-to-world; columns are the camera axes in world coordinates

    @staticmethod
    def create(
        width: int, height: int, hfov_deg: float, position: np.ndarray, yaw: float, pitch: float, roll: float
    ) -> "Camera":
        """Yaw turns left/right about world up, pitch tilts the view up (positive), roll about the axis."""
        focal = 0.5 * width / np.tan(np.radians(hfov_deg) / 2)
        flip = np.diag([1.0, -1.0, 1.0])  # camera y points down, world y up
        rotation = rotation_y(yaw) @ _rotation_x(-pitch) @ _rotation_z(roll) @ flip
        return Camera(width, height, float(focal), np.asarray(position, dtype=np.float64), rotation)

    def rays(self) -> np.ndarray:
        """H×W×3 float32 world directions through pixel centres, camera-z component 1."""
        u = (np.arange(self.width) + 0.5 - self.width / 2) / self.focal
        v = (np.arange(self.height) + 0.5 - self.height / 2) / self.focal
        r = self.rotation.astype(np.float32)
        # explicit sums instead of a matmul: keeps BLAS (and its threads) out of the renderer
        out = np.empty((self.height, self.width, 3), dtype=np.float32)
        for k in range(3):
            out[..., k] = r[k, 0] * u[None, :] + r[k, 1] * v[:, None] + r[k, 2]
        return out

    def screen_boxes(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Screen boxes of many convex hulls at once: ``points`` is N×K×3 (K world points per hull).

        Returns ``boxes`` N×4 int (row0, row1, col0, col1; empty when row0 >= row1 or col0 >= col1) and
        ``near`` (N,), the smallest camera depth on each hull (inf when it is all behind the camera).
        """
        cam = np.einsum("nkj,ji->nki", np.asarray(points, dtype=np.float64) - self.position, self.rotation)
        z = cam[..., 2]
        front = z >= NEAR
        visible = front.any(axis=1)
        near = np.where(visible, z.min(axis=1), np.inf)
        with np.errstate(divide="ignore", invalid="ignore"):
            xs = np.where(front, cam[..., 0] / z, np.nan)
            ys = np.where(front, cam[..., 1] / z, np.nan)
        lo = np.stack([np.fmin.reduce(ys, axis=1), np.fmin.reduce(xs, axis=1)], axis=1)
        hi = np.stack([np.fmax.reduce(ys, axis=1), np.fmax.reduce(xs, axis=1)], axis=1)
        for k in np.flatnonzero(visible & ~front.all(axis=1)):
            # the hull crosses the near plane: its visible part is the hull of the points in front
            # plus every segment from a point in front to one behind, cut at the plane
            a, b = cam[k][front[k]][:, None, :], cam[k][~front[k]][None, :, :]
            s = (a[..., 2] - NEAR) / (a[..., 2] - b[..., 2])
            cut = (a + s[..., None] * (b - a)).reshape(-1, 3) / NEAR
            lo[k] = np.minimum(lo[k], cut[:, 1::-1].min(axis=0))
            hi[k] = np.maximum(hi[k], cut[:, 1::-1].max(axis=0))
            near[k] = NEAR
        centre = np.array([self.height / 2, self.width / 2])
        size = np.array([self.height, self.width])
        with np.errstate(invalid="ignore"):
            start = np.clip(np.floor(lo * self.focal + centre), 0, size)
            stop = np.clip(np.ceil(hi * self.focal + centre) + 1, 0, size)
        boxes = np.zeros((len(cam), 4), dtype=np.int64)
        boxes[visible] = np.stack([start[:, 0], stop[:, 0], start[:, 1], stop[:, 1]], axis=1)[visible]
        return boxes, near
