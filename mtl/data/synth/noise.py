"""A fixed, tileable 256×256 fractal value-noise table and cheap lookups into it.

Textures are procedural: a surface samples this table at its own world or local coordinates, so the
pattern shrinks with distance like real texture (a monocular depth cue). The table is built once
per process from a fixed seed, so it never changes a sample's determinism.
"""

from __future__ import annotations

import numpy as np

SIZE = 256


def _fractal_table(seed: int = 20240611) -> np.ndarray:
    """Sum of Gaussian-blurred white noise at several scales, blurred in the Fourier domain so that
    the table tiles seamlessly; normalised to [0, 1]."""
    white = np.random.default_rng(seed).standard_normal((SIZE, SIZE))
    spectrum = np.fft.fft2(white)
    freq = np.fft.fftfreq(SIZE)
    f2 = freq[:, None] ** 2 + freq[None, :] ** 2
    table = np.zeros((SIZE, SIZE))
    for sigma, weight in ((16.0, 1.0), (8.0, 0.6), (4.0, 0.4), (2.0, 0.25), (1.0, 0.15)):
        layer = np.fft.ifft2(spectrum * np.exp(-2 * (np.pi * sigma) ** 2 * f2)).real
        table += weight * layer / layer.std()
    table -= table.min()
    return (table / table.max()).astype(np.float32)


TABLE = _fractal_table()
_FLAT = TABLE.ravel()
_PADDED = np.pad(TABLE, ((0, 1), (0, 1)), mode="wrap")
# per texel (v00, v01 − v00, v10, v11 − v10): one row gather per lookup instead of four scattered
# ones, and the differences are the same float32 values the interpolation would compute
_QUAD = np.stack([_PADDED[:-1, :-1], _PADDED[:-1, 1:] - _PADDED[:-1, :-1], _PADDED[1:, :-1],
                  _PADDED[1:, 1:] - _PADDED[1:, :-1]], axis=-1).reshape(SIZE * SIZE, 4)


def noise(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Nearest lookup at texel coordinates (u, v); one texel ≈ one feature at the finest octave."""
    iu = u.astype(np.int32) & (SIZE - 1)
    iv = v.astype(np.int32) & (SIZE - 1)
    return _FLAT[iv * SIZE + iu]


def smooth_noise(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Bilinear lookup: for surfaces seen close up, where a nearest lookup would show texel squares."""
    fu, fv = np.floor(u), np.floor(v)
    au, av = (u - fu).astype(np.float32, copy=False), (v - fv).astype(np.float32, copy=False)
    i = fv.astype(np.int32)
    i &= SIZE - 1
    i *= SIZE
    i += fu.astype(np.int32) & (SIZE - 1)
    q = np.take(_QUAD, i, axis=0)
    # in place: top and bottom rows, then their blend (same float32 operations, fewer temporaries)
    top = q[..., 1] * au
    top += q[..., 0]
    bottom = q[..., 3] * au
    bottom += q[..., 2]
    bottom -= top
    bottom *= av
    bottom += top
    return bottom


def fine_weight(distance: np.ndarray, scale: float) -> np.ndarray:
    """Fade of a texture detail of ``scale`` metres with distance: fades once it falls below a few
    pixels at a typical focal length, which stands in for mip-mapping (no shimmering noise far away)."""
    return np.clip(1.5 - distance / (scale * 400.0), 0.0, 1.0)
