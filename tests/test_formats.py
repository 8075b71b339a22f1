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


def read_depth_via_formula(codes: np.ndarray) -> np.ndarray:
    """Codes → float64 metres by the SPEC's decoding formula (NaN for 0), independently of decode_depth."""
    return np.where(codes == 0, np.nan, np.vectorize(depth_of_code)(codes.astype(np.float64)))


EPS = 1e-4  # the sliver below each code boundary that still maps to the code (mtl.data.formats.DEPTH_CODE_EPS)


@pytest.mark.parametrize("policy", ["invalidate", "clamp"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_every_code_re_encodes_to_itself(policy, dtype):
    """SPEC §2 "Round trip": encode(decode(v)) = v for all 255 valid codes, whatever float width holds the depth."""
    codes = np.arange(1, 256, dtype=np.uint8)
    exact = np.array([depth_of_code(float(v)) for v in codes])  # float64, independent of decode_depth
    assert np.array_equal(encode_depth(exact.astype(dtype), policy), codes)
    assert np.array_equal(encode_depth(decode_depth(codes).astype(dtype), policy), codes)
    # the literal formula (no ε) drops about half of the float32-decoded codes by one: the bug this guards
    z32 = decode_depth(codes).astype(np.float64)
    literal = np.trunc(1.0 + 254.0 * (1.0 / z32 - D_MIN) / (D_MAX - D_MIN)).astype(int)
    assert 100 < np.sum(literal == codes.astype(int) - 1) < 155


def test_all_256_codes_round_trip_through_png(tmp_path):
    codes = np.arange(256, dtype=np.uint8).reshape(8, 32)
    write_depth(tmp_path / "gt.png", read_depth_via_formula(codes), "invalidate")
    assert np.array_equal(np.asarray(Image.open(tmp_path / "gt.png")), codes)
    back = read_depth(tmp_path / "gt.png")
    assert np.array_equal(np.isnan(back), codes == 0)
    write_depth(tmp_path / "gt2.png", back, "invalidate")  # float32 metres, NaN = invalid
    assert np.array_equal(np.asarray(Image.open(tmp_path / "gt2.png")), codes)
    write_depth(tmp_path / "pred.png", np.where(np.isnan(back), 300.0, back), "clamp")  # 0 → 1 under clamp
    assert np.array_equal(np.asarray(Image.open(tmp_path / "pred.png")), np.maximum(codes, 1))


@pytest.mark.parametrize("policy", ["invalidate", "clamp"])
def test_encode_truncates_at_code_boundaries(policy):
    """Depths just nearer and just farther than each boundary land where truncation puts them, except in the
    ε-sliver just below an integer v, which belongs to the code above."""
    codes = np.arange(2, 256)
    for dtype in (np.float64, np.float32):
        # Just nearer than the boundary (v a little above k) → k; well inside the code farther away → k − 1.
        assert np.array_equal(encode_depth(np.array([depth_of_code(k + 1e-6) for k in codes], dtype), policy), codes)
        assert np.array_equal(encode_depth(np.array([depth_of_code(k - 2e-3) for k in codes], dtype), policy), codes - 1)
        # Half-way between codes: rounding would give k + 1, truncation keeps k (k = 255 has no upper half).
        half = np.array([depth_of_code(k + 0.5) for k in codes[:-1]], dtype)
        assert np.array_equal(encode_depth(half, policy), codes[:-1])
    # float64 only (float32 cannot place a depth this precisely): v just below k, outside the sliver → k − 1;
    # inside the sliver → k.
    assert np.array_equal(encode_depth(np.array([depth_of_code(k - 2 * EPS) for k in codes]), policy), codes - 1)
    assert np.array_equal(encode_depth(np.array([depth_of_code(k - EPS / 2) for k in codes]), policy), codes)
    assert np.array_equal(encode_depth(np.array([depth_of_code(k - 1e-9) for k in codes]), policy), codes)


def test_out_of_range_depth_per_policy():
    # beyond 300 m / nearer than 4 m by more than the sliver (v = 1 − 3.4e-4, v = 255 + 2.6e-3)
    z = np.array([300.0 * (1 + 1e-4), 1000.0, np.inf, 4.0 * (1 - 1e-5), 1.0, 300.0, 4.0, 0.0])
    assert encode_depth(z, "invalidate").tolist() == [0, 0, 0, 0, 0, 1, 255, 0]
    assert encode_depth(z, "clamp").tolist() == [1, 1, 1, 255, 255, 1, 255, 255]
    assert encode_depth(np.array([np.nan, 10.0]), "invalidate")[0] == 0
    # inside the sliver at the ends of the range: still 300 m and 4 m (float rounding of the end depths)
    z = np.array([300.0 * (1 + 1e-6), 4.0 * (1 - 1e-8), 3.9999999999999996])
    assert encode_depth(z, "invalidate").tolist() == [1, 255, 255]
    assert encode_depth(z, "clamp").tolist() == [1, 255, 255]


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


def test_grading_re_encoded_ground_truth_scores_100(tmp_path, capsys):
    """`mtl grade` of predictions that are the ground truth decoded and re-encoded (clamp policy) gives
    SI-logRMSE 0 and grader 100 exactly; the old literal truncation moved half of the codes by one."""
    import json
    import zipfile

    from mtl.cli.main import main
    from mtl.data.formats import write_semseg

    rng = np.random.default_rng(0)
    gt = tmp_path / "gt"
    (gt / "semseg").mkdir(parents=True)
    (gt / "depth").mkdir()
    h, w = 16, 32
    for i in range(3):
        ids = rng.integers(0, 19, size=(h, w)).astype(np.uint8)
        ids.flat[:19] = np.arange(19)  # every class in every image: mIoU is 100 only if all 19 are present
        ids[rng.random((h, w)) < 0.1] = 255
        depth = np.exp(rng.uniform(np.log(3.0), np.log(400.0), size=(h, w)))  # some out of range → invalid
        depth.flat[:256:7] = [depth_of_code(float(v)) for v in range(1, 256, 7)]  # exact code depths too
        depth[rng.random((h, w)) < 0.05] = np.nan
        write_semseg(gt / "semseg" / f"{i}.png", ids)
        write_depth(gt / "depth" / f"{i}.png", depth, "invalidate")
    pred = tmp_path / "pred"
    (pred / "predictions" / "semseg").mkdir(parents=True)
    (pred / "predictions" / "depth").mkdir()
    all_codes = set()
    for i in range(3):
        ids = read_semseg(gt / "semseg" / f"{i}.png")
        write_semseg(pred / "predictions" / "semseg" / f"{i}.png", np.where(ids == 255, 0, ids))
        depth = read_depth(gt / "depth" / f"{i}.png")  # float32 metres, NaN where invalid
        write_depth(pred / "predictions" / "depth" / f"{i}.png", np.nan_to_num(depth, nan=20.0), "clamp")
        codes = np.asarray(Image.open(gt / "depth" / f"{i}.png"))
        again = np.asarray(Image.open(pred / "predictions" / "depth" / f"{i}.png"))
        assert np.array_equal(again[codes > 0], codes[codes > 0])
        all_codes |= set(np.unique(codes[codes > 0]).tolist())
    assert len(all_codes) > 200  # the test covers most codes, not a lucky few
    submission = tmp_path / "submission.zip"
    with zipfile.ZipFile(submission, "w") as zf:
        for path in sorted((pred / "predictions").rglob("*.png")):
            zf.write(path, path.relative_to(pred).as_posix())
    rc = main(["grade", str(submission), "--gt", str(gt)])
    out = capsys.readouterr().out
    assert rc == 0
    result = json.loads(out)
    assert result["si_log_rmse"] == 0.0
    assert result["miou"] == 100.0
    assert result["grader"] == 100.0
