"""Weighting methods against their defining properties, on small problems whose answer is known in closed form.

The gradient methods are fed losses L_t = g_t·θ + ℓ_t, linear in one shared parameter vector θ (at θ = 0), so
that the task gradients are the chosen vectors g_t and the loss values the chosen ℓ_t; the update a method
writes into θ.grad is then compared with the formula. On the representation the same losses read a cut
z = θ·1 of the graph, so both places must give the same update.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mtl.weighting import WEIGHTINGS
from mtl.weighting.base import StepContext

GRADIENT_METHODS = ["mgda", "pcgrad", "graddrop", "gradvac", "cagrad", "imtl", "nash_mtl", "aligned_mtl", "db_mtl"]


def make(name: str, tasks, **kw):
    cls = WEIGHTINGS[name]
    if name in ("fixed", "uncertainty"):
        return cls(tasks, {t: 0.5 for t in tasks})
    return cls(tasks, **kw)


def update(method, grads, losses=None, on: str = "parameters") -> torch.Tensor:
    """θ.grad after one step of ``method`` on the losses g_t·θ + ℓ_t (fp64 inputs, fp32 θ)."""
    grads = torch.as_tensor(grads, dtype=torch.float32)
    k, d = grads.shape
    losses = torch.ones(k) if losses is None else torch.as_tensor(losses, dtype=torch.float32)
    theta = torch.zeros(d, requires_grad=True)
    z = theta * 1.0 if on == "representation" else theta
    values = {t: (grads[i] * z).sum() + losses[i] for i, t in enumerate(method.tasks)}  # no matmul: autocast-proof
    method.backward(values, [theta], lambda total: total.backward(), StepContext(parameters=[theta], representation=[z]))
    return theta.grad.detach().double()


def tasks(k: int) -> list[str]:
    return [f"t{i}" for i in range(k)]


def random_grads(k: int, d: int = 7, seed: int = 0) -> torch.Tensor:
    return torch.randn(k, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# --- PCGrad -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("on", ["parameters", "representation"])
def test_pcgrad_projects_two_conflicting_gradients(on):
    g1, g2 = torch.tensor([1.0, 0.0]), torch.tensor([-1.0, 1.0])
    p1 = g1 - (g1 @ g2) / (g2 @ g2) * g2  # (0.5, 0.5): onto g2's normal plane
    p2 = g2 - (g2 @ g1) / (g1 @ g1) * g1  # (0, 1)
    d = update(make("pcgrad", tasks(2), on=on), torch.stack([g1, g2]), on=on)
    torch.testing.assert_close(d, (p1 + p2).double())
    assert float(p1 @ g2) == pytest.approx(0) and float(p2 @ g1) == pytest.approx(0)
    # No conflict: nothing is projected.
    same = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    torch.testing.assert_close(update(make("pcgrad", tasks(2), on=on), same, on=on), same.sum(0).double())


def test_pcgrad_three_tasks_follow_the_random_order_of_the_paper():
    g = random_grads(3, 4, seed=3)
    g[2] = -g[0] + 0.1 * g[1]  # make conflicts certain
    method = make("pcgrad", tasks(3), seed=7)
    d = update(method, g)
    order = torch.Generator().manual_seed(7)
    expected = []
    for i in range(3):
        gi = g[i].clone()
        for j in torch.randperm(3, generator=order).tolist():
            if j != i and gi @ g[j] < 0:
                gi = gi - (gi @ g[j]) / (g[j] @ g[j]) * g[j]
        expected.append(gi)
    torch.testing.assert_close(d, sum(expected), atol=1e-5, rtol=1e-5)


# --- MGDA ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("on", ["parameters", "representation"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mgda_two_tasks_is_the_closed_form_min_norm_point(on, seed):
    g1, g2 = random_grads(2, 5, seed)
    alpha = float(((g2 - g1) @ g2) / ((g1 - g2) @ (g1 - g2)))
    alpha = min(max(alpha, 0.0), 1.0)  # Sener & Koltun's 2-task solution (weight of g1)
    d = update(make("mgda", tasks(2), on=on), torch.stack([g1, g2]), on=on)
    torch.testing.assert_close(d, alpha * g1 + (1 - alpha) * g2, atol=1e-5, rtol=1e-4)


def test_mgda_clips_to_a_vertex_when_one_gradient_dominates():
    g = torch.tensor([[1.0, 0.0], [3.0, 0.5]])  # g1 lies "inside": the min-norm point is g1 itself
    torch.testing.assert_close(update(make("mgda", tasks(2)), g), g[0].double(), atol=1e-6, rtol=1e-6)


def test_mgda_three_tasks_beats_every_point_of_a_fine_simplex_grid():
    g = random_grads(3, 6, seed=4)
    method = make("mgda", tasks(3), on="parameters")
    d = update(method, g)
    steps = 200
    best = min(
        float(((a / steps) * g[0] + (b / steps) * g[1] + ((steps - a - b) / steps) * g[2]).norm())
        for a in range(steps + 1)
        for b in range(steps + 1 - a)
    )
    assert float(d.norm()) <= best + 1e-6
    alpha = method.coefficients_used
    assert float(alpha.sum()) == pytest.approx(1.0) and float(alpha.min()) >= 0
    # Optimality (KKT): every task's gradient has at least ‖d‖² along d, exactly where its weight is positive.
    dots = (g @ d.float().double()).numpy()
    assert np.all(dots >= float(d @ d) - 1e-5)
    assert np.allclose(dots[alpha.numpy() > 1e-6], float(d @ d), atol=1e-5)


def test_mgda_normalization_divides_before_solving():
    g = torch.tensor([[4.0, 0.0], [0.0, 1.0]])
    method = make("mgda", tasks(2), normalization="l2")
    d = update(method, g)
    # Unit gradients (1,0), (0,1): α = (½, ½), applied to the raw gradients.
    torch.testing.assert_close(d, torch.tensor([2.0, 0.5], dtype=torch.float64), atol=1e-6, rtol=1e-6)


# --- CAGrad -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("on", ["parameters", "representation"])
@pytest.mark.parametrize("rescale", [0, 1, 2])
def test_cagrad_with_c_zero_is_the_average_gradient(on, rescale):
    g = random_grads(3, 5, seed=5)
    d = update(make("cagrad", tasks(3), c=0.0, rescale=rescale, on=on), g, on=on)
    torch.testing.assert_close(d, g.mean(0), atol=1e-6, rtol=1e-6)


def test_cagrad_update_lies_on_its_ball_and_solves_the_dual():
    g = random_grads(2, 5, seed=6)
    g[1] = -0.8 * g[0] + 0.3 * g[1]
    c = 0.4
    method = make("cagrad", tasks(2), c=c, rescale=0)
    d = update(method, g)
    g0 = g.mean(0)
    assert float((d - g0).norm()) == pytest.approx(c * float(g0.norm()), rel=1e-5)  # on the ball's surface
    # The dual weight w minimises F(w) = g_w·g0 + c‖g0‖‖g_w‖ over the simplex (checked on a grid).
    extra = method.coefficients_used - 0.5  # c = 1/K + λ·w
    w = float(extra[0] / extra.sum())

    def dual(v: float) -> float:
        gw = v * g[0] + (1 - v) * g[1]
        return float(gw @ g0 + c * g0.norm() * gw.norm())

    assert dual(w) <= min(dual(v / 1000) for v in range(1001)) + 1e-7
    # Its worst task improves at least as much as under the plain average.
    assert float((g @ d).min()) >= float((g @ g0).min()) - 1e-9


# --- Nash-MTL, IMTL, Aligned-MTL ----------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [2, 3, 4])
def test_nash_mtl_weights_satisfy_the_bargaining_condition(k):
    g = random_grads(k, 9, seed=k)
    method = make("nash_mtl", tasks(k), max_norm=0.0)
    d = update(method, g)
    alpha = method.coefficients_used
    gram = g @ g.T
    assert bool((alpha > 0).all())
    np.testing.assert_allclose((gram @ alpha).numpy(), (1 / alpha).numpy(), rtol=1e-5)
    torch.testing.assert_close(d, alpha @ g, atol=1e-5, rtol=1e-5)


def test_nash_mtl_clips_the_shared_gradient_and_reuses_weights_between_updates():
    g = 10 * random_grads(2, 5, seed=1)
    method = make("nash_mtl", tasks(2), max_norm=0.5, update_every=2)
    d = update(method, g)
    assert float(d.norm()) == pytest.approx(0.5, rel=1e-5)
    alpha = method.alpha.clone()
    d2 = update(method, 2 * g)  # second step: no new solve, Σ α_t L_t, clipped
    assert torch.equal(method.alpha, alpha)
    torch.testing.assert_close(d2, 0.5 * (alpha @ g) / (alpha @ g).norm(), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("on", ["parameters", "representation"])
@pytest.mark.parametrize("k", [2, 3, 5])
def test_imtl_update_has_equal_projections_on_every_unit_gradient(on, k):
    g = random_grads(k, 8, seed=10 + k)
    method = make("imtl", tasks(k), mode="gradient", on=on)
    d = update(method, g, on=on)
    units = g / g.norm(dim=1, keepdim=True)
    projections = (units @ d).numpy()
    np.testing.assert_allclose(projections, projections[0], rtol=1e-4)
    assert float(method.coefficients_used.sum()) == pytest.approx(1.0)


def test_imtl_hybrid_scales_losses_and_learns_the_scales():
    g = random_grads(2, 4, seed=2)
    method = make("imtl", tasks(2))  # hybrid
    with torch.no_grad():
        method.log_scales["t0"].fill_(math.log(2.0))
    losses = torch.tensor([3.0, 0.5])
    d = update(method, g, losses)
    scaled = g * torch.tensor([[2.0], [1.0]], dtype=torch.float64)  # IMTL-G on e^s·∇L
    units = scaled / scaled.norm(dim=1, keepdim=True)
    projections = (units @ d).numpy()
    np.testing.assert_allclose(projections, projections[0], rtol=1e-4)
    # ∂/∂s (e^s·L − s) = e^s·L − 1
    assert float(method.log_scales["t0"].grad) == pytest.approx(2.0 * 3.0 - 1, rel=1e-6)
    assert float(method.log_scales["t1"].grad) == pytest.approx(1.0 * 0.5 - 1, rel=1e-6)


@pytest.mark.parametrize("on", ["parameters", "representation"])
def test_aligned_mtl_aligns_gradients_to_an_orthogonal_equal_norm_system(on):
    g = random_grads(3, 6, seed=8)
    method = make("aligned_mtl", tasks(3), on=on)
    d = update(method, g, on=on)
    from mtl.weighting.aligned_mtl import alignment_matrix

    b = torch.from_numpy(alignment_matrix((g @ g.T).numpy()))
    aligned = b.T @ g  # rows ĝ_t (Ĝ = G·B in column form)
    smallest = float(torch.linalg.eigvalsh(g @ g.T).min())
    torch.testing.assert_close(aligned @ aligned.T, smallest * torch.eye(3, dtype=torch.float64), atol=1e-8, rtol=1e-6)
    torch.testing.assert_close(d, aligned.sum(0), atol=1e-5, rtol=1e-5)


def authors_alignment(gram: np.ndarray, scale_mode: str) -> np.ndarray:
    """The authors' ProcrustesSolver (SamsungLabs/MTL code/optim/aligned/solver.py) written out on a Gram matrix:
    eigenvalues in descending order, ``median`` = torch.median (the lower middle one), B = V·√s·Λ^{-1/2}·Vᵀ."""
    values, basis = np.linalg.eigh(gram)
    order = np.argsort(values)[::-1]
    values, basis = values[order], basis[:, order]
    s = {"min": values[-1], "median": float(torch.median(torch.from_numpy(values))), "rmse": values.mean()}[scale_mode]
    return (basis * np.sqrt(s) / np.sqrt(values)) @ basis.T


@pytest.mark.parametrize("k", [2, 3, 4])
@pytest.mark.parametrize("scale", ["min", "median", "rmse"])
def test_aligned_mtl_equals_the_authors_solver_and_their_median(k, scale):
    from mtl.weighting.aligned_mtl import alignment_matrix

    g = random_grads(k, 8, seed=20 + k)
    gram = (g @ g.T).numpy()
    np.testing.assert_allclose(alignment_matrix(gram, scale), authors_alignment(gram, scale), rtol=1e-9, atol=1e-12)
    if k == 2:  # the lower of two eigenvalues: with two tasks the authors' median is the minimum, not the mean
        np.testing.assert_allclose(alignment_matrix(gram, "median"), alignment_matrix(gram, "min"), rtol=1e-12)


def test_cagrad_sum_scale_is_the_authors_times_the_number_of_tasks():
    g = random_grads(3, 6, seed=21)
    mean = update(make("cagrad", tasks(3), scale="mean"), g)
    total = update(make("cagrad", tasks(3), scale="sum"), g)
    torch.testing.assert_close(total, 3 * mean, rtol=1e-6, atol=1e-8)  # their overwrite_grad: newgrad * 3


def test_famo_clips_only_when_asked_as_the_reference_in_effect_does():
    """The reference's WeightMethod.backward clips before loss.backward(), right after zero_grad: no gradient of the
    step exists yet, so the update is not clipped — mtl's default. A positive --weighting_famo_max_norm clips the
    shared gradient after backward."""
    g = random_grads(2, 5, seed=22).float() * 10
    unclipped = update(make("famo", tasks(2)), g)
    assert unclipped.norm() > 1
    theta = torch.zeros(5, requires_grad=True)
    theta.grad = None  # optimizer.zero_grad()
    torch.nn.utils.clip_grad_norm_([theta], 1.0)  # their order: clip first ...
    ((g[0] * theta).sum() * 0.5 + (g[1] * theta).sum() * 0.5).backward()  # ... then backward, weights ½ at start
    torch.testing.assert_close(theta.grad.double(), unclipped, rtol=1e-6, atol=1e-7)
    clipped = update(make("famo", tasks(2), max_norm=1.0), g)
    assert clipped.norm() == pytest.approx(1.0, rel=1e-6)
    torch.testing.assert_close(clipped, unclipped / unclipped.norm(), rtol=1e-5, atol=1e-7)


# --- GradVac, GradDrop, DB-MTL --------------------------------------------------------------------------------------


def test_gradvac_raises_the_cosine_to_its_target_and_updates_the_target():
    g = torch.tensor([[1.0, 0.2], [-0.3, 1.0]], dtype=torch.float64)  # cosine ≈ −0.10
    method = make("gradvac", tasks(2), beta=0.25)
    method.targets[:] = 0.5
    d = update(method, g)
    cos = float(g[0] @ g[1] / (g[0].norm() * g[1].norm()))

    def vaccinated(gi, gj, target):
        phi = float(gi @ gj / (gi.norm() * gj.norm()))
        w = gi.norm() * (target * math.sqrt(1 - phi**2) - phi * math.sqrt(1 - target**2)) / (gj.norm() * math.sqrt(1 - target**2))
        return gi + w * gj

    g0, g1 = vaccinated(g[0], g[1], 0.5), vaccinated(g[1], g[0], 0.5)
    assert float(g0 @ g[1] / (g0.norm() * g[1].norm())) == pytest.approx(0.5)  # exactly the target cosine
    torch.testing.assert_close(d, g0 + g1, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(method.targets, torch.tensor([[0.5, 0.75 * 0.5 + 0.25 * cos], [0.75 * 0.5 + 0.25 * cos, 0.5]],
                                                            dtype=torch.float64))


def test_gradvac_with_zero_targets_is_pcgrad_on_two_tasks():
    g = torch.tensor([[1.0, 0.0], [-1.0, 1.0]])
    torch.testing.assert_close(update(make("gradvac", tasks(2)), g), torch.tensor([0.5, 1.5], dtype=torch.float64))


def test_graddrop_keeps_one_sign_per_element_with_the_purity_as_probability():
    g = torch.tensor([[1.0, -2.0, 3.0, 0.5], [2.0, 1.0, -1.0, 0.5], [0.5, 1.0, -1.0, -4.0]])
    method = make("graddrop", tasks(3), on="parameters", seed=3)
    d = update(method, g)
    purity = 0.5 * (1 + g.sum(0) / (g.abs().sum(0) + 1e-7))
    draw = torch.rand(4, generator=torch.Generator().manual_seed(3))
    keep = ((purity > draw) & (g > 0)) | ((purity < draw) & (g < 0))
    torch.testing.assert_close(d, (g * keep).sum(0).double())
    assert float(d[0]) == pytest.approx(3.5)  # all positive: P = 1, everything kept
    leaky = update(make("graddrop", tasks(3), on="parameters", leak=1.0), g)
    torch.testing.assert_close(leaky, g.sum(0).double())


def test_graddrop_on_the_representation_masks_per_feature_across_the_batch():
    # Features z (batch 2 × 3) with the losses Σ g_t ⊙ z: the batch-summed signed gradient decides the mask.
    g = torch.tensor([[[1.0, -1.0, 2.0], [1.0, 3.0, -1.0]], [[-1.0, 1.0, 1.0], [-2.0, 1.0, 1.0]]])
    theta = torch.ones(2, 3, requires_grad=True)
    z = theta * 1.0
    method = make("graddrop", tasks(2), seed=5)
    losses = {t: (g[k] * z).sum() for k, t in enumerate(method.tasks)}
    method.backward(losses, [theta], lambda total: total.backward(), StepContext(parameters=[theta], representation=[z]))
    signed = g.sum(1)  # sign(z) = 1
    purity = 0.5 * (1 + signed.sum(0) / (signed.abs().sum(0) + 1e-7))
    draw = torch.rand(3, generator=torch.Generator().manual_seed(5))
    keep = ((purity > draw) & (signed > 0)) | ((purity < draw) & (signed < 0))
    torch.testing.assert_close(theta.grad, (g * keep[:, None, :]).sum(0))


def test_db_mtl_balances_log_loss_gradients_to_the_largest_norm():
    g = torch.tensor([[3.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    losses = torch.tensor([2.0, 0.5])
    method = make("db_mtl", tasks(2), beta=0.5)
    d = update(method, g, losses)
    avg = 0.5 * g / losses[:, None].double()  # ĝ = g/L + β(0 − g/L)
    norms = avg.norm(dim=1)
    torch.testing.assert_close(d, (norms.max() / norms) @ avg, atol=1e-5, rtol=1e-5)
    d2 = update(method, 2 * g, losses)
    avg = 2 * g / losses[:, None].double() + 0.5 * (avg - 2 * g / losses[:, None].double())
    norms = avg.norm(dim=1)
    torch.testing.assert_close(d2, (norms.max() / norms) @ avg, atol=1e-5, rtol=1e-5)
    assert float(d2[0]) == pytest.approx(float(d2[1]))  # both rescaled to the same norm


def test_db_mtl_refuses_the_representation():
    with pytest.raises(ValueError, match="db_mtl works on parameters"):
        make("db_mtl", tasks(2), on="representation")


# --- GradNorm -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("on", ["parameters", "representation"])
def test_gradnorm_moves_weights_toward_equal_relative_training_rates(on):
    g = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    method = make("gradnorm", tasks(2), alpha=1.5, on=on)
    optimizer = torch.optim.SGD(method.parameters().values(), lr=0.1)
    update(method, g, [1.0, 1.0], on=on)  # L(0)
    # Task 0 has not improved while task 1 halved its loss: r = (4/3, 2/3); equal gradient norms G = (1, 1).
    for p in method.parameters().values():
        p.grad = None
    update(method, g, [1.0, 0.5], on=on)
    r = torch.tensor([4 / 3, 2 / 3])
    target = 1.0 * r**1.5
    expected = torch.sign(torch.ones(2) - target) * 1.0  # ∂Σ|G_t − target_t|/∂w_t
    got = torch.stack([method.loss_weights[t].grad for t in method.tasks])
    torch.testing.assert_close(got, expected)
    optimizer.step()
    method.renormalize()
    w = torch.stack([method.loss_weights[t].detach() for t in method.tasks])
    assert float(w[0]) > 1.0 > float(w[1])  # the slower task gets the larger weight
    assert float(w.sum()) == pytest.approx(2.0)


def test_gradnorm_trains_on_the_weighted_losses():
    g = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    method = make("gradnorm", tasks(2), on="parameters")
    with torch.no_grad():
        method.loss_weights["t0"].fill_(1.5)
        method.loss_weights["t1"].fill_(0.5)
    torch.testing.assert_close(update(method, g), torch.tensor([1.5, 1.0], dtype=torch.float64))


# --- loss weightings ------------------------------------------------------------------------------------------------


def run_loss_method(method, losses, epoch=0):
    values = {t: torch.tensor(float(v), requires_grad=True) for t, v in zip(method.tasks, losses)}
    method.backward(values, [], lambda total: total.backward(), StepContext(epoch=epoch))
    return {t: float(v.grad) for t, v in values.items()}


def test_dwa_weights_follow_the_loss_descent_ratio_of_the_last_two_epochs():
    method = make("dwa", tasks(2), temperature=2.0)
    for epoch, losses in enumerate([[2.0, 1.0], [1.0, 0.9]]):
        grads = run_loss_method(method, losses, epoch)
        assert grads == {"t0": 1.0, "t1": 1.0}  # the first two epochs: w = 1
    run_loss_method(method, [4.0, 4.0], epoch=1)  # epoch 1 mean: (2.5, 2.45)
    grads = run_loss_method(method, [1.0, 1.0], epoch=2)
    r = np.array([2.5 / 2.0, 2.45 / 1.0])
    expected = 2 * np.exp(r / 2) / np.exp(r / 2).sum()
    np.testing.assert_allclose([grads["t0"], grads["t1"]], expected)
    assert sum(grads.values()) == pytest.approx(2.0)


def test_rlw_draws_softmax_of_a_normal_vector_each_step():
    method = make("rlw", tasks(3), seed=11)
    reference = torch.Generator().manual_seed(11)
    for _ in range(3):
        grads = run_loss_method(method, [1.0, 2.0, 3.0])
        expected = torch.softmax(torch.randn(3, generator=reference, dtype=torch.float64), 0)
        np.testing.assert_allclose(list(grads.values()), expected.numpy())


def test_famo_weights_and_logit_update():
    method = make("famo", tasks(2), lr=0.1, gamma=0.0)
    losses = [2.0, 0.5]
    grads = run_loss_method(method, losses)
    # z = (½, ½): the gradient of Σ z_t log L_t / c, c = Σ z_t / L_t.
    c = 0.5 / 2.0 + 0.5 / 0.5
    np.testing.assert_allclose([grads["t0"], grads["t1"]], [0.5 / (c * 2.0), 0.5 / (c * 0.5)])
    # After the step task 0 improved less (2 → 1.9) than task 1 (0.5 → 0.25): its logit must grow.
    method.after_step({"t0": torch.tensor(1.9), "t1": torch.tensor(0.25)})
    delta = torch.tensor([math.log(2.0 / 1.9), math.log(0.5 / 0.25)], dtype=torch.float64)
    jt_delta = 0.5 * (delta - 0.5 * delta.sum())
    # Adam's first step moves each logit by lr·sign(gradient).
    torch.testing.assert_close(method.logits.detach(), -0.1 * torch.sign(jt_delta), atol=1e-6, rtol=1e-6)
    assert float(method.logits[0].detach()) > float(method.logits[1].detach())


# --- every method: state, accumulation, dtypes ------------------------------------------------------------------------


ALL = sorted(WEIGHTINGS)


def toy_problem(k: int, d: int = 5, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(k, d, generator=gen), torch.rand(k, generator=gen) + 0.5


def quadratic_step(method, theta, head, g, offset, batch, micro_batches=1, last=True, on_repr=False):
    """Losses L_t = ((g_t + b)·θ·head_t + c_t)² on a 'batch' b: non-linear in θ and in the task heads."""
    z = theta * 1.0
    values = {
        t: ((g[k] + batch[k]) @ z * head[k] + offset[k]) ** 2 + 0.1 for k, t in enumerate(method.tasks)
    }
    ctx = StepContext(parameters=[theta, head], representation=[z], micro_batches=micro_batches, last=last)
    method.backward(values, [theta], lambda total: total.backward(), ctx)
    if last and method.needs_losses_after_step:
        with torch.no_grad():
            method.after_step({t: v.detach() * 0.9 for t, v in values.items()})


@pytest.mark.parametrize("name", ALL)
def test_state_dict_resumes_exactly(name):
    g, offset = toy_problem(3)
    batches = [torch.randn(3, 5, generator=torch.Generator().manual_seed(s)) for s in range(4)]

    def run(split: bool) -> list[torch.Tensor]:
        theta = torch.nn.Parameter(torch.full((5,), 0.1))
        head = torch.nn.Parameter(torch.ones(3))
        method = make(name, tasks(3))
        history = []
        for i, b in enumerate(batches):
            if split and i == 2:
                state = method.state_dict()
                params = {k: v.detach().clone() for k, v in method.parameters().items()}
                method = make(name, tasks(3))
                method.load_state_dict(state)
                with torch.no_grad():
                    for k, v in method.parameters().items():
                        v.copy_(params[k])
            theta.grad = head.grad = None
            for p in method.parameters().values():
                p.grad = None
            quadratic_step(method, theta, head, g, offset, b)
            with torch.no_grad():
                theta -= 0.05 * theta.grad
                head -= 0.05 * head.grad
                for p in method.parameters().values():
                    if p.grad is not None:
                        p -= 0.05 * p.grad
            history.append(torch.cat([theta.detach().clone(), head.detach().clone()]))
        return history

    for a, b in zip(run(False), run(True)):
        torch.testing.assert_close(a, b, atol=0, rtol=0)


@pytest.mark.parametrize("name", ALL)
def test_accumulating_two_halves_equals_one_whole_batch(name):
    """Two batches of one sample each, accumulated, give the update of one batch of both (losses are means)."""
    if name in ("famo",):
        pytest.skip("FAMO's weights come from each batch's own losses under accumulation (documented)")
    g, offset = toy_problem(2)
    samples = torch.randn(2, 2, 5, generator=torch.Generator().manual_seed(1))  # sample × task × dim

    def losses_of(method, theta, head, rows):
        z = theta * 1.0
        return {
            t: sum((((g[k] + s[k]) @ z) * head[k] + offset[k]) ** 2 for s in rows) / len(rows) + 0.1
            for k, t in enumerate(method.tasks)
        }

    def grads(split: bool):
        theta = torch.nn.Parameter(torch.full((5,), 0.1))
        head = torch.nn.Parameter(torch.ones(2))
        method = make(name, tasks(2), **({"on": "parameters"} if hasattr(WEIGHTINGS[name], "on_choices") or name == "gradnorm" else {}))
        parts = [samples[:1], samples[1:]] if split else [samples]
        for i, rows in enumerate(parts):
            ctx = StepContext(parameters=[theta, head], micro_batches=len(parts), last=i == len(parts) - 1)
            method.backward(losses_of(method, theta, head, rows), [theta], lambda total: total.backward(), ctx)
        return theta.grad, head.grad

    for a, b in zip(grads(False), grads(True)):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", ["mgda", "pcgrad", "cagrad", "nash_mtl", "imtl", "aligned_mtl", "graddrop", "gradnorm"])
def test_representation_refuses_accumulation_where_it_cannot(name):
    method = make(name, tasks(2), on="representation")
    if name == "gradnorm":
        method.check_accumulation(2)  # only norms are accumulated: allowed
        return
    with pytest.raises(ValueError, match="--accumulate_grad_batches 2 use --weighting_on parameters"):
        method.check_accumulation(2)


@pytest.mark.parametrize("name", GRADIENT_METHODS)
def test_combination_under_bf16_autocast_is_computed_in_fp32(name):
    """Inside a bf16 autocast region (as Lightning runs the training step) the Gram matrix and the combination
    must not drop to bf16: the update equals the one computed outside autocast."""
    g = random_grads(3, 64, seed=9).float() * torch.linspace(0.5, 2, 64)
    plain = update(make(name, tasks(3), seed=1), g, [1.0, 2.0, 3.0])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = update(make(name, tasks(3), seed=1), g, [1.0, 2.0, 3.0])
    torch.testing.assert_close(mixed, plain, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("name", [n for n in ALL if n not in ("fixed", "uncertainty")])
@pytest.mark.parametrize("k", [1, 4])
def test_any_number_of_tasks(name, k):
    g, offset = toy_problem(k, seed=k)
    theta = torch.nn.Parameter(torch.full((5,), 0.1))
    head = torch.nn.Parameter(torch.ones(k))
    method = make(name, tasks(k))
    quadratic_step(method, theta, head, g, offset, torch.zeros(k, 5))
    assert theta.grad is not None and bool(theta.grad.isfinite().all())
    assert set(method.weights) == set(method.tasks)


def test_a_nan_loss_skips_the_combination_and_reaches_the_trainer():
    theta = torch.zeros(3, requires_grad=True)
    method = make("mgda", tasks(2), on="parameters")
    losses = {"t0": theta.sum() + float("nan"), "t1": theta.sum()}
    total = method.backward(losses, [theta], lambda total: total.backward(), StepContext(parameters=[theta]))
    assert not torch.isfinite(total) and theta.grad is None


def test_every_method_has_its_flags_in_mtl_train(tmp_path):
    from mtl.config import build_parser

    parser = build_parser()
    dests = {a.dest for a in parser._actions}
    for flag in ("weighting_on", "accumulate_grad_batches", "weighting_dwa_temperature", "weighting_gradnorm_alpha",
                 "weighting_mgda_normalization", "weighting_pcgrad_reduction", "weighting_graddrop_leak",
                 "weighting_gradvac_beta", "weighting_cagrad_c", "weighting_cagrad_rescale", "weighting_imtl_mode",
                 "weighting_nash_mtl_update_every", "weighting_nash_mtl_max_norm", "weighting_aligned_mtl_scale",
                 "weighting_db_mtl_beta", "weighting_db_mtl_beta_sigma", "weighting_famo_lr", "weighting_famo_gamma"):
        assert flag in dests, flag
    for group in parser._action_groups:  # every method's flags are --weighting_<method>_<option>
        if group.title.startswith("weighting "):
            method = group.title.removeprefix("weighting ")
            assert all(a.dest.startswith(f"weighting_{method}_") for a in group._group_actions), method
    flags = parser.parse_args(["--loss_weighting", "cagrad", "--weighting_cagrad_c", "0.7", "--weighting_on", "representation"])
    from mtl.weighting import build_weighting

    method = build_weighting(flags, ["semseg", "depth"])
    assert (method.c, method.on) == (0.7, "representation")
    for name in ALL:
        flags = parser.parse_args(["--loss_weighting", name])
        assert type(build_weighting(flags, ["semseg", "depth", "normals"])).name == name



def test_a_method_with_a_flag_outside_its_prefix_is_refused():
    from mtl.weighting import Weighting, register_weighting

    class Sloppy(Weighting):
        @classmethod
        def add_arguments(cls, group):
            group.add_argument("--weighting_sloppy_alpha", type=float, default=1.0)
            group.add_argument("--weighting_beta", type=float, default=1.0)

    with pytest.raises(ValueError) as exc:
        register_weighting("sloppy")(Sloppy)
    assert str(exc.value) == "loss weighting 'sloppy': its flag --weighting_beta must be named --weighting_sloppy_<option>"
    assert "sloppy" not in WEIGHTINGS


RENAMED = [("aligned_mtl", "weighting_aligned_scale", "weighting_aligned_mtl_scale", "rmse", "rmse"),
           ("db_mtl", "weighting_dbmtl_beta", "weighting_db_mtl_beta", "0.5", 0.5),
           ("db_mtl", "weighting_dbmtl_beta_sigma", "weighting_db_mtl_beta_sigma", "0.25", 0.25),
           ("nash_mtl", "weighting_nash_update_every", "weighting_nash_mtl_update_every", "3", 3),
           ("nash_mtl", "weighting_nash_max_norm", "weighting_nash_mtl_max_norm", "2.5", 2.5)]


@pytest.mark.parametrize("method, old, new, text, value", RENAMED)
def test_former_flag_names_still_work_with_a_note(method, old, new, text, value, tmp_path, capsys):
    from mtl.config import parse_config
    from mtl.weighting import renamed_flags

    assert renamed_flags()[old] == new
    root = str(tmp_path)
    (tmp_path / "train" / "rgb").mkdir(parents=True)
    (tmp_path / "train" / "semseg").mkdir()
    (tmp_path / "train" / "depth").mkdir()
    cfg = parse_config(["--dataset_root", root, "--loss_weighting", method, f"--{old}", text])
    assert getattr(cfg, new) == value and not hasattr(cfg, old)
    assert capsys.readouterr().err == f"mtl train: note: --{old} is deprecated; use --{new}\n"

    preset = tmp_path / "old.yaml"
    preset.write_text(f"loss_weighting: {method}\n{old}: {text}\n")
    cfg = parse_config(["--dataset_root", root, "--config", str(preset)])
    assert getattr(cfg, new) == value
    assert capsys.readouterr().err == f"--config {preset}: note: {old} is deprecated; use {new}\n"
