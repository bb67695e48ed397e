"""The optimizer families are defined once (landscape.optim.families) and every path reads them:
pins the drifts the copies had (RAdam's decoupled-decay threshold, Adamax without a frozen-P model,
adaptive lists that disagreed)."""

from __future__ import annotations

import math

import pytest
import torch

from landscape.checkpoint import OptimizerState, map_optimizer_state
from landscape.hessian.preconditioner import preconditioner_diag
from landscape.hessian.stability import stability, threshold_for
from landscape.optim import families
from landscape.optim.preconditioners import frozen_model, momentum_term
from landscape.params import ParamSpace
from tests.optim.steps import take_steps, tiny_model


@pytest.mark.parametrize("steps", [3, 9])
def test_radam_decoupled_decay_threshold_is_the_same_from_every_path(steps: int) -> None:
    """Before: threshold_for gave (1+β₁)(2−η·wd)/((1−β₁)η), the frozen-P model (2+2β₁)/((1−β₁)η)."""
    lr, wd, b1 = 1e-2, 0.5, 0.9
    model = tiny_model()
    opt = torch.optim.RAdam(model.parameters(), lr=lr, weight_decay=wd, decoupled_weight_decay=True)
    prev, now, grad, _ = take_steps(opt, model, steps)
    space = ParamSpace.from_model(model)
    state = map_optimizer_state(opt.state_dict(), space)
    assert state.type == "radam"
    expected = (1 + b1) * (2 - lr * wd) / ((1 - b1) * lr)
    fm = frozen_model(state, space)
    assert threshold_for(state, lr)[0] == pytest.approx(expected, rel=1e-14)
    assert fm.threshold == pytest.approx(expected, rel=1e-14)
    assert stability(state, lambda_max=1.0, preconditioned_lambda_max=1.0).threshold == pytest.approx(expected, rel=1e-14)
    assert fm.coupled_weight_decay == 0.0   # the decay is outside P: not added to H
    # and the model still reproduces the real step: −η P⁻¹ m − η·wd·θ_{t−1}
    u = momentum_term(fm, state, space, grad=grad)
    torch.testing.assert_close(now - prev, -lr * u / fm.p_diag - lr * wd * prev, rtol=1e-9, atol=1e-13)


def test_adamax_has_a_frozen_P_model_that_reproduces_a_real_step() -> None:
    """Before: Adamax had a threshold and a P in the Hessian engine but no frozen-P model."""
    model = tiny_model()
    opt = torch.optim.Adamax(model.parameters(), lr=2e-2, weight_decay=1e-2)
    prev, now, grad, _ = take_steps(opt, model, 5)
    space = ParamSpace.from_model(model)
    state = map_optimizer_state(opt.state_dict(), space)
    assert state.type == "adamax" and families.recognise_optimizer(opt) == "adamax"
    fm = frozen_model(state, space)
    torch.testing.assert_close(fm.p_diag, preconditioner_diag(state, space), rtol=0, atol=0)
    g = grad + fm.coupled_weight_decay * prev
    u = momentum_term(fm, state, space, grad=g)
    torch.testing.assert_close(now - prev, -fm.lr * u / fm.p_diag, rtol=1e-9, atol=1e-13)
    assert fm.threshold == pytest.approx(threshold_for(state, 2e-2)[0]) == pytest.approx(38 / 2e-2)


def test_adamax_first_step_closed_form() -> None:
    gen = torch.Generator().manual_seed(0)
    theta0 = torch.randn(30, generator=gen, dtype=torch.float64)
    g = torch.randn(30, generator=gen, dtype=torch.float64) * torch.logspace(-6, 1, 30, dtype=torch.float64)
    p = torch.nn.Parameter(theta0.clone())
    opt = torch.optim.Adamax([p], lr=0.1, weight_decay=0.05)
    p.grad = g.clone()
    opt.step()
    cfg = type("Cfg", (), dict(name="adamax", lr=0.1, eps=1e-8, weight_decay=0.05))()
    torch.testing.assert_close(p.detach() - theta0, families.first_step(cfg, g, theta0).delta, rtol=1e-9, atol=1e-15)


def test_nadam_is_declared_unsupported_in_one_place() -> None:
    model = tiny_model()
    opt = torch.optim.NAdam(model.parameters(), lr=1e-2)
    take_steps(opt, model, 2)
    space = ParamSpace.from_model(model)
    state = map_optimizer_state(opt.state_dict(), space)
    assert state.type == "nadam" and families.is_adaptive(state)
    assert not families.family("nadam").supported
    with pytest.raises(Exception, match="no preconditioner model"):
        preconditioner_diag(state, space)
    with pytest.raises(Exception, match="no preconditioner model"):
        frozen_model(state, space)
    assert math.isnan(threshold_for(state, 1e-2)[0])


def test_every_adaptive_list_is_the_families_list() -> None:
    from landscape.hessian import preconditioner
    from landscape.optim import ADAPTIVE
    from landscape.report import hessian as report_hessian

    assert preconditioner.ADAPTIVE is families.ADAPTIVE is ADAPTIVE is report_hessian.ADAPTIVE
    assert {"adam", "adamw", "adamax", "radam", "adabound", "rmsprop", "adagrad", "adadelta"} <= set(ADAPTIVE)
    assert "sgd" not in ADAPTIVE


@pytest.mark.parametrize("name", list(families.FAMILIES))
def test_each_record_is_complete(name: str) -> None:
    """Every record names its dynamics and, when supported, gives a finite threshold."""
    fam = families.family(name)
    hyper = {"lr": 0.1, "momentum": 0.5, "betas": (0.9, 0.999), "eps": 1e-8}
    dyn = fam.dynamics(hyper)
    assert dyn.recursion in families.RECURSIONS
    t = families.threshold(OptimizerState(name, hyper, {}), 0.1)
    assert math.isfinite(t.value) is fam.supported
    assert t.on == ("P^-1 H" if fam.adaptive else "H") or not fam.supported


def test_unknown_family_is_a_one_line_error() -> None:
    with pytest.raises(Exception, match="unknown optimizer family 'lion'"):
        families.family("lion")
