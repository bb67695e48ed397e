"""Optimizer families: AdaBound/AMSBound against the paper's rule, SWATS against its Algorithm 1,
the factory, checkpoint recognition of every family, schedules and switching in `landscape train`."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from landscape.checkpoint import map_optimizer_state
from landscape.optim import (
    FAMILIES,
    SWATS,
    AdaBound,
    OptimizerConfig,
    bounds,
    make_optimizer,
    optimizer_type,
)
from landscape.params import ParamSpace


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


def test_swats_adam_phase_is_torch_adam_and_switch_follows_algorithm_1() -> None:
    a = torch.tensor([4.0, 1.0, 0.25], dtype=torch.float64)
    theta0 = torch.tensor([1.0, -1.0, 2.0], dtype=torch.float64)
    p = torch.nn.Parameter(theta0.clone())
    q = torch.nn.Parameter(theta0.clone())
    swats = SWATS([p], lr=0.05, switch_eps=1e-3)
    adam = torch.optim.Adam([q], lr=0.05)
    b2 = 0.999
    lam, switched_at = 0.0, None
    for k in range(1, 400):
        before = p.detach().clone()
        g = a * p.detach()
        p.grad = g.clone()
        q.grad = a * q.detach()
        swats.step()
        group = swats.param_groups[0]
        if group["landscape_type"] == "sgd":
            switched_at = k
            break
        adam.step()
        torch.testing.assert_close(p.detach(), q.detach(), rtol=1e-12, atol=1e-14)
        step = p.detach() - before
        gamma = float(step @ step) / -float(step @ g)
        lam = b2 * lam + (1 - b2) * gamma
        assert abs(lam / (1 - b2 ** k) - gamma) >= 1e-3 or k == 1
    assert switched_at is not None, "SWATS never switched on a quadratic with switch_eps=1e-3"
    group = swats.param_groups[0]
    big = group["sgd_lambda"]
    assert group["lr"] == pytest.approx((1 - 0.9) * big) and group["momentum"] == 0.9
    assert group["switch_step"] == switched_at
    # after the switch: heavy ball v ← β₁v + g, w ← w − (1 − β₁)Λ v
    v = torch.zeros(3, dtype=torch.float64)
    w = p.detach().clone()
    for _ in range(5):
        g = a * w
        v = 0.9 * v + g
        w = w - (1 - 0.9) * big * v
        p.grad = a * p.detach()
        swats.step()
        torch.testing.assert_close(p.detach(), w, rtol=1e-12, atol=1e-14)
    assert optimizer_type(swats) == "sgd"


def _tiny_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))


EXPECTED_TYPE = {"sgd": "sgd", "adagrad": "adagrad", "rmsprop": "rmsprop", "adadelta": "adadelta",
                 "adam": "adam", "amsgrad": "adam", "adamw": "adamw", "radam": "radam",
                 "adabound": "adabound", "amsbound": "amsbound", "swats": "adam"}


@pytest.mark.parametrize("name", FAMILIES)
def test_every_family_trains_and_is_recognised_from_its_state(name: str, tmp_path) -> None:
    model = _tiny_model()
    opt = make_optimizer(model.parameters(), OptimizerConfig(name=name, lr=0.01, momentum=0.5))
    x, y = torch.randn(16, 3), torch.randint(0, 2, (16,))
    for _ in range(2):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    assert optimizer_type(opt) == EXPECTED_TYPE[name]
    path = tmp_path / "opt.pt"
    torch.save(opt.state_dict(), path)
    raw = torch.load(path, weights_only=True)
    state = map_optimizer_state(raw, ParamSpace.from_model(model))
    assert state.type == EXPECTED_TYPE[name]
    if name == "amsgrad":
        assert state.amsgrad
    if name in ("adabound", "amsbound", "adam", "adamw", "radam", "swats"):
        assert state.step == 2


def test_unknown_family_is_a_one_line_error() -> None:
    from landscape.errors import SpecError

    with pytest.raises(SpecError, match="unknown optimizer"):
        make_optimizer(_tiny_model().parameters(), OptimizerConfig(name="lion"))


def test_train_with_plateau_schedule_and_switch(tmp_path) -> None:
    from landscape.checkpoint import load_checkpoint
    from landscape.session import open_session
    from landscape.train import TrainConfig, read_log, train

    cfg = TrainConfig(model="mlp:hidden=16", data="digits", optimizer="adabound", lr=1e-3, epochs=4,
                      batch_size=250, scheduler="plateau", plateau_metric="test_loss", plateau_mode="max",
                      plateau_patience=0, plateau_factor=0.5, switch_to_sgd=3, switch_lr=0.05,
                      switch_momentum=0.9)
    train(cfg, tmp_path)
    log = read_log(tmp_path / "log.csv")
    # mode max on a falling test loss: no improvement after epoch 1, patience 0 -> halves
    assert [r["lr"] for r in log[1:4]] == pytest.approx([1e-3, 1e-3, 5e-4])
    assert log[4]["lr"] == pytest.approx(0.05)  # the SGD learning rate after the switch
    assert load_checkpoint(tmp_path / "epoch_003.pt").meta["optimizer_type"] == "adabound"
    s = open_session(str(tmp_path / "epoch_004.pt"))
    assert s.optimizer.type == "sgd" and s.optimizer.momentum == 0.9
    s2 = open_session(str(tmp_path / "epoch_001.pt"))
    assert s2.optimizer.type == "adabound" and float(s2.optimizer.hyper["final_lr"]) == 0.1


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
