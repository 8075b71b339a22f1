"""MiniScapes file formats against the SPEC's formulas, computed independently here."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from mtl.data.classes import CLASS_COLORS
from mtl.data.formats import (
    DataFormatError,
    decode_depth,
    encode_depth,
    read_depth,
    read_rgb,
    read_semseg,
    write_depth,
    write_rgb,
    write_semseg,
)

D_MIN, D_MAX = 1.0 / 300.0, 1.0 / 4.0


def depth_of_code(v: float) -> float:
    """Exact depth (float64) at which the SPEC's encoder reaches the value v before truncation."""
    return 1.0 / ((D_MAX - D_MIN) * (v - 1.0) / 254.0 + D_MIN)


@pytest.mark.parametrize("policy", ["invalidate", "clamp"])
def test_encode_truncates_at_code_boundaries(policy):
    codes = np.arange(2, 255)
    boundary = np.array([depth_of_code(k) for k in codes])
    # Just nearer than the boundary: v slightly above k → k. Just farther: v slightly below k → k − 1.
    assert np.array_equal(encode_depth(boundary * (1 - 1e-9), policy), codes)
    assert np.array_equal(encode_depth(boundary * (1 + 1e-9), policy), codes - 1)
    # Half-way between codes: rounding would give k + 1, truncation keeps k.
    half = np.array([depth_of_code(k + 0.5) for k in codes])
    assert np.array_equal(encode_depth(half, policy), codes)


def test_out_of_range_depth_per_policy():
    z = np.array([300.0 * (1 + 1e-9), 1000.0, np.inf, 4.0 * (1 - 1e-9), 1.0, 300.0, 4.0])
    assert encode_depth(z, "invalidate").tolist() == [0, 0, 0, 0, 0, 1, 255]
    assert encode_depth(z, "clamp").tolist() == [1, 1, 1, 255, 255, 1, 255]
    assert encode_depth(np.array([np.nan, 10.0]), "invalidate")[0] == 0


def test_clamp_policy_rejects_nan():
    with pytest.raises(ValueError, match="NaN"):
        encode_depth(np.array([5.0, np.nan]), "clamp")


def test_decode_matches_formula():
    codes = np.arange(256, dtype=np.uint8)
    z = decode_depth(codes)
    assert z.dtype == np.float32
    assert np.isnan(z[0])
    expected = np.array([depth_of_code(float(v)) for v in range(1, 256)], dtype=np.float32)
    assert np.array_equal(z[1:], expected)
    assert z[1] == 300.0 and z[255] == 4.0
    assert np.all(np.diff(z[1:]) < 0)  # larger code = nearer


def test_decode_rejects_non_uint8():
    with pytest.raises(ValueError, match="uint8"):
        decode_depth(np.array([1, 2], dtype=np.int32))


def test_depth_png_round_trip(tmp_path):
    codes = np.arange(256, dtype=np.uint8).reshape(8, 32)
    # Mid-bin depths (v + 0.5) encode to v whatever the rounding of the float arithmetic; 4 m is exactly 255.
    z = np.array([[np.nan if v == 0 else depth_of_code(min(v + 0.5, 255)) for v in row] for row in codes])
    path = tmp_path / "d.png"
    write_depth(path, z, "invalidate")
    with Image.open(path) as image:
        assert image.mode == "L"
        assert np.array_equal(np.asarray(image), codes)
    back = read_depth(path)
    assert np.array_equal(np.isnan(back), codes == 0)


def test_semseg_palette_png_round_trip(tmp_path):
    ids = np.arange(32 * 8, dtype=np.int64).reshape(8, 32) % 20
    ids[ids == 19] = 255
    path = tmp_path / "s.png"
    write_semseg(path, ids.astype(np.uint8))
    with Image.open(path) as image:
        assert image.mode == "P"
        flat = image.getpalette()
    colors = [tuple(flat[3 * i : 3 * i + 3]) for i in range(len(flat) // 3)]
    assert colors[:19] == list(CLASS_COLORS)
    assert colors[19] == (0, 0, 0) and colors[255] == (0, 0, 0)
    assert colors[10] == (70, 130, 180)  # sky, straight from the SPEC table
    assert np.array_equal(read_semseg(path), ids)


def test_semseg_reader_accepts_mode_l_and_rejects_bad_values(tmp_path):
    ids = np.full((4, 6), 7, dtype=np.uint8)
    Image.fromarray(ids, mode="L").save(tmp_path / "l.png")
    assert np.array_equal(read_semseg(tmp_path / "l.png"), ids)
    ids[0, 0] = 19
    Image.fromarray(ids, mode="L").save(tmp_path / "bad.png")
    with pytest.raises(DataFormatError, match=r"bad\.png.*\[19\]"):
        read_semseg(tmp_path / "bad.png")
    Image.fromarray(np.zeros((4, 6, 3), np.uint8)).save(tmp_path / "rgb.png")
    with pytest.raises(DataFormatError, match=r"rgb\.png: semseg image has mode 'RGB'"):
        read_semseg(tmp_path / "rgb.png")


def test_rgb_round_trip(tmp_path):
    rgb = np.empty((16, 48, 3), dtype=np.uint8)
    rgb[:] = (200, 40, 90)
    write_rgb(tmp_path / "x.jpg", rgb)
    back = read_rgb(tmp_path / "x.jpg")
    assert back.shape == (16, 48, 3) and back.dtype == np.uint8
    assert np.abs(back.astype(int) - rgb).max() <= 3  # JPEG is lossy, but a flat colour survives
    with Image.open(tmp_path / "x.jpg") as image:
        assert image.format == "JPEG" and image.mode == "RGB"


def test_readers_name_the_file(tmp_path):
    with pytest.raises(DataFormatError, match=r"nope\.png: missing file"):
        read_depth(tmp_path / "nope.png")
    (tmp_path / "junk.jpg").write_bytes(b"not an image")
    with pytest.raises(DataFormatError, match=r"junk\.jpg: cannot decode image"):
        read_rgb(tmp_path / "junk.jpg")
    Image.fromarray(np.zeros((4, 4), np.uint8), mode="L").convert("P").save(tmp_path / "p.png")
    with pytest.raises(DataFormatError, match=r"p\.png: depth image has mode 'P'"):
        read_depth(tmp_path / "p.png")
