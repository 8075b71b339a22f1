"""Training augmentation: exact crops, determinism, flips, padding, label safety, validation, normalisation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mtl.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Compose,
    PerspectiveCrop,
    PhotometricJitter,
    Target,
    WarpParams,
    homography,
    normalize_rgb,
)

H, W = 40, 60
# Class ids (255 = ignore) and depth (NaN = invalid), resampled as the semseg and depth tasks ask.
TARGETS = {"semseg": Target(255, torch.int64), "depth": Target(math.nan, torch.float32)}


def make_sample(seed: int = 0, height: int = H, width: int = W) -> dict:
    gen = torch.Generator().manual_seed(seed)
    depth = torch.rand(height, width, generator=gen) * 90 + 5
    depth[::4, ::3] = float("nan")
    semseg = torch.randint(0, 7, (height, width), generator=gen) * 2  # even ids only, plus some 255
    semseg[1::5, ::2] = 255
    return {
        "rgb": torch.randint(0, 256, (3, height, width), dtype=torch.uint8, generator=gen),
        "semseg": semseg,
        "depth": depth,
        "index": seed,
    }


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], torch.Tensor):
            assert a[key].dtype == b[key].dtype, key
            assert torch.equal(torch.nan_to_num(a[key], nan=-1), torch.nan_to_num(b[key], nan=-1)), key
        else:
            assert a[key] == b[key]


def test_homography_maps_the_four_points():
    true = torch.tensor([[1.1, 0.2, 3.0], [-0.1, 0.9, -2.0], [1e-3, -2e-3, 1.0]], dtype=torch.float64)
    src = torch.tensor([[0.0, 0.0], [10.0, 0.0], [10.0, 7.0], [0.0, 7.0]], dtype=torch.float64)
    hom = torch.cat([src, torch.ones(4, 1, dtype=torch.float64)], 1) @ true.T
    dst = hom[:, :2] / hom[:, 2:]
    torch.testing.assert_close(homography(src, dst), true)


def test_plain_crop_is_an_exact_slice():
    sample = make_sample()
    crop = PerspectiveCrop(16, targets=TARGETS)
    origins = set()
    for seed in range(8):
        out = crop(sample, gen(seed))
        # Recover the drawn offset from the same generator draw, then compare with the slice.
        params = crop.sample_params(H, W, gen(seed))
        x0, y0 = params.corners[0]
        assert float(x0).is_integer() and float(y0).is_integer()
        x0, y0 = int(x0), int(y0)
        origins.add((x0, y0))
        expected = {
            "rgb": sample["rgb"][:, y0 : y0 + 16, x0 : x0 + 16],
            "semseg": sample["semseg"][y0 : y0 + 16, x0 : x0 + 16],
            "depth": sample["depth"][y0 : y0 + 16, x0 : x0 + 16],
            "index": 0,
        }
        assert_same(out, expected)
        assert 0 <= x0 <= W - 16 and 0 <= y0 <= H - 16
    assert len(origins) > 4  # the position is random


def test_image_smaller_than_crop_is_padded_around_the_centre():
    sample = make_sample(height=10, width=12)
    out = PerspectiveCrop(16, targets=TARGETS)(sample, gen(0))
    top, left = 3, 2  # floor((16 − 10)/2), floor((16 − 12)/2)
    inner = (slice(top, top + 10), slice(left, left + 12))
    assert torch.equal(out["rgb"][:, inner[0], inner[1]], sample["rgb"])
    assert torch.equal(out["semseg"][inner], sample["semseg"])
    torch.testing.assert_close(out["depth"][inner], sample["depth"], equal_nan=True)
    border = torch.ones(16, 16, dtype=torch.bool)
    border[inner] = False
    assert (out["semseg"][border] == 255).all()
    assert out["depth"][border].isnan().all()
    assert (out["rgb"][:, border] == 0).all()


def test_quarter_turn_matches_rot90():
    sample = make_sample()
    x0, y0, s = 20, 10, 16
    # Output TL, TR, BR, BL taken from the source's BL, TL, TR, BR: a clockwise quarter turn.
    params = WarpParams(((x0, y0 + s), (x0, y0), (x0 + s, y0), (x0 + s, y0 + s)), flip=False)
    out = PerspectiveCrop(s, targets=TARGETS).apply(sample, params)
    assert torch.equal(out["rgb"], torch.rot90(sample["rgb"][:, y0 : y0 + s, x0 : x0 + s], -1, (1, 2)))
    assert torch.equal(out["semseg"], torch.rot90(sample["semseg"][y0 : y0 + s, x0 : x0 + s], -1, (0, 1)))


def test_same_generator_seed_same_result():
    crop = Compose([PerspectiveCrop(24, 0.7, 1.6, 20.0, 0.3, True, targets=TARGETS), PhotometricJitter(0.3, 0.3, 0.3, 0.05)])
    sample = make_sample()
    assert_same(crop(sample, gen(5)), crop(sample, gen(5)))
    assert not torch.equal(crop(sample, gen(5))["rgb"], crop(sample, gen(6))["rgb"])


def test_reflection_flips_every_modality():
    sample = make_sample()
    crop = PerspectiveCrop(24, 0.8, 1.3, 15.0, 0.2, reflect=True, targets=TARGETS)
    flips = set()
    for seed in range(6):
        params = crop.sample_params(H, W, gen(seed))
        flips.add(params.flip)
        plain = crop.apply(sample, WarpParams(params.corners, flip=False))
        mirrored = crop.apply(sample, WarpParams(params.corners, flip=True))
        for key in ("rgb", "semseg", "depth"):
            expected = torch.flip(plain[key], dims=(-1,))
            assert torch.equal(torch.nan_to_num(mirrored[key], nan=-1), torch.nan_to_num(expected, nan=-1)), key
    assert flips == {False, True}


def test_zoom_out_pads_with_ignore_and_invalid():
    sample = make_sample()
    sample["depth"] = torch.rand(H, W) + 10  # no invalid pixel in the input
    out = PerspectiveCrop(32, 3.0, 3.0, targets=TARGETS)(sample, gen(0))  # a 96-px region from a 60×40 image
    padded = out["depth"].isnan()  # the input has no invalid depth: every NaN is padding
    assert 0 < padded.sum() < 32 * 32
    assert (out["semseg"][padded] == 255).all()
    assert (out["rgb"][:, padded] == 0).all()
    assert (out["semseg"][~padded] != 255).any()


def test_region_off_the_image_is_all_padding():
    params = WarpParams(((100.0, 50.0), (116.0, 50.0), (116.0, 66.0), (100.0, 66.0)), flip=False)
    out = PerspectiveCrop(16, targets=TARGETS).apply(make_sample(), params)
    assert (out["semseg"] == 255).all() and out["depth"].isnan().all() and (out["rgb"] == 0).all()


def test_nearest_keeps_labels_and_depths_shapes_and_dtypes():
    sample = make_sample()
    out = PerspectiveCrop(32, 0.6, 2.0, 40.0, 0.45, True, targets=TARGETS)(sample, gen(3))
    assert out["rgb"].shape == (3, 32, 32) and out["rgb"].dtype == torch.uint8
    assert out["semseg"].shape == (32, 32) and out["semseg"].dtype == torch.int64
    assert out["depth"].shape == (32, 32) and out["depth"].dtype == torch.float32
    assert out["index"] == 0
    assert set(out["semseg"].unique().tolist()) <= set(sample["semseg"].unique().tolist())
    depths = out["depth"][~out["depth"].isnan()]
    assert len(depths) > 0 and np.isin(depths.numpy(), sample["depth"].numpy()).all()


@pytest.mark.parametrize("tilt", [46.0, -1.0])
def test_tilt_validation_names_the_flag(tilt):
    with pytest.raises(ValueError, match="--aug_geom_tilt_max_deg must lie in \\[0, 45\\]"):
        PerspectiveCrop(16, tilt_max_deg=tilt, targets=TARGETS)


def test_other_validation_errors():
    with pytest.raises(ValueError, match="--aug_geom_scale_min and --aug_geom_scale_max"):
        PerspectiveCrop(16, scale_min=1.5, scale_max=1.0, targets=TARGETS)
    with pytest.raises(ValueError, match="--aug_geom_wiggle_max_ratio"):
        PerspectiveCrop(16, wiggle_max_ratio=0.5, targets=TARGETS)
    with pytest.raises(ValueError, match="--aug_input_crop_size"):
        PerspectiveCrop(0, targets=TARGETS)
    bad = make_sample()
    bad["semseg"] = bad["semseg"].to(torch.uint8)
    with pytest.raises(ValueError, match="sample 'semseg' must be a torch.int64 tensor"):
        PerspectiveCrop(16, targets=TARGETS)(bad, gen(0))


def test_normalize_rgb_single_and_batch():
    rgb = torch.randint(0, 256, (2, 3, 4, 5), dtype=torch.uint8)
    mean = np.array(IMAGENET_MEAN).reshape(3, 1, 1) * 255
    std = np.array(IMAGENET_STD).reshape(3, 1, 1) * 255
    expected = (rgb.numpy().astype(np.float64) - mean) / std
    out = normalize_rgb(rgb)
    assert out.dtype == torch.float32
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(normalize_rgb(rgb[1]).numpy(), expected[1], rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="3×H×W or B×3×H×W"):
        normalize_rgb(torch.zeros(4, 5, dtype=torch.uint8))


def test_photometric_off_by_default_and_brightness_formula():
    sample = make_sample()
    assert PhotometricJitter()(sample, gen(0))["rgb"] is sample["rgb"]
    out = PhotometricJitter(brightness=0.4)(sample, gen(1))
    factor = 0.6 + torch.rand(4, generator=gen(1), dtype=torch.float64)[0].item() * 0.8
    expected = np.clip(np.round(sample["rgb"].numpy() * factor), 0, 255)
    assert np.abs(out["rgb"].numpy().astype(int) - expected).max() <= 1  # float32 vs float64 rounding
    assert torch.equal(out["semseg"], sample["semseg"])


def test_photometric_colour_jitter_keeps_grey_grey():
    grey = make_sample()
    grey["rgb"] = grey["rgb"][:1].expand(3, H, W).clone()
    out = PhotometricJitter(saturation=0.9, hue=0.5)(grey, gen(2))["rgb"].int()
    assert (out.max(0).values - out.min(0).values).max() <= 1
    assert (out[0] - grey["rgb"][0].int()).abs().max() <= 1
    coloured = make_sample()
    shifted = PhotometricJitter(hue=0.5)(coloured, gen(2))["rgb"]
    assert (shifted.int() - coloured["rgb"].int()).abs().max() > 20
    with pytest.raises(ValueError, match="--aug_photometric: hue must lie in \\[0, 0.5\\]"):
        PhotometricJitter(hue=0.6)


def test_rotation_keeps_the_centre_pixel_for_a_centred_region():
    # With the region as large as the image, the position is forced to the centre; any rotation
    # about that centre must leave the centre pixel in place.
    sample = make_sample(height=33, width=33)
    out = PerspectiveCrop(33, tilt_max_deg=45.0, targets=TARGETS)(sample, gen(4))
    assert torch.equal(out["semseg"][16, 16], sample["semseg"][16, 16])
    assert math.isclose(out["depth"][16, 16], sample["depth"][16, 16]) or (
        out["depth"][16, 16].isnan() and sample["depth"][16, 16].isnan()
    )
