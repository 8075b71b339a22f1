"""Thinning of binary maps to one-pixel-wide lines, as MATLAB's ``bwmorph(mask, 'thin', Inf)`` and scikit-image's
``morphology.thin`` do it: Guo & Hall's parallel algorithm in two sub-iterations, each a lookup of the pixel's
8-neighbourhood code in a 256-entry table, repeated until nothing changes.

Both the boundary F-measure (``mtl.metrics.boundary``: BSDS thins predictions and ground truth) and the dense
layouts' edges (``mtl.datasets.listed``: MTL-PyTorch thins the label boundaries) use it. Written here because
scikit-image is not a dependency of mtl (and OpenCV's ximgproc is not either); tests/test_datasets_dense.py checks
the tables against scikit-image's published one and its docstring example.
"""

from __future__ import annotations

from functools import cache

import numpy as np

# Code of the 8-neighbourhood: bit i is neighbour x_{i+1} of Lam, Lee & Suen (1992), counted from the east
# neighbour counter-clockwise (rows grow downwards, so north is row − 1).
NEIGHBOUR_BITS = np.array([[8, 4, 2], [16, 0, 1], [32, 64, 128]])


@cache
def _thinning_tables() -> tuple[np.ndarray, np.ndarray]:
    """For each of the 256 neighbourhood codes: may the centre pixel be deleted in the first / second sub-iteration.

    The conditions G1–G3 of Guo & Hall's parallel thinning as Lam, Lee & Suen (1992, p. 879) state them, the
    algorithm of MATLAB's ``bwmorph(…, 'thin')`` and of scikit-image's ``thin``. Written here because scikit-image
    is not a dependency of mtl."""
    first = np.zeros(256, dtype=bool)
    second = np.zeros(256, dtype=bool)
    for code in range(256):
        x = [(code >> i) & 1 for i in range(8)]  # x[0] = x1 (east) … x[7] = x8 (south-east)
        x9 = [*x, x[0]]
        crossings = sum(1 for i in range(4) if not x9[2 * i] and (x9[2 * i + 1] or x9[2 * i + 2]))
        n1 = sum(1 for k in range(4) if x9[2 * k] or x9[2 * k + 1])
        n2 = sum(1 for k in range(4) if x9[2 * k + 1] or x9[2 * k + 2])
        g12 = crossings == 1 and 2 <= min(n1, n2) <= 3
        first[code] = g12 and not ((x[1] or x[2] or not x[7]) and x[0])
        second[code] = g12 and not ((x[5] or x[6] or not x[3]) and x[4])
    return first, second


def _neighbour_codes(image: np.ndarray) -> np.ndarray:
    """The 8-neighbourhood code of every pixel but the outer frame (which stays 0): shifted slices, several times
    faster than ``ndimage.correlate`` with this kernel."""
    height, width = image.shape
    codes = np.zeros(image.shape, dtype=np.uint8)
    inner = codes[1:-1, 1:-1]
    for (dy, dx), bit in np.ndenumerate(NEIGHBOUR_BITS):
        if bit:
            inner |= image[dy : height - 2 + dy, dx : width - 2 + dx] * np.uint8(bit)
    return codes


def thin(mask: np.ndarray) -> np.ndarray:
    """A boolean map thinned to one-pixel-wide lines, repeated until nothing changes (``bwmorph(mask,'thin',Inf)``)."""
    first, second = _thinning_tables()
    rows, cols = np.nonzero(mask)
    if rows.size == 0:
        return np.zeros(mask.shape, dtype=bool)
    # Work inside the bounding box (plus a frame of background): thinning never reaches outside it.
    top, left = rows.min(), cols.min()
    out = np.zeros((rows.max() - top + 3, cols.max() - left + 3), dtype=np.uint8)
    out[1:-1, 1:-1] = mask[top : rows.max() + 1, left : cols.max() + 1]
    while True:
        changed = False
        for table in (first, second):
            codes = _neighbour_codes(out)
            delete = table[codes] & (out == 1)
            if delete.any():
                out[delete] = 0
                changed = True
        if not changed:
            break
    result = np.zeros(mask.shape, dtype=bool)
    result[top : rows.max() + 1, left : cols.max() + 1] = out[1:-1, 1:-1].astype(bool)
    return result
