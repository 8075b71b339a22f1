"""Training augmentation on tensors: a random perspective crop, photometric jitter, RGB normalisation.

Transforms are called as ``sample = t(sample, generator)``: ``sample`` is a dataset item (``rgb`` uint8
3×H×W, and task targets: C×H×W or H×W tensors described by a ``Target`` rule; other keys pass through)
and every random number comes from ``generator``, which the engine seeds per (seed, epoch, sample index):
the same sample gets the same augmentation in any worker and after a resume.

The warp is written with torch (a homography solved with torch.linalg.solve, applied by F.grid_sample)
because torchvision is not usable here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

Sample = dict[str, Any]
Transform = Callable[[Sample, torch.Generator], Sample]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def normalize_rgb(rgb: Tensor) -> Tensor:
    """uint8 (or float 0..255) RGB, 3×H×W or B×3×H×W, on any device → float32 with ImageNet statistics."""
    if rgb.dim() not in (3, 4) or rgb.shape[-3] != 3:
        raise ValueError(f"expected RGB as 3×H×W or B×3×H×W, got shape {tuple(rgb.shape)}")
    mean = torch.tensor(IMAGENET_MEAN, device=rgb.device).view(3, 1, 1) * 255
    std = torch.tensor(IMAGENET_STD, device=rgb.device).view(3, 1, 1) * 255
    return (rgb.float() - mean) / std


@dataclass(frozen=True)
class Target:
    """How a geometric augmentation resamples a task's target: by nearest neighbour (no invented labels,
    depths or normals), ``fill`` where the warp reaches outside the image (ignore / invalid), and
    ``reorient(value, flip, angle_rad)`` for values that are directions in the image plane."""

    fill: float
    dtype: torch.dtype
    reorient: Callable[[Tensor, bool, float], Tensor] | None = None


def _check_sample(sample: Sample, targets: Mapping[str, Target]) -> tuple[int, int]:
    """Height and width of a sample, after checking dtypes and shapes (these are easy to get wrong)."""
    rgb = sample.get("rgb")
    if not isinstance(rgb, Tensor) or rgb.dtype != torch.uint8 or rgb.dim() != 3 or rgb.shape[0] != 3:
        got = f"{rgb.dtype} {tuple(rgb.shape)}" if isinstance(rgb, Tensor) else type(rgb).__name__
        raise ValueError(f"sample 'rgb' must be a uint8 3×H×W tensor, got {got}")
    height, width = rgb.shape[1:]
    for key, rule in targets.items():
        if key in sample:
            x = sample[key]
            if not isinstance(x, Tensor) or x.dtype != rule.dtype or x.dim() not in (2, 3) or tuple(x.shape[-2:]) != (height, width):
                got = f"{x.dtype} {tuple(x.shape)}" if isinstance(x, Tensor) else type(x).__name__
                raise ValueError(f"sample {key!r} must be a {rule.dtype} tensor of size {height}×{width}, got {got}")
    return height, width


@dataclass(frozen=True)
class WarpParams:
    """One random draw of PerspectiveCrop, in source pixel coordinates (pixel edges at integers)."""

    corners: tuple[tuple[float, float], ...]  # source points of the output's TL, TR, BR, BL corners
    flip: bool  # mirror the output horizontally
    angle: float = 0.0  # rotation of the source region, radians (image axes: x right, y down)


def homography(src: Tensor, dst: Tensor) -> Tensor:
    """The 3×3 matrix H (H[2,2] = 1) mapping the 4 points ``src`` (4×2) onto ``dst`` (4×2), in float64."""
    src, dst = src.double(), dst.double()
    rows = []
    for (x, y), (u, v) in zip(src.tolist(), dst.tolist()):
        rows.append([x, y, 1.0, 0.0, 0.0, 0.0, -u * x, -u * y])
        rows.append([0.0, 0.0, 0.0, x, y, 1.0, -v * x, -v * y])
    a = torch.tensor(rows, dtype=torch.float64)
    h = torch.linalg.solve(a, dst.reshape(8))
    return torch.cat([h, h.new_ones(1)]).view(3, 3)


class PerspectiveCrop:
    """A square ``crop_size`` crop through a random perspective warp (SPEC 5; the course's augmentation).

    The source region is the crop square scaled by ``scale`` ~ U[scale_min, scale_max] (> 1 zooms out),
    rotated by ~ U[−tilt, tilt] degrees about its centre, each corner moved by up to
    ``wiggle·crop_size/2`` per axis, and mirrored with p = 0.5 if ``reflect``. Its position is uniform
    among the integer offsets that keep its bounding box inside the image; if none does, it is centred
    and the outside is padded: semseg 255, depth NaN, RGB 0 (black, as the course's PIL warp did).
    RGB is sampled bilinearly (no antialiasing when zooming out, like the course's PIL warp), task targets
    as their ``targets`` rule says (nearest neighbour, a fill value, reorientation of vectors).
    With scale 1, tilt 0, wiggle 0 and no reflection the result is exactly a slice of the input.
    """

    def __init__(
        self,
        crop_size: int,
        scale_min: float = 1.0,
        scale_max: float = 1.0,
        tilt_max_deg: float = 0.0,
        wiggle_max_ratio: float = 0.0,
        reflect: bool = False,
        targets: Mapping[str, Target] | None = None,
    ) -> None:
        if not (isinstance(crop_size, int) and crop_size > 0):
            raise ValueError(f"--aug_input_crop_size must be a positive integer, got {crop_size}")
        if not (0 < scale_min <= scale_max < math.inf):
            raise ValueError(
                f"--aug_geom_scale_min and --aug_geom_scale_max need 0 < min ≤ max, got {scale_min} and {scale_max}"
            )
        if not 0 <= tilt_max_deg <= 45:
            raise ValueError(f"--aug_geom_tilt_max_deg must lie in [0, 45] degrees, got {tilt_max_deg}")
        # Beyond 0.5 two neighbouring corners can cross and fold the quadrilateral.
        if not 0 <= wiggle_max_ratio < 0.5:
            raise ValueError(f"--aug_geom_wiggle_max_ratio must lie in [0, 0.5), got {wiggle_max_ratio}")
        self.crop_size = crop_size
        self.scale_min, self.scale_max = float(scale_min), float(scale_max)
        self.tilt_max_deg = float(tilt_max_deg)
        self.wiggle_max_ratio = float(wiggle_max_ratio)
        self.reflect = bool(reflect)
        self.targets = dict(targets or {})

    def sample_params(self, height: int, width: int, generator: torch.Generator) -> WarpParams:
        """Draw one warp for an image of ``height``×``width``; always consumes 13 numbers from ``generator``."""
        r = torch.rand(13, generator=generator, dtype=torch.float64).tolist()
        size = self.crop_size
        scale = self.scale_min + r[0] * (self.scale_max - self.scale_min)
        angle = math.radians((2 * r[1] - 1) * self.tilt_max_deg)
        wiggle = self.wiggle_max_ratio * size / 2
        cos, sin = math.cos(angle), math.sin(angle)
        corners = []
        for i, (cx, cy) in enumerate(((-1, -1), (1, -1), (1, 1), (-1, 1))):
            x = scale * (cx * size / 2 + (2 * r[2 + 2 * i] - 1) * wiggle)
            y = scale * (cy * size / 2 + (2 * r[3 + 2 * i] - 1) * wiggle)
            corners.append((cos * x - sin * y, sin * x + cos * y))
        flip = self.reflect and r[10] < 0.5
        # Offset t of the square's top-left corner (t + size/2 is the centre); integer so that a plain
        # crop samples pixel centres exactly.
        offsets = []
        for axis, extent, u in ((0, width, r[11]), (1, height, r[12])):
            lo = -min(c[axis] for c in corners) - size / 2
            hi = extent - max(c[axis] for c in corners) - size / 2
            first, last = math.ceil(lo - 1e-9), math.floor(hi + 1e-9)
            if first <= last:
                offsets.append(first + min(int(u * (last - first + 1)), last - first))
            else:
                offsets.append(math.floor((lo + hi) / 2))
        centre = (offsets[0] + size / 2, offsets[1] + size / 2)
        return WarpParams(tuple((x + centre[0], y + centre[1]) for x, y in corners), flip, angle)

    def __call__(self, sample: Sample, generator: torch.Generator) -> Sample:
        height, width = _check_sample(sample, self.targets)
        return self._warp(sample, self.sample_params(height, width, generator), height, width)

    def apply(self, sample: Sample, params: WarpParams) -> Sample:
        """Warp the RGB and every target of ``sample`` with ``params``; other keys are copied unchanged."""
        return self._warp(sample, params, *_check_sample(sample, self.targets))

    def _warp(self, sample: Sample, params: WarpParams, height: int, width: int) -> Sample:
        size = self.crop_size
        dst = torch.tensor([[0.0, 0.0], [size, 0.0], [size, size], [0.0, size]], dtype=torch.float64)
        if params.flip:
            dst[:, 0] = size - dst[:, 0]
        src = torch.tensor(params.corners, dtype=torch.float64)
        # Convert only the part of the image the quadrilateral covers (+1 px for bilinear neighbours).
        # (At least one pixel, so hand-made params for a region off the image give pure padding.)
        x0 = min(width - 1, max(0, math.floor(src[:, 0].min().item()) - 1))
        y0 = min(height - 1, max(0, math.floor(src[:, 1].min().item()) - 1))
        x1 = max(x0 + 1, min(width, math.ceil(src[:, 0].max().item()) + 1))
        y1 = max(y0 + 1, min(height, math.ceil(src[:, 1].max().item()) + 1))
        grid = self._grid(homography(dst, src - torch.tensor([x0, y0], dtype=torch.float64)), x1 - x0, y1 - y0)

        out = dict(sample)
        rgb = sample["rgb"][:, y0:y1, x0:x1].float()
        rgb = F.grid_sample(rgb[None], grid, mode="bilinear", padding_mode="zeros", align_corners=False)[0]
        out["rgb"] = rgb.round_().clamp_(0, 255).to(torch.uint8)

        # Nearest channels share one call; a channel of ones marks the pixels that came from the image.
        keys = [k for k in self.targets if k in sample]
        if keys:
            planes = [sample[k][..., y0:y1, x0:x1].float().reshape(-1, y1 - y0, x1 - x0) for k in keys]
            planes.append(torch.ones_like(planes[0][:1]))
            warped = F.grid_sample(
                torch.cat(planes)[None], grid, mode="nearest", padding_mode="zeros", align_corners=False
            )[0]
            inside = warped[-1] > 0.5
            start = 0
            for key, plane in zip(keys, planes):
                rule = self.targets[key]
                values = warped[start : start + plane.shape[0]].reshape(sample[key].shape[:-2] + (size, size))
                start += plane.shape[0]
                value = torch.where(inside, values.to(rule.dtype), torch.tensor(rule.fill, dtype=rule.dtype))
                out[key] = value if rule.reorient is None else rule.reorient(value, params.flip, params.angle)
        return out

    def _grid(self, h: Tensor, width: int, height: int) -> Tensor:
        """grid_sample grid (1×S×S×2) of the output pixel centres mapped by ``h`` into a width×height image."""
        (a, b, c), (d, e, f), (g, i, j) = h.tolist()
        centres = torch.arange(self.crop_size, dtype=torch.float64) + 0.5
        x, y = centres[None, :], centres[:, None]  # broadcast row and column: cheaper than an S²×3 matmul
        den = g * x + i * y + j
        # align_corners=False: −1 and +1 are the outer edges of the image, so x_norm = 2·x/width − 1.
        gx = (a * x + b * y + c) / den * (2.0 / width) - 1.0
        gy = (d * x + e * y + f) / den * (2.0 / height) - 1.0
        return torch.stack([gx, gy], dim=-1).float()[None]


class PhotometricJitter:
    """Random brightness, contrast, saturation and hue on uint8 RGB (all 0 = off, the default).

    Factors are drawn like torchvision's ColorJitter: brightness/contrast/saturation ~ U[max(0, 1 − a), 1 + a],
    hue shift ~ U[−h, h] turns (h ≤ 0.5), applied in this fixed order. The hue shift is a rotation of the
    chroma plane in YIQ space: a linear approximation of the HSV hue shift that needs no colour-space
    round trip.
    """

    def __init__(self, brightness: float = 0.0, contrast: float = 0.0, saturation: float = 0.0, hue: float = 0.0):
        for name, value in (("brightness", brightness), ("contrast", contrast), ("saturation", saturation)):
            if not 0 <= value < math.inf:
                raise ValueError(f"--aug_photometric: {name} must be a finite number ≥ 0, got {value}")
        if not 0 <= hue <= 0.5:
            raise ValueError(f"--aug_photometric: hue must lie in [0, 0.5] turns, got {hue}")
        self.brightness, self.contrast, self.saturation, self.hue = brightness, contrast, saturation, hue

    @property
    def enabled(self) -> bool:
        return any((self.brightness, self.contrast, self.saturation, self.hue))

    def __call__(self, sample: Sample, generator: torch.Generator) -> Sample:
        r = torch.rand(4, generator=generator, dtype=torch.float64).tolist()  # always 4: a fixed stream
        if not self.enabled:
            return sample
        _check_sample(sample, {})

        def factor(amount: float, u: float) -> float:
            low = max(0.0, 1.0 - amount)
            return low + u * (1.0 + amount - low)

        # Each step clips to the valid range, as ColorJitter does.
        gray_weights = torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)
        rgb = (sample["rgb"].float() * factor(self.brightness, r[0])).clamp_(0, 255)
        gray_mean = (rgb * gray_weights).sum(0).mean()
        rgb = (gray_mean + factor(self.contrast, r[1]) * (rgb - gray_mean)).clamp_(0, 255)
        gray = (rgb * gray_weights).sum(0, keepdim=True)
        rgb = (gray + factor(self.saturation, r[2]) * (rgb - gray)).clamp_(0, 255)
        if self.hue > 0:
            rgb = _rotate_hue(rgb, (2 * r[3] - 1) * self.hue * 2 * math.pi)
        return {**sample, "rgb": rgb.round_().clamp_(0, 255).to(torch.uint8)}


_RGB_TO_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])


def _rotate_hue(rgb: Tensor, angle: float) -> Tensor:
    """Rotate the I/Q chroma of a float 3×H×W image by ``angle`` radians (luma Y unchanged)."""
    cos, sin = math.cos(angle), math.sin(angle)
    rotation = torch.tensor([[1.0, 0.0, 0.0], [0.0, cos, -sin], [0.0, sin, cos]])
    matrix = torch.linalg.inv(_RGB_TO_YIQ) @ rotation @ _RGB_TO_YIQ
    return torch.einsum("ij,jhw->ihw", matrix, rgb)


class Compose:
    """Apply transforms in order, all drawing from the same generator."""

    def __init__(self, transforms: Sequence[Transform]) -> None:
        self.transforms = list(transforms)

    def __call__(self, sample: Sample, generator: torch.Generator) -> Sample:
        for transform in self.transforms:
            sample = transform(sample, generator)
        return sample
