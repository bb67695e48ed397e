"""AdaBound/AMSBound (landscape.optim.adabound) against an independent transcription of the paper's
rule and of the authors' code, and its first step against Adam's where the upper bound does not clip."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from landscape.optim import AdaBound, bounds


def _quadratic_grads(theta: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    return a * theta  # gradient of ½ Σ aᵢθᵢ²


def _numpy_adabound(theta, a, steps, *, lr, betas, final_lr, gamma, eps, wd, ams, paper):
    """Independent transcription: Luo et al. 2019 Algorithm 2/3 (paper=True: no bias correction,
    1/√t) or the authors' released code (paper=False: bias-corrected rate, no 1/√t)."""
    b1, b2 = betas
    m = np.zeros_like(theta)
    v = np.zeros_like(theta)
    vmax = np.zeros_like(theta)
    out = [theta.copy()]
    for t in range(1, steps + 1):
        g = a * theta + wd * theta
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        vmax = np.maximum(vmax, v)
        vv = vmax if ams else v
        lo, hi = final_lr * (1 - 1 / (gamma * t + 1)), final_lr * (1 + 1 / (gamma * t))
        if paper:
            eta = np.clip(lr / (np.sqrt(vv) + eps), lo, hi) / math.sqrt(t)
        else:
            step = lr * math.sqrt(1 - b2 ** t) / (1 - b1 ** t)
            eta = np.clip(step / (np.sqrt(vv) + eps), lo, hi)
        theta = theta - eta * m
        out.append(theta.copy())
    return np.stack(out)


@pytest.mark.parametrize("ams", [False, True])
@pytest.mark.parametrize("paper", [False, True])
def test_adabound_matches_the_update_rule(ams: bool, paper: bool) -> None:
    a = np.array([50.0, 1.0, 0.02, 3.0])
    theta0 = np.array([1.0, -2.0, 0.5, 1e-3])
    kw = dict(lr=0.01, betas=(0.9, 0.999), final_lr=0.1, gamma=0.05, eps=1e-8, wd=1e-3)
    ref = _numpy_adabound(theta0, a, 60, ams=ams, paper=paper, **kw)
    p = torch.nn.Parameter(torch.tensor(theta0, dtype=torch.float64))
    opt = AdaBound([p], lr=kw["lr"], betas=kw["betas"], final_lr=kw["final_lr"], gamma=kw["gamma"],
                   eps=kw["eps"], weight_decay=kw["wd"], amsbound=ams, bias_correction=not paper,
                   sqrt_t=paper)
    at = torch.tensor(a, dtype=torch.float64)
    for t in range(1, 61):
        p.grad = _quadratic_grads(p.detach(), at)
        opt.step()
        np.testing.assert_allclose(p.detach().numpy(), ref[t], rtol=1e-12, atol=1e-14)
    # the bounds have closed in: late rates are within the clip interval around final_lr
    lo, hi = bounds(opt.param_groups[0], 60)
    assert lo < 0.1 < hi


def test_adabound_first_step_is_adams_except_where_the_upper_bound_clips() -> None:
    """At t = 1 the upper bound is U = final_lr·(1 + 1/γ) = 100.1; the step is Adam's ≈ −η·sign(g)
    where |g| > η/((1 − β₁)U) and −U(1 − β₁)g below that (here η = 0.1: threshold ≈ 0.00999)."""
    lo, hi = bounds({"final_lr": 0.1, "gamma": 1e-3, "lr": 1e-3, "base_lr": 1e-3}, 1)
    assert lo == pytest.approx(0.1 * (1 - 1 / 1.001)) and hi == pytest.approx(100.1)
    g = torch.tensor([3.0, -1.2e-2, 2e-4, -40.0, 9e-3], dtype=torch.float64)
    p1 = torch.nn.Parameter(torch.zeros(5, dtype=torch.float64))
    p2 = torch.nn.Parameter(torch.zeros(5, dtype=torch.float64))
    o1 = AdaBound([p1], lr=0.1)
    o2 = torch.optim.Adam([p2], lr=0.1)
    for p, o in ((p1, o1), (p2, o2)):
        p.grad = g.clone()
        o.step()
    big = g.abs() > 0.1 / (0.1 * 100.1)
    assert big.tolist() == [True, True, False, True, False]
    # (AdaBound adds ε to √v, Adam to √v̂: relative differences of order ε/(√(1−β₂)|g|))
    np.testing.assert_allclose(p1.detach()[big].numpy(), p2.detach()[big].numpy(), rtol=1e-4)
    np.testing.assert_allclose(p1.detach()[~big].numpy(), -100.1 * 0.1 * g[~big].numpy(), rtol=1e-12)
