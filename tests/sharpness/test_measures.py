"""Sharpness measures against closed forms on an exactly quadratic loss, and basic properties.

The quadratic case: a linear model with PyTorch-mean MSE on one-hot targets at its least-squares
solution, so L(θ + δ) − L(θ) = ½ δᵀHδ exactly, with H from ``dense_hessian``.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from cases import dense_hessian, objective_for
from torch import nn

from landscape.checkpoint import map_optimizer_state
from landscape.objective import Objective
from landscape.params import ParamSpace
from landscape.session import Session
from landscape.sharpness import (
    SharpnessConfig,
    adaptive_sharpness,
    average_sharpness,
    eps_sharpness,
    measure_session,
    pac_bayes_sigma,
    worst_case_sharpness,
)
from landscape.sharpness.common import maximize_in_ball, perturbation_mask


def quadratic_objective(seed: int = 0) -> Objective:
    """Linear regression (4 inputs, 2 outputs, MSE) at its least-squares minimum: 10 parameters."""
    g = torch.Generator().manual_seed(seed)
    n, d_in, classes = 40, 4, 2
    x = torch.randn(n, d_in, generator=g, dtype=torch.float64) * torch.tensor([3.0, 1.0, 0.5, 0.2], dtype=torch.float64)
    y = torch.randint(0, classes, (n,), generator=g)
    xa = torch.cat([x, torch.ones(n, 1, dtype=torch.float64)], 1)
    sol = torch.linalg.lstsq(xa, nn.functional.one_hot(y, classes).double()).solution
    model = nn.Linear(d_in, classes).double()
    with torch.no_grad():
        model.weight.copy_(sol[:d_in].T)
        model.bias.copy_(sol[d_in])
    return Objective(model, x, y, loss="mse", batch_size=16, dtype=torch.float64)


@pytest.fixture(scope="module")
def quad():
    obj = quadratic_objective()
    return obj, dense_hessian(obj)


def test_quadratic_case_is_a_minimum(quad):
    obj, h = quad
    assert obj.grad().norm() < 1e-12
    d = torch.randn(obj.dim, dtype=torch.float64) * 0.1
    assert obj.loss(obj.theta0 + d) - obj.loss() == pytest.approx(0.5 * float(d @ h @ d), rel=1e-9)


def test_worst_case_matches_rho2_lambda_max(quad):
    obj, h = quad
    lam = float(torch.linalg.eigvalsh(h)[-1])
    for rho in (0.05, 0.2):
        res = worst_case_sharpness(obj, rho=rho, steps=20, restarts=2)
        assert res.value == pytest.approx(rho ** 2 * lam / 2, rel=1e-3)
        assert res.delta_norm <= rho * (1 + 1e-9)
        assert res.value <= rho ** 2 * lam / 2 * (1 + 1e-9)  # a lower bound on the maximum


@pytest.mark.parametrize("eta", [0.01, 0.0])
def test_adaptive_matches_closed_form(quad, eta):
    obj, h = quad
    t = obj.theta0.abs() + eta
    exact = 0.5 ** 2 * float(torch.linalg.eigvalsh(t[:, None] * h * t[None, :])[-1]) / 2
    # T H T has a small relative eigengap here (0.25 vs 0.28), so the ascent needs more steps
    res = adaptive_sharpness(obj, rho=0.5, eta=eta, steps=60, restarts=2)
    assert exact * (1 - 2e-3) <= res.value <= exact * (1 + 1e-9)
    # not the isotropic value: the scaling matters
    iso = 0.5 ** 2 * float(torch.linalg.eigvalsh(h)[-1]) / 2
    assert abs(res.value - iso) > 0.05 * iso


def test_average_matches_sigma2_trace(quad):
    obj, h = quad
    sigma = 0.05
    res = average_sharpness(obj, sigma=sigma, samples=64, seed=3)
    exact = sigma ** 2 * float(torch.trace(h)) / 2
    assert res.stderr > 0
    assert abs(res.value - exact) <= 4 * res.stderr
    assert res.stderr < 0.2 * exact
    assert res.to_json()["sigma_rule"] == "given"


def test_eps_sharpness_against_vertex_enumeration(quad):
    """At a minimum of a convex quadratic the box maximum sits at a vertex: enumerate all 2^10."""
    obj, h = quad
    eps = 1e-2
    half = eps * (obj.theta0.abs() + 1)
    signs = torch.tensor(list(itertools.product([-1.0, 1.0], repeat=obj.dim)), dtype=torch.float64)
    vertices = signs * half
    best = float((0.5 * (vertices @ h * vertices).sum(1)).max())
    base = obj.loss()
    exact = 100 * best / (1 + base)
    res = eps_sharpness(obj, eps=eps, steps=20, restarts=5)
    assert res.value <= exact * (1 + 1e-9)
    assert res.value >= 0.85 * exact
    assert res.to_json()["eps"] == eps


def test_eps_sharpness_grows_with_eps():
    obj = objective_for("mlp_tanh")
    values = [eps_sharpness(obj, eps=e, steps=8, restarts=2).value for e in (1e-4, 1e-3, 1e-2, 5e-2)]
    assert values[0] > 0
    assert all(b > a for a, b in zip(values, values[1:]))


def test_worst_case_at_least_average_at_least_zero():
    obj = objective_for("mlp_tanh")
    rho = 0.1
    worst = worst_case_sharpness(obj, rho=rho, steps=10, restarts=2)
    avg = average_sharpness(obj, rho=rho, samples=16)  # default sigma = rho / sqrt(d)
    assert avg.sigma == pytest.approx(rho / math.sqrt(obj.dim))
    assert worst.value >= avg.value
    assert avg.value >= -3 * avg.stderr
    assert worst.value > 0


def test_bn_parameters_are_not_perturbed_by_default():
    obj = objective_for("bn_cnn")
    norm = obj.space.mask(("norm",), like=obj.theta0).bool()
    assert norm.any()
    for include in (False, True):
        mask = perturbation_mask(obj, include_bn=include)
        res = maximize_in_ball(obj, 0.1 * mask, norm="l2", steps=3, restarts=2, seed=0)
        moved = res.delta.abs() > 0
        assert bool(moved[norm].any()) == include
        assert bool(moved[~norm].any())
    out = worst_case_sharpness(obj, rho=0.1, steps=2, restarts=1).to_json()["perturbation"]
    assert out["n_perturbed"] == obj.dim - int(norm.sum())


def _pac_increase_exact(h: torch.Tensor, theta: torch.Tensor, sigma: float, magnitude: bool, mag_eps: float) -> float:
    var = sigma ** 2 * theta ** 2 + mag_eps ** 2 if magnitude else torch.full_like(theta, sigma ** 2)
    return 0.5 * float((torch.diagonal(h) * var).sum())


@pytest.mark.parametrize("magnitude", [False, True])
def test_pac_bayes_bisection_meets_threshold(quad, magnitude):
    """E[L(θ+δ)] − L(θ) = ½ Σ Hᵢᵢ varᵢ exactly, so σ* has a closed form; the search must land
    within its stated Monte Carlo and bracket error of it."""
    obj, h = quad
    target, mag_eps = 0.1, 1e-3
    res = pac_bayes_sigma(obj, target=target, magnitude=magnitude, mag_eps=mag_eps, samples=16,
                          max_samples=64, rel_tol=0.05, seed=1)
    js = res.to_json()
    assert js["bracketed"] and js["criterion"] == "loss"
    # the bracket is tight and straddles the target on the sampled estimate
    assert res.sigma < res.sigma_upper <= res.sigma * 1.05 * (1 + 1e-9)
    assert res.increase <= target < res.increase_upper
    # the Monte Carlo error was driven below its tolerance, or the sample cap was reached
    assert res.stderr <= res.mc_tol or res.samples == 64
    # the true expected increase at sigma is the target within the stated errors
    true_inc = _pac_increase_exact(h, obj.theta0, res.sigma, magnitude, mag_eps)
    true_up = _pac_increase_exact(h, obj.theta0, res.sigma_upper, magnitude, mag_eps)
    assert true_inc - 4 * res.stderr <= target <= true_up + 4 * res.stderr
    # closed-form sigma*
    diag = torch.diagonal(h)
    if magnitude:
        star = math.sqrt((2 * target - mag_eps ** 2 * float(diag.sum())) / float((diag * obj.theta0 ** 2).sum()))
    else:
        star = math.sqrt(2 * target / float(diag.sum()))
    rel_mc = 4 * res.stderr / target / 2  # d log sigma = d log increase / 2 in the quadratic regime
    assert abs(math.log(res.sigma / star)) <= rel_mc + math.log(1.05)
    assert js["flatness"] == pytest.approx(1 / res.sigma ** 2)


def test_pac_bayes_error_criterion():
    obj = objective_for("mlp_tanh", batch_size=64)
    res = pac_bayes_sigma(obj, target=0.1, criterion="error", samples=8, max_samples=16, seed=0)
    js = res.to_json()
    assert js["criterion"] == "error" and "0-1" in js["criterion_note"]
    base_err = 1 - obj.evaluate().acc
    assert js["base_value"] == pytest.approx(base_err)
    assert res.increase <= 0.1 < res.increase_upper
    assert res.sigma > 0 and js["bracketed"]


def test_measures_leave_caller_model_unchanged():
    from cases import make_data, tiny_bn_cnn

    model = tiny_bn_cnn()
    model.train()
    x, y = make_data(29, (1, 5, 5))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    obj = Objective(model, x, y, batch_size=8)
    eps_sharpness(obj, steps=2, restarts=2)
    worst_case_sharpness(obj, steps=2, restarts=2)
    adaptive_sharpness(obj, steps=2, restarts=2)
    average_sharpness(obj, samples=2)
    pac_bayes_sigma(obj, samples=2, max_samples=2, rel_tol=0.5)
    # the whole per-checkpoint pipeline, Hessian measures included, with an SGD state
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    state = map_optimizer_state(opt.state_dict(), ParamSpace.from_model(model))
    session = Session(None, model, None, None, "ce", obj, None, state, ParamSpace.from_model(model))
    cfg = SharpnessConfig(steps=1, restarts=1, samples=2, pac_max_samples=2, pac_rel_tol=0.5, trace_matvecs=6)
    assert measure_session(session, cfg).value("lambda_max") > 0
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert model.training and all(m.training for m in model.modules())
    assert all(p.grad is None and p.requires_grad for p in model.parameters())
    assert torch.equal(obj.theta0, obj.space.flatten(dict(model.named_parameters())).detach())
