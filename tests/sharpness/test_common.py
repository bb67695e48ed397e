"""What the perturbation measures share (landscape.sharpness.common): the quadratic test case is a
minimum, normalisation-layer parameters are not perturbed unless asked, and no measure (nor the
whole per-checkpoint pipeline) changes the caller's model."""

from __future__ import annotations

import pytest
import torch
from cases import objective_for

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


def test_quadratic_case_is_a_minimum(quad):
    obj, h = quad
    assert obj.grad().norm() < 1e-12
    d = torch.randn(obj.dim, dtype=torch.float64) * 0.1
    assert obj.loss(obj.theta0 + d) - obj.loss() == pytest.approx(0.5 * float(d @ h @ d), rel=1e-9)


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
