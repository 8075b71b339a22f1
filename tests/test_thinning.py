"""Thinning (mtl/data/thinning.py), shared by the boundary F-measure and the dense layouts' edges."""

from __future__ import annotations

import numpy as np

from mtl.data.thinning import thin


def test_thinning_matches_scikit_images_documented_example():
    """The example of ``skimage.morphology.thin``'s docstring (scikit-image is not installed here)."""
    square = np.zeros((7, 7), np.uint8)
    square[1:-1, 2:-2] = 1
    square[0, 1] = 1
    expected = np.zeros((7, 7), bool)
    expected[0, 1] = expected[1, 2] = True
    expected[2:5, 3] = True
    np.testing.assert_array_equal(thin(square), expected)


def test_thinning_keeps_lines_and_thins_bars():
    line = np.zeros((9, 9), bool)
    line[4, 1:8] = True
    assert np.array_equal(thin(line), line)
    bar = np.zeros((9, 12), bool)
    bar[3:6, 1:11] = True
    thinned = thin(bar)
    assert thinned[:, 3:9].sum(axis=0).tolist() == [1] * 6 and thinned.sum() < bar.sum()
    assert np.array_equal(thin(thinned), thinned)
