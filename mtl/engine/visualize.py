"""Pictures for TensorBoard and reports: RGB | GT semseg | predicted semseg | GT depth | predicted depth.

Ignore pixels of semseg are drawn white and invalid depth black, so that neither can be mistaken for
a class colour or a depth value.
"""

from __future__ import annotations

import numpy as np
import torch
from matplotlib import colormaps

from mtl.data.classes import IGNORE_INDEX, colorize
from mtl.data.formats import ZMAX, ZMIN

_DEPTH_LUT = (colormaps["turbo_r"](np.linspace(0.0, 1.0, 256))[:, :3] * 255).astype(np.uint8)
IGNORE_COLOR = np.array([255, 255, 255], dtype=np.uint8)


def semseg_picture(ids: np.ndarray) -> np.ndarray:
    picture = colorize(ids.astype(np.uint8))
    picture[ids == IGNORE_INDEX] = IGNORE_COLOR
    return picture


def depth_picture(depth_m: np.ndarray) -> np.ndarray:
    """Log-scaled colour map over [4, 300] m (near = red, far = blue); invalid (NaN) black."""
    valid = np.isfinite(depth_m)
    z = np.clip(np.where(valid, depth_m, ZMIN), ZMIN, ZMAX)
    t = (np.log(z) - np.log(ZMIN)) / (np.log(ZMAX) - np.log(ZMIN))
    picture = _DEPTH_LUT[np.round(t * 255).astype(np.int64)]
    picture[~valid] = 0
    return picture


def sample_row(
    rgb: torch.Tensor,
    semseg_gt: torch.Tensor | None,
    semseg_pred: torch.Tensor | None,
    depth_gt: torch.Tensor | None,
    depth_pred: torch.Tensor | None,
) -> np.ndarray:
    """One H×(k·W)×3 strip; panels for missing tasks are left out."""
    panels = [rgb.detach().cpu().permute(1, 2, 0).numpy().astype(np.uint8)]
    for ids in (semseg_gt, semseg_pred):
        if ids is not None:
            panels.append(semseg_picture(ids.detach().cpu().numpy()))
    for depth in (depth_gt, depth_pred):
        if depth is not None:
            panels.append(depth_picture(depth.detach().float().cpu().numpy()))
    return np.concatenate(panels, axis=1)


def grid(rows: list[np.ndarray], gap: int = 2) -> np.ndarray:
    """Stack strips vertically with a thin white gap."""
    width = max(r.shape[1] for r in rows)
    out = []
    for row in rows:
        padded = np.zeros((row.shape[0], width, 3), dtype=np.uint8)
        padded[:, : row.shape[1]] = row
        out += [padded, np.full((gap, width, 3), 255, dtype=np.uint8)]
    return np.concatenate(out[:-1], axis=0)
