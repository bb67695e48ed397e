"""Frozen-preconditioner models of every family: P and the momentum term reproduce a real torch
step from the optimizer's saved state, and the thresholds c/η on λ₁(P⁻¹H) separate divergence
from convergence on quadratics with frozen P (just above / just below)."""

from __future__ import annotations

import copy

import pytest
import torch

from landscape.checkpoint import map_optimizer_state
from landscape.optim import OptimizerConfig, make_optimizer
from landscape.optim.preconditioners import frozen_model, momentum_term, threshold_coefficient
from landscape.params import ParamSpace
from tests.optim.steps import flat, take_steps, tiny_model

CASES = {
    "sgd": dict(name="sgd", lr=0.1),
    "sgd-momentum": dict(name="sgd", lr=0.1, momentum=0.9),
    "sgd-dampening": dict(name="sgd", lr=0.1, momentum=0.8, dampening=0.3, weight_decay=1e-2),
    "sgd-nesterov": dict(name="sgd", lr=0.1, momentum=0.9, nesterov=True),
    "adam": dict(name="adam", lr=1e-2, weight_decay=1e-3),
    "amsgrad": dict(name="amsgrad", lr=1e-2),
    "adamw": dict(name="adamw", lr=1e-2, weight_decay=0.1),
    "radam-early": dict(name="radam", lr=1e-2),
    "radam-rectified": dict(name="radam", lr=1e-2),
    "adagrad": dict(name="adagrad", lr=0.1, lr_decay=0.01, initial_accumulator_value=0.1),
    "rmsprop": dict(name="rmsprop", lr=1e-2),
    "rmsprop-momentum-centred": dict(name="rmsprop", lr=1e-2, momentum=0.9, centered=True),
    "adabound": dict(name="adabound", lr=1e-2, gamma=0.1),
    "amsbound": dict(name="amsbound", lr=1e-2, gamma=0.1),
    "swats-sgd-phase": dict(name="swats", lr=1e-2),
}
STEPS = {"radam-early": 3, "radam-rectified": 9}


def _run(case: str, steps: int):
    """Take ``steps`` real steps; return (model, optimizer, θ_{t−1}, θ_t, g_t, state after t−1)."""
    model = tiny_model()
    opt = make_optimizer(model.parameters(), OptimizerConfig(**CASES[case]))
    return (model, opt, *take_steps(opt, model, steps))


@pytest.mark.parametrize("case", sorted(CASES))
def test_preconditioner_reproduces_a_real_step(case: str) -> None:
    steps = STEPS.get(case, 5)
    model, opt, prev, now, grad, _ = _run(case, steps)
    if case == "swats-sgd-phase":  # force the switch, then take one SGD-phase step
        group = opt.param_groups[0]
        opt._switch(group, 0.37, steps)
        gen = torch.Generator().manual_seed(5)
        x, y = torch.randn(16, 3, generator=gen, dtype=torch.float64), torch.randint(0, 2, (16,), generator=gen)
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        prev, grad = flat(model), flat(model, grads=True)
        opt.step()
        now = flat(model)
    space = ParamSpace.from_model(model)
    state = map_optimizer_state(opt.state_dict(), space)
    fm = frozen_model(state, space)
    wd = float(opt.param_groups[0].get("weight_decay", 0.0))
    g = grad + fm.coupled_weight_decay * prev  # torch adds coupled decay to the gradient
    u = momentum_term(fm, state, space, grad=g)
    p = fm.p_diag if fm.p_diag is not None else torch.ones_like(u)
    predicted = -fm.lr * u / p
    if case == "adamw":
        predicted = predicted - fm.lr * wd * prev  # decoupled decay, outside P
    torch.testing.assert_close(now - prev, predicted, rtol=1e-9, atol=1e-13)
    if case.startswith("radam"):
        assert fm.notes[-1].startswith("rectified phase") == (case == "radam-rectified")


def test_adadelta_preconditioner_formula() -> None:
    """torch's Adadelta step t uses acc_delta of step t − 1 and square_avg of step t: with those
    buffers, P = √(s + ε)/√(a + ε) reproduces the step exactly (from a checkpoint we have a one
    step newer acc_delta; see the module docstring)."""
    model = tiny_model()
    opt = make_optimizer(model.parameters(), OptimizerConfig(name="adadelta", lr=1.0))
    gen = torch.Generator().manual_seed(2)
    for t in range(4):
        x, y = torch.randn(16, 3, generator=gen, dtype=torch.float64), torch.randint(0, 2, (16,), generator=gen)
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        acc_prev = {i: s["acc_delta"].clone() for i, s in enumerate(opt.state.values())} if t else None
        prev, grad = flat(model), flat(model, grads=True)
        opt.step()
    space = ParamSpace.from_model(model)
    raw = copy.deepcopy(opt.state_dict())
    for i, pid in enumerate(raw["param_groups"][0]["params"]):
        raw["state"][pid]["acc_delta"] = acc_prev[i]
    state = map_optimizer_state(raw, space)
    fm = frozen_model(state, space)
    torch.testing.assert_close(flat(model) - prev, -fm.lr * grad / fm.p_diag, rtol=1e-9, atol=1e-13)


# ----------------------------------------------------------------------------- thresholds
def _spd(d: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=gen, dtype=torch.float64))
    return q @ torch.diag(torch.linspace(0.1, 5.0, d, dtype=torch.float64)) @ q.T


