"""Depth units, task losses and task weighting, checked against independent NumPy computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mtl.data.formats import ZMAX, ZMIN
from mtl.datasets import DATASETS
from mtl.losses import DEPTH_LOSSES, get_depth_loss, semseg_loss, silog_loss
from mtl.tasks import TASKS
from mtl.tasks.depth import DEPTH_UNITS, LOSSES, make_depth_unit
from mtl.weighting import WEIGHTINGS
from mtl.weighting.base import StepContext

MEAN, STD = 27.0727, 29.1264
NAN = float("nan")
INFO = DATASETS["miniscapes"].info


def unit(name: str):
    return make_depth_unit(name, MEAN, STD, (ZMIN, ZMAX))


def build_weighting(name, tasks, weights):
    return WEIGHTINGS[name](tasks, weights)


def test_depth_task_offers_every_depth_loss():
    assert set(LOSSES) == set(DEPTH_LOSSES)


# --- depth units ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(DEPTH_UNITS))
def test_unit_round_trip_and_nan(name):
    u = unit(name)
    z = torch.tensor([ZMIN, 5.0, 27.0, 99.5, 250.0, ZMAX, NAN])
    encoded = u.encode(z)
    assert torch.isnan(encoded[-1])
    back = u.decode(encoded[:-1])
    assert back.dtype == torch.float32
    np.testing.assert_allclose(back.numpy(), z[:-1].numpy(), rtol=1e-5)


def test_unit_encodings_match_their_formulas():
    z = np.array([4.0, 10.0, 300.0])
    np.testing.assert_allclose(unit("normalized").encode(torch.tensor(z)).numpy(), (z - MEAN) / STD)
    np.testing.assert_allclose(unit("inverse").encode(torch.tensor(z)).numpy(), 4.0 / z)
    np.testing.assert_allclose(unit("metric").encode(torch.tensor(z)).numpy(), z)
    # log: standardised with the log-normal law whose mean and std are the dataset's (in metres).
    log = unit("log")
    mu, sigma = log.log_mean, log.log_std
    assert math.exp(mu + sigma**2 / 2) == pytest.approx(MEAN)
    assert math.sqrt(math.exp(sigma**2) - 1) * MEAN == pytest.approx(STD)
    np.testing.assert_allclose(log.encode(torch.tensor(z)).numpy(), (np.log(z) - mu) / sigma)


def test_unit_ranges():
    assert unit("normalized").range == pytest.approx(((4 - MEAN) / STD, (300 - MEAN) / STD))
    assert unit("inverse").range == pytest.approx((4 / 300, 1.0))
    assert unit("metric").range == pytest.approx((4.0, 300.0))
    log = unit("log")
    assert log.range == pytest.approx(((math.log(4) - log.log_mean) / log.log_std, (math.log(300) - log.log_mean) / log.log_std))


@pytest.mark.parametrize("name", sorted(DEPTH_UNITS))
def test_decode_is_clamped_and_finite(name):
    u = unit(name)
    extreme = torch.tensor([-1e30, -5.0, 0.0, 5.0, 1e30, math.inf, -math.inf], dtype=torch.float16)
    metres = u.decode(extreme)
    assert metres.dtype == torch.float32
    assert torch.isfinite(metres).all()
    assert metres.min() >= 2.0 * (1 - 1e-5) and metres.max() <= 600.0 * (1 + 1e-5)


def test_unknown_unit_and_bad_statistics():
    with pytest.raises(ValueError, match="unknown depth unit 'disparity'"):
        make_depth_unit("disparity", MEAN, STD, (ZMIN, ZMAX))
    with pytest.raises(ValueError, match="std must be a positive"):
        make_depth_unit("normalized", MEAN, 0.0, (ZMIN, ZMAX))


# --- depth losses -------------------------------------------------------------------------------------

# Three 2×3 images: some invalid pixels (NaN target or masked out) and one image without any valid pixel.
PRED = np.array(
    [
        [[0.5, -0.2, 1.0], [2.0, 0.1, -0.7]],
        [[1.5, 0.3, 0.2], [-0.4, 0.9, 3.0]],
        [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]],
    ]
)
TARGET = np.array(
    [
        [[0.4, NAN, 0.0], [1.0, 0.2, -0.6]],
        [[1.0, 0.3, NAN], [0.5, 0.8, 1.0]],
        [[NAN, NAN, NAN], [NAN, NAN, NAN]],
    ]
)
VALID = ~np.isnan(TARGET)
VALID[1, 1, 2] = False  # masked out although the target is finite


def reference(per_pixel, per_image=np.mean, pred=PRED) -> float:
    """Independent reduction: per image over valid pixels, then over images that have any."""
    values = []
    for p, t, v in zip(pred, TARGET, VALID):
        if v.any():
            values.append(per_image(per_pixel(p[v], t[v])))
    return float(np.mean(values))


def berhu_reference(p, t):
    r = np.abs(p - t)
    c = 0.2 * r.max()
    return np.where(r <= c, r, (r**2 + c**2) / (2 * c))


def silog_reference(log_metres):
    def per_image(values):
        return 10 * np.sqrt(np.var(values) + 0.15 * np.mean(values) ** 2)

    return lambda p, t: log_metres(t) - log_metres(p), per_image


def run_loss(name, u, pred=PRED, valid=VALID):
    p = torch.tensor(pred, dtype=torch.float32, requires_grad=True)
    loss = get_depth_loss(name)(p[:, None], torch.tensor(TARGET, dtype=torch.float32), torch.tensor(valid), u)
    return loss, p


@pytest.mark.parametrize(
    "name, per_pixel",
    [
        ("l2", lambda p, t: (p - t) ** 2),
        ("l1", lambda p, t: np.abs(p - t)),
        ("berhu", berhu_reference),
    ],
)
def test_pixel_losses_against_reference(name, per_pixel):
    loss, p = run_loss(name, unit("normalized"))
    assert loss.item() == pytest.approx(reference(per_pixel), rel=1e-5)
    loss.backward()
    assert torch.isfinite(p.grad).all()
    assert (p.grad[~torch.tensor(VALID)] == 0).all()


def test_silog_against_reference_normalized_unit():
    def log_metres(x):
        return np.log(np.clip(x * STD + MEAN, 2.0, 600.0))

    per_pixel, per_image = silog_reference(log_metres)
    loss, p = run_loss("silog", unit("normalized"))
    assert loss.item() == pytest.approx(reference(per_pixel, per_image), rel=1e-5)
    loss.backward()
    assert torch.isfinite(p.grad).all()


def test_silog_log_unit_uses_unclamped_log_metres():
    u = unit("log")
    pred = PRED.copy()
    pred[0, 0, 0] = -9.0  # far below the decode range: the loss must still see (and push) it
    per_pixel, per_image = silog_reference(lambda x: x * u.log_std + u.log_mean)
    loss, p = run_loss("silog", u, pred=pred)
    assert loss.item() == pytest.approx(reference(per_pixel, per_image, pred), rel=1e-5)
    loss.backward()
    assert p.grad[0, 0, 0] != 0


def test_silog_is_invariant_to_a_global_scale_when_lambda_is_zero():
    u = unit("log")
    p = torch.randn(2, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    t = torch.randn(2, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    shift = math.log(3.0) / u.log_std  # ×3 in metres is a constant shift in log units
    a = get_depth_loss("silog")(p, t, None, u)
    b = DEPTH_LOSSES["silog"](p + shift, t, None, u)
    assert a.item() != pytest.approx(b.item())  # λ = 0.15 penalises the scale
    assert silog_loss(p, t, None, u, lam=0.0).item() == pytest.approx(silog_loss(p + shift, t, None, u, lam=0.0).item(), rel=1e-4)


@pytest.mark.parametrize("name", sorted(DEPTH_LOSSES))
@pytest.mark.parametrize("unit_name", sorted(DEPTH_UNITS))
def test_no_nan_from_invalid_pixels(name, unit_name):
    u = unit(unit_name)
    target = u.encode(torch.tensor(np.where(np.isnan(TARGET), NAN, np.abs(TARGET) * 50 + 5), dtype=torch.float32))
    pred = torch.tensor(PRED, dtype=torch.float32)
    pred[0, 0, 1] = math.inf  # garbage where the target is invalid must not leak
    pred.requires_grad_(True)
    loss = DEPTH_LOSSES[name](pred, target, None, u)
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(pred.grad).all()
    assert pred.grad[0, 0, 1] == 0


@pytest.mark.parametrize("name", sorted(DEPTH_LOSSES))
def test_batch_without_valid_pixels_gives_zero_with_grad(name):
    pred = torch.randn(2, 1, 3, 3, requires_grad=True)
    target = torch.full((2, 3, 3), NAN)
    loss = DEPTH_LOSSES[name](pred, target, None, unit("normalized"))
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    assert torch.equal(pred.grad, torch.zeros_like(pred))


def test_perfect_prediction_has_finite_gradients():
    t = torch.rand(2, 1, 4, 4)
    for name in DEPTH_LOSSES:
        p = t.clone().requires_grad_(True)
        DEPTH_LOSSES[name](p, t, None, unit("normalized")).backward()
        assert torch.isfinite(p.grad).all(), name


def test_depth_loss_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="differ in size"):
        DEPTH_LOSSES["l1"](torch.zeros(2, 1, 4, 4), torch.zeros(2, 4, 5), None, unit("normalized"))
    with pytest.raises(ValueError, match="unknown depth loss 'l3'"):
        get_depth_loss("l3")


# --- semseg loss ----------------------------------------------------------------------------------------


def test_cross_entropy_ignores_255():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 19, 3, 4, generator=gen, dtype=torch.float64)
    labels = torch.randint(0, 19, (2, 3, 4), generator=gen)
    labels[0, 0, :] = 255
    labels[1, 2, 1] = 255
    log_prob = logits.numpy() - np.log(np.exp(logits.numpy()).sum(1, keepdims=True))
    kept = [-log_prob[b, c, y, x] for b, y, x in np.ndindex(2, 3, 4) if (c := int(labels[b, y, x])) != 255]
    assert semseg_loss(logits, labels).item() == pytest.approx(np.mean(kept), rel=1e-6)


def test_cross_entropy_all_ignored_is_zero_with_grad():
    logits = torch.randn(1, 19, 2, 2, requires_grad=True)
    loss = semseg_loss(logits, torch.full((1, 2, 2), 255))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.equal(logits.grad, torch.zeros_like(logits))


# --- deep supervision -------------------------------------------------------------------------------------


def test_task_loss_list_is_mean_of_elements():
    gen = torch.Generator().manual_seed(0)
    depth_m = torch.rand(2, 4, 4, generator=gen) * 100 + 4
    depth_m[0, 0] = NAN
    u = unit("normalized")
    outputs = [torch.randn(2, 1, 4, 4, generator=gen) for _ in range(2)]
    depth = TASKS["depth"](INFO, unit="normalized", loss="l1", stats=(MEAN, STD))
    loss = depth.loss(outputs, depth_m)
    target = (depth_m - MEAN) / STD
    expected = [DEPTH_LOSSES["l1"](o, target, torch.isfinite(target), u) for o in outputs]
    assert loss.item() == pytest.approx((expected[0].item() + expected[1].item()) / 2)
    single = depth.loss(outputs[1], depth_m)
    assert single.item() == pytest.approx(expected[1].item())


def test_task_loss_semseg_and_size_check():
    logits = torch.randn(1, 19, 4, 4)
    labels = torch.randint(0, 19, (1, 4, 4))
    semseg = TASKS["semseg"](INFO)
    loss = semseg.loss(logits, labels)
    assert loss.item() == pytest.approx(semseg_loss(logits, labels).item())
    with pytest.raises(ValueError, match="upsample predictions"):
        semseg.loss(torch.randn(1, 19, 2, 2), labels)


# --- weighting ----------------------------------------------------------------------------------------------


def test_fixed_weighting():
    losses = {"semseg": torch.tensor(2.0), "depth": torch.tensor(0.6)}
    w = build_weighting("fixed", ["semseg", "depth"], {"semseg": 0.5, "depth": 0.5})
    assert w.loss(losses).item() == pytest.approx(0.5 * 2.0 + 0.5 * 0.6)
    assert {t: float(v) for t, v in w.weights.items()} == {"semseg": 0.5, "depth": 0.5}
    uneven = build_weighting("fixed", ["semseg", "depth"], {"semseg": 0.55, "depth": 0.45})
    assert uneven.loss(losses).item() == pytest.approx(0.55 * 2.0 + 0.45 * 0.6)


def test_fixed_weighting_single_task():
    w = build_weighting("fixed", ["depth"], {"semseg": 0.5, "depth": 0.5})
    assert w.loss({"depth": torch.tensor(0.8)}).item() == pytest.approx(0.4)
    with pytest.raises(ValueError, match=r"expected losses for tasks \['depth'\]"):
        w.loss({"depth": torch.tensor(0.8), "semseg": torch.tensor(1.0)})


def test_weighting_errors_name_the_flag():
    with pytest.raises(ValueError, match="--loss_weight_depth"):
        build_weighting("fixed", ["semseg", "depth"], {"semseg": 0.5})
    with pytest.raises(ValueError, match="--loss_weight_semseg must be > 0"):
        build_weighting("uncertainty", ["semseg"], {"semseg": 0.0})
    with pytest.raises(ValueError, match="unknown loss weighting 'no_such_method'"):
        build_weighting("no_such_method", ["semseg"], {"semseg": 0.5})


def test_uncertainty_weighting_formula_and_training():
    w = build_weighting("uncertainty", ["semseg", "depth"], {"semseg": 0.5, "depth": 0.25})
    assert float(w.weights["semseg"]) == pytest.approx(0.5) and float(w.weights["depth"]) == pytest.approx(0.25)
    s_depth = math.log(2.0)  # ½·exp(−s) = 0.25
    losses = {"semseg": torch.tensor(3.0), "depth": torch.tensor(0.5)}
    expected = 0.5 * 3.0 + 0.0 + 0.5 * math.exp(-s_depth) * 0.5 + 0.5 * s_depth
    assert w.loss(losses).item() == pytest.approx(expected)

    # The minimum of ½·exp(−s)·L + ½·s lies at s = log L: gradient descent must get there.
    optimizer = torch.optim.SGD(w.parameters().values(), lr=0.5)
    for _ in range(300):
        optimizer.zero_grad()
        w.backward(losses, [], lambda total: total.backward(), StepContext())
        optimizer.step()
    assert w.log_vars["semseg"].item() == pytest.approx(math.log(3.0), abs=1e-3)
    assert w.log_vars["depth"].item() == pytest.approx(math.log(0.5), abs=1e-3)
    assert float(w.weights["semseg"]) == pytest.approx(0.5 / 3.0, rel=1e-2)
    assert set(w.parameters()) == {"semseg", "depth"}
