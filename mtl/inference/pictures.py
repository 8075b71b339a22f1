"""The pictures `mtl predict` writes next to the dataset-format PNGs."""

from __future__ import annotations

import numpy as np

from mtl.engine.visualize import depth_picture, semseg_picture

OVERLAY_ALPHA = 0.5


def overlay(rgb: np.ndarray, ids: np.ndarray, alpha: float = OVERLAY_ALPHA) -> np.ndarray:
    """Class colours alpha-blended over the photo (alpha = weight of the colours), H×W×3 uint8."""
    blend = (1.0 - alpha) * rgb.astype(np.float32) + alpha * semseg_picture(ids).astype(np.float32)
    return np.round(blend).astype(np.uint8)


def overview(rgb: np.ndarray, ids: np.ndarray | None, depth_m: np.ndarray | None) -> np.ndarray:
    """RGB | semseg overlay | coloured depth, side by side at the input's size (missing tasks left out)."""
    panels = [rgb]
    if ids is not None:
        panels.append(overlay(rgb, ids))
    if depth_m is not None:
        panels.append(depth_picture(depth_m))
    return np.concatenate(panels, axis=1)