def _simulate(recursion: str, beta: float, damp: float, lr: float, h: torch.Tensor, p: torch.Tensor,
              steps: int = 3000) -> float:
    """‖θ_T‖/‖θ_0‖ of θ ← θ − η P⁻¹u, u by the recursion, g = Hθ (frozen P)."""
    theta = torch.ones(h.shape[0], dtype=torch.float64)
    u = torch.zeros_like(theta)
    for _ in range(steps):
        g = h @ theta
        if recursion == "none":
            u = g
        elif recursion == "heavy_ball":
            u = beta * u + (1 - damp) * g
        elif recursion == "ema":
            u = beta * u + (1 - beta) * g
        step = g + beta * (beta * u + g) if recursion == "nesterov" else u
        if recursion == "nesterov":
            u = beta * u + g
        theta = theta - lr * step / p
    return float(theta.norm() / torch.ones_like(theta).norm())


@pytest.mark.parametrize("recursion,beta,damp", [("none", 0.0, 0.0), ("heavy_ball", 0.9, 0.0),
                                                 ("heavy_ball", 0.5, 0.3), ("ema", 0.9, 0.0),
                                                 ("ema", 0.5, 0.0), ("nesterov", 0.9, 0.0)])
def test_thresholds_separate_divergence_from_convergence(recursion: str, beta: float, damp: float) -> None:
    h = _spd(8, 0)
    p = torch.exp(torch.linspace(-2.0, 2.0, 8, dtype=torch.float64))  # a far-from-uniform P
    ps = p.rsqrt()
    lam = float(torch.linalg.eigvalsh(ps[:, None] * h * ps[None, :])[-1])  # λ₁(P⁻¹H)
    c = threshold_coefficient(recursion, beta, damp)
    assert not _simulate(recursion, beta, damp, 1.03 * c / lam, h, p) < 1e3  # (inf/NaN: diverged)
    assert _simulate(recursion, beta, damp, 0.97 * c / lam, h, p) < 1e-3


@pytest.mark.parametrize("kw", [dict(momentum=0.0), dict(momentum=0.9), dict(momentum=0.7, dampening=0.4),
                                dict(momentum=0.9, nesterov=True)])
def test_sgd_thresholds_with_real_torch_sgd(kw: dict) -> None:
    h = _spd(6, 1)
    lam = float(torch.linalg.eigvalsh(h)[-1])
    rec = "none" if kw["momentum"] == 0 else ("nesterov" if kw.get("nesterov") else "heavy_ball")
    c = threshold_coefficient(rec, kw["momentum"], kw.get("dampening", 0.0))
    for factor, diverges in ((1.03, True), (0.97, False)):
        theta = torch.nn.Parameter(torch.ones(6, dtype=torch.float64))
        opt = torch.optim.SGD([theta], lr=factor * c / lam, **kw)
        for _ in range(3000):
            theta.grad = h @ theta.detach()
            opt.step()
        ratio = float(theta.detach().norm() / 6 ** 0.5)
        assert (not ratio < 1e3) if diverges else (ratio < 1e-3), (factor, ratio)


def test_adamw_decoupled_threshold_with_scalar_p() -> None:
    """AdamW: θ ← (1 − η·wd)θ − ηP⁻¹m with frozen P = p·I: c = (1+β₁)(2 − η·wd)/(1−β₁)."""
    h, b1, wd, p = _spd(6, 2), 0.9, 0.5, 3.0
    lam = float(torch.linalg.eigvalsh(h)[-1]) / p
    for factor, diverges in ((1.03, True), (0.97, False)):
        # solve η·λ = c(η) = (1+β)(2 − η·wd)/(1−β) for η, then scale
        eta = 2 * (1 + b1) / ((1 - b1) * lam + (1 + b1) * wd) * factor
        theta, m = torch.ones(6, dtype=torch.float64), torch.zeros(6, dtype=torch.float64)
        for _ in range(3000):
            m = b1 * m + (1 - b1) * (h @ theta)
            theta = (1 - eta * wd) * theta - eta * m / p
        ratio = float(theta.norm() / 6 ** 0.5)
        assert (not ratio < 1e3) if diverges else (ratio < 1e-3), (factor, ratio)


@pytest.mark.parametrize("case", sorted(CASES))
def test_hessian_engine_agrees_with_the_family_models(case: str) -> None:
    """landscape.hessian's preconditioner_diag and threshold_for (what `landscape hessian
    --preconditioned` and `landscape sharpness` use) give the same P and threshold."""
    from landscape.hessian.preconditioner import coupled_weight_decay, preconditioner_diag
    from landscape.hessian.stability import threshold_for

    model, opt, *_ = _run(case, STEPS.get(case, 5))
    if case == "swats-sgd-phase":
        opt._switch(opt.param_groups[0], 0.37, 5)
    space = ParamSpace.from_model(model)
    state = map_optimizer_state(opt.state_dict(), space)
    fm = frozen_model(state, space)
    p = preconditioner_diag(state, space)
    if fm.p_diag is None:
        assert p is None
    else:
        torch.testing.assert_close(p, fm.p_diag, rtol=1e-12, atol=0)
    threshold = threshold_for(state, float(state.lr))[0]
    assert threshold == pytest.approx(fm.threshold, rel=1e-12)
    assert float(coupled_weight_decay(state, space) or 0.0) == pytest.approx(fm.coupled_weight_decay)
