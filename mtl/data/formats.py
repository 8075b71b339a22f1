"""MiniScapes file formats: RGB JPEG, semseg trainId PNG, depth as quantised-disparity PNG.

Depth PNG (8-bit, mode L): v = 1 + 254·(1/z − dmin)/(dmax − dmin), dmin = 1/300, dmax = 1/4, truncated
to a code; decoded z = 1/((dmax − dmin)·(v − 1)/254 + dmin), v = 0 is invalid. Ground truth is written
with the "invalidate" policy (out of range / NaN → 0), predictions with "clamp" (v clipped to [1, 255];
NaN is an error because a prediction must say something about every pixel). Arithmetic is float64.

Round trip: every code re-encodes to itself, ``encode_depth(decode_depth(v)) == v`` for v = 1..255
under both policies. Truncating v literally does not give that: ``decode_depth`` returns float32
metres (as do the data loaders and the network), and the float32 rounding of the depth moves v by up
to 254·(1/zmin)/(dmax − dmin)·2⁻²⁴ ≈ 1.5e-5 (at 4 m; measured 1.44e-5), below the integer for about
half of the codes, which truncation then drops by one. The encoder therefore truncates
v + ``DEPTH_CODE_EPS`` (1e-4: 6× that error, and 1e-4 of the width of a code, so arbitrary depths still
truncate as before except in a sliver just beyond each code boundary, of relative width 4e-7 in depth at
4 m to 3e-5 at 300 m, which now maps to the nearer code).
The same sliver applies at the ends of the range: v ∈ [1 − ε, 1) counts as 300 m and v ∈ (255, 255 + ε]
as 4 m (code 255 decoded in float64 is 3.9999999999999996 m, whose v is 255 + 6e-14).
SPEC §2 states ε = 1e-6, which suffices for depths held in float64 but not for float32 depths.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image

from mtl.data.classes import IGNORE_INDEX, NUM_CLASSES, palette

ZMIN = 4.0
ZMAX = 300.0
DMIN = 1.0 / ZMAX
DMAX = 1.0 / ZMIN

# Added to v before truncation (module docstring): larger than the float32 rounding error of a decoded
# depth (≤ 1.5e-5 in v), far smaller than a code.
DEPTH_CODE_EPS = 1e-4

DepthPolicy = Literal["invalidate", "clamp"]


class DataFormatError(ValueError):
    """A file that does not follow the MiniScapes format; the message names the file."""


def encode_depth(depth_m: np.ndarray, policy: DepthPolicy) -> np.ndarray:
    """Metres (float, NaN = invalid) → uint8 disparity codes."""
    z = np.asarray(depth_m, dtype=np.float64)
    if policy == "clamp" and np.isnan(z).any():
        raise ValueError("depth prediction contains NaN; every pixel needs a depth to encode")
    if policy not in ("invalidate", "clamp"):
        raise ValueError(f"unknown depth policy {policy!r}; use 'invalidate' or 'clamp'")
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        v = 1.0 + 254.0 * (1.0 / z - DMIN) / (DMAX - DMIN)
        if policy == "clamp":
            # ±inf depths and 0 m clip to the ends of the range; NaN was refused above
            return np.trunc(np.clip(v + DEPTH_CODE_EPS, 1.0, 255.0)).astype(np.uint8)
        ok = (v >= 1.0 - DEPTH_CODE_EPS) & (v <= 255.0 + DEPTH_CODE_EPS)  # NaN compares False
        codes = np.trunc(np.clip(np.where(ok, v, 1.0) + DEPTH_CODE_EPS, 1.0, 255.0))
    return np.where(ok, codes, 0.0).astype(np.uint8)


def decode_depth(codes: np.ndarray) -> np.ndarray:
    """uint8 disparity codes → float32 metres, NaN where the code is 0 (invalid)."""
    v = np.asarray(codes)
    if v.dtype != np.uint8:
        raise ValueError(f"depth codes must be uint8, got {v.dtype}")
    z = 1.0 / ((DMAX - DMIN) * (v.astype(np.float64) - 1.0) / 254.0 + DMIN)
    return np.where(v == 0, np.nan, z).astype(np.float32)


def atomic_write(write: Callable[[Path], None], path: Path) -> None:
    """Write to a hidden temporary file in the same folder (created), then rename: a crash never leaves a
    half-written file under its final name, and a reader never sees one. The temporary keeps the extension so PIL picks the format."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def open_image(path: Path) -> Image.Image:
    """A decoded PIL image; a missing, truncated or corrupt file is a DataFormatError naming it."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"{path}: missing file")
    try:
        image = Image.open(path)
        image.load()
    except Exception as exc:  # PIL raises many types for truncated/corrupt files
        raise DataFormatError(f"{path}: cannot decode image ({exc})") from exc
    return image


def read_rgb(path: Path) -> np.ndarray:
    """H×W×3 uint8. Grayscale or RGBA files are rejected: the dataset is RGB."""
    image = open_image(path)
    if image.mode != "RGB":
        raise DataFormatError(f"{path}: RGB image has mode {image.mode!r}, expected 'RGB'")
    return np.array(image, dtype=np.uint8)


def read_semseg(path: Path) -> np.ndarray:
    """H×W uint8 trainIds (0..18, 255 ignore) from a mode P or L PNG."""
    image = open_image(path)
    if image.mode not in ("P", "L"):
        raise DataFormatError(f"{path}: semseg image has mode {image.mode!r}, expected 'P' or 'L'")
    ids = np.array(image, dtype=np.uint8)
    bad = (ids >= NUM_CLASSES) & (ids != IGNORE_INDEX)
    if bad.any():
        raise DataFormatError(
            f"{path}: semseg holds values {sorted(np.unique(ids[bad]).tolist())[:5]} outside 0..18 and 255"
        )
    return ids


def read_depth(path: Path) -> np.ndarray:
    """H×W float32 metres, NaN where invalid."""
    image = open_image(path)
    if image.mode != "L":
        raise DataFormatError(f"{path}: depth image has mode {image.mode!r}, expected 'L'")
    return decode_depth(np.array(image, dtype=np.uint8))


def write_rgb(path: Path, rgb: np.ndarray, quality: int = 95) -> None:
    Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8)).save(path, quality=quality)


def write_semseg(path: Path, ids: np.ndarray) -> None:
    """Palette PNG (mode P) with the Cityscapes colours; values are the trainIds themselves."""
    image = Image.fromarray(np.ascontiguousarray(ids, dtype=np.uint8))
    image.putpalette(palette())  # turns the L image into mode P without touching the values
    image.save(path)


def write_depth(path: Path, depth_m: np.ndarray, policy: DepthPolicy) -> None:
    Image.fromarray(encode_depth(depth_m, policy)).save(path)


# --- surface normals (MiniScapes layout extension of the generated world) -------------------------
#
# normals/<i>.png, 8-bit RGB: the unit normal n in camera coordinates (x right, y down, z forward),
# facing the camera, stored as round((n + 1)/2·255) per channel; (0, 0, 0) marks an invalid pixel.
# A unit vector can never round to (0, 0, 0): that needs every component below −1 + 1/255, while
# one of them is at least 1/√3 in magnitude. encode_normals still guards the code, so that the
# valid/invalid mask survives the round trip exactly.


def encode_normals(normals: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """H×W×3 normals (float, any non-zero length) → H×W×3 uint8 codes round((n/|n| + 1)/2·255).

    NaN, infinite or zero vectors, and pixels outside ``valid`` (H×W bool, optional) become (0, 0, 0).
    Arithmetic is float64, like the depth codes.
    """
    n = np.asarray(normals)
    n = n.astype(np.float64)
    if n.ndim < 1 or n.shape[-1] != 3:
        raise ValueError(f"normals must have 3 channels in the last axis, got shape {n.shape}")
    x, y, z = n[..., 0], n[..., 1], n[..., 2]
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        norm2 = x * x + y * y + z * z
        ok = (norm2 > 0) & (norm2 < np.inf)  # NaN compares False
        if valid is not None:
            ok &= np.asarray(valid, dtype=bool)
        scaled = n * (n.dtype.type(127.5) / np.sqrt(norm2))[..., None]  # (n/|n|)·127.5
    scaled += 128.0  # + 127.5, + 0.5 for rounding: in [0.5, 255.5], so truncation is the rounding
    scaled[~ok] = 0.0
    np.clip(scaled, 0.0, 255.0, out=scaled)
    codes = scaled.astype(np.uint8)
    dead = ok & ((codes[..., 0] | codes[..., 1] | codes[..., 2]) == 0)  # unreachable for unit vectors
    if dead.any():
        codes[dead, np.argmax(n[dead], axis=-1)] = 1
    return codes


def decode_normals(codes: np.ndarray) -> np.ndarray:
    """H×W×3 uint8 codes → float32 unit vectors ((c/255)·2 − 1, renormalised), NaN where (0, 0, 0)."""
    c = np.asarray(codes)
    if c.dtype != np.uint8:
        raise ValueError(f"normal codes must be uint8, got {c.dtype}")
    if c.ndim < 1 or c.shape[-1] != 3:
        raise ValueError(f"normal codes must have 3 channels in the last axis, got shape {c.shape}")
    n = c.astype(np.float32) * np.float32(2.0 / 255.0) - np.float32(1.0)
    n /= np.sqrt(np.sum(n * n, axis=-1))[..., None]  # never 0: no integer code decodes to 0 exactly
    n[(c[..., 0] | c[..., 1] | c[..., 2]) == 0] = np.nan
    return n


def read_normals(path: Path) -> np.ndarray:
    """H×W×3 float32 unit normals in camera coordinates, NaN where invalid, from a mode RGB PNG."""
    image = open_image(path)
    if image.mode != "RGB":
        raise DataFormatError(f"{path}: normals image has mode {image.mode!r}, expected 'RGB'")
    return decode_normals(np.array(image, dtype=np.uint8))


def write_normals(path: Path, normals: np.ndarray) -> None:
    """RGB PNG of ``encode_normals(normals)`` (NaN or zero vectors → (0, 0, 0), invalid)."""
    Image.fromarray(encode_normals(normals)).save(path)  # H×W×3 uint8 → mode RGB
