"""PAC-Bayes σ search (landscape.sharpness.pac_bayes): the bisection lands on the closed-form σ* of
the exact quadratic within its stated errors; the 0-1 error criterion."""

from __future__ import annotations

import math

import pytest
import torch
from cases import objective_for

from landscape.sharpness import pac_bayes_sigma


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
