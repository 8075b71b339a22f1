"""One sample as a pure function of (seed, split, index, size)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mtl.data.synth.render import render
from mtl.data.synth.scene import build_scene

SPLIT_IDS = {"train": 0, "val": 1, "test": 2}
MIN_SIZE = 64
ASPECT_RANGE = (1.0, 3.0)  # width / height; the horizontal field of view is fixed, so tall images would look odd


@dataclass
class Sample:
    rgb: np.ndarray  # H×W×3 uint8
    semseg: np.ndarray  # H×W uint8 trainIds, 255 only on the ego car's bonnet
    depth: np.ndarray  # H×W float32 metres along the optical axis, NaN where invalid (sky, < 4 m, > 300 m)
    normals: np.ndarray  # H×W×3 float32 unit normals, camera frame (x right, y down, z forward), NaN where depth is
    focal: float  # the camera's focal length in pixels (square pixels, principal point at the centre)


def check_size(width: int, height: int) -> None:
    if width < MIN_SIZE or height < MIN_SIZE:
        raise ValueError(f"image size {width}x{height} is too small: width and height must be at least {MIN_SIZE}")
    aspect = width / height
    if not ASPECT_RANGE[0] <= aspect <= ASPECT_RANGE[1]:
        raise ValueError(
            f"image size {width}x{height} has aspect {aspect:.2f}; width/height must lie in "
            f"[{ASPECT_RANGE[0]:g}, {ASPECT_RANGE[1]:g}] (MiniScapes is 2:1)"
        )


def render_sample(seed: int, split: str, index: int, width: int = 512, height: int = 256) -> Sample:
    """Render sample ``index`` of ``split``. The scene depends on (seed, split, index) only, so the same
    sample at another size shows the same street."""
    if split not in SPLIT_IDS:
        raise ValueError(f"unknown split {split!r}; expected one of {tuple(SPLIT_IDS)}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    if index < 0:
        raise ValueError(f"sample index must be >= 0, got {index}")
    check_size(width, height)
    rng = np.random.default_rng(np.random.SeedSequence([seed, SPLIT_IDS[split], index]))
    scene = build_scene(rng, width, height)
    rgb, semseg, depth, normals = render(scene)
    return Sample(rgb, semseg, depth, normals, float(scene.camera.focal))
