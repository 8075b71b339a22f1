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

    def to_camera(self, points: np.ndarray) -> np.ndarray:
        return (np.asarray(points, dtype=np.float64) - self.position) @ self.rotation

    def screen_bbox(self, points: np.ndarray) -> tuple[slice, slice] | None:
        """Pixel rows/columns that the convex hull of ``points`` (N×3 world) can cover, or None.

        The hull is clipped at the near plane: its part in front of the camera is the hull of the
        points in front plus every segment between two points crossing the plane, cut at the plane.
        """
        cam = self.to_camera(points)
        front = cam[:, 2] >= NEAR
        if not front.any():
            return None
        kept = [cam[front]]
        if not front.all():
            a, b = cam[front], cam[~front]
            s = (a[:, None, 2] - NEAR) / (a[:, None, 2] - b[None, :, 2])
            kept.append((a[:, None, :] + s[..., None] * (b[None, :, :] - a[:, None, :])).reshape(-1, 3))
        cam = np.concatenate(kept)
        u = cam[:, 0] / cam[:, 2] * self.focal + self.width / 2
        v = cam[:, 1] / cam[:, 2] * self.focal + self.height / 2
        x0, x1 = max(int(np.floor(u.min())), 0), min(int(np.ceil(u.max())) + 1, self.width)
        y0, y1 = max(int(np.floor(v.min())), 0), min(int(np.ceil(v.max())) + 1, self.height)
        if x0 >= x1 or y0 >= y1:
            return None
        return slice(y0, y1), slice(x0, x1)
