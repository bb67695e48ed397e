"""The first-step closed forms (landscape.optim.first_step) against a real torch step of every
family, and the adam-first-step probe comparing further families through them."""

from __future__ import annotations

import pytest
import torch

from landscape.optim import FAMILIES, OptimizerConfig, make_optimizer


@pytest.mark.parametrize("name", FAMILIES)
@pytest.mark.parametrize("extra", [{}, {"weight_decay": 0.05, "momentum": 0.9, "nesterov": True, "centered": True}])
def test_first_step_closed_form_matches_a_real_step(name: str, extra: dict) -> None:
    from landscape.optim.first_step import first_step_closed_form

    if extra.get("nesterov") and name != "sgd":
        extra = {k: v for k, v in extra.items() if k != "nesterov"}
    gen = torch.Generator().manual_seed(0)
    theta0 = torch.randn(40, generator=gen, dtype=torch.float64)
    g = torch.randn(40, generator=gen, dtype=torch.float64) * torch.logspace(-6, 1, 40, dtype=torch.float64)
    cfg = OptimizerConfig(name=name, lr=0.1, initial_accumulator_value=0.05, **extra)
    p = torch.nn.Parameter(theta0.clone())
    opt = make_optimizer([p], cfg)
    p.grad = g.clone()
    opt.step()
    fs = first_step_closed_form(cfg, g, theta0)
    torch.testing.assert_close(p.detach() - theta0, fs.delta, rtol=1e-9, atol=1e-15)
    if name in ("adabound", "amsbound"):  # |g| < 0.1/(0.1·100.1) ≈ 0.00999 are capped
        expected = float(((g + extra.get("weight_decay", 0.0) * theta0).abs() < 0.1 / (0.1 * 100.1)).double().mean())
        assert fs.clipped == pytest.approx(expected)


def test_first_step_probe_compares_further_families() -> None:
    """`landscape probe adam-first-step --optimizer adabound`: the AdaBound step is measured like
    Adam's and SGD's, matches its closed form, and reports how many coordinates its step-1 upper
    bound capped (many more at η = 0.1 than at η = 10⁻³)."""
    from landscape.probes.adam_first_step import FirstStepConfig, adam_first_step
    from landscape.session import open_session

    s = open_session(None, model="mlp:hidden=16", data="digits", subset=128, seed=0, dtype="float64")
    res = adam_first_step(s, FirstStepConfig(lrs=(0.1, 1e-3), steps=1, batch_size=64, hessian=False, alphas=(0.0, 1.0),
                                             others=("adabound", "rmsprop")))
    fracs = []
    for run in res.runs:
        names = [o.optimizer for o in run.others]
        assert names == ["adabound", "rmsprop"]
        for o in run.others:
            assert o.closed_form_error < 1e-9
        fracs.append(run.others[0].clipped_fraction)
        assert "adabound: step" in run.verdict
    assert fracs[0] > 0.1 and fracs[0] > 5 * fracs[1]  # capped: |g| < η/((1 − β₁)·100.1)
    from landscape.results import jsonable

    assert jsonable(res)["runs"][0]["others"][0]["optimizer"] == "adabound"
