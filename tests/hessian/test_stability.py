"""Stability thresholds checked by running the optimizers on quadratics just below and above them."""

import math

import pytest
import torch

from landscape.checkpoint import OptimizerState
from landscape.hessian import stability

pytestmark = pytest.mark.usefixtures("one_thread")


def _spd(top, d=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    U, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    eigs = torch.linspace(0.1, 0.7, d, dtype=torch.float64) * top
    eigs[-1] = top
    return U @ torch.diag(eigs) @ U.T


def _torch_sgd_grows(A, lr, steps=3000, **kw):
    """Real torch.optim.SGD on ½xᵀAx; True when the iterate blew up."""
    x = torch.nn.Parameter(torch.ones(A.shape[0], dtype=torch.float64))
    opt = torch.optim.SGD([x], lr=lr, **kw)
    for _ in range(steps):
        opt.zero_grad()
        (0.5 * x @ A @ x).backward()
        opt.step()
        if float(x.detach().norm()) > 1e6:
            return True
    assert float(x.detach().norm()) < 1e-3, "neither diverged nor converged: margin too small"
    return False


def _sgd_state(lr, momentum=0.0, dampening=0.0, nesterov=False):
    return OptimizerState("sgd", {"lr": lr, "momentum": momentum, "dampening": dampening,
                                  "nesterov": nesterov, "weight_decay": 0.0}, {})


SGD_CASES = [
    ("gd", {}, 2.0),
    ("heavy-ball", {"momentum": 0.9}, 3.8),
    ("heavy-ball-dampened", {"momentum": 0.5, "dampening": 0.5}, 6.0),
    ("nesterov", {"momentum": 0.9, "nesterov": True}, 3.8 / 2.8),
]


@pytest.mark.parametrize("name,kw,coef", SGD_CASES)
def test_sgd_family_thresholds(name, kw, coef):
    lr = 0.05
    st = stability(_sgd_state(lr, **kw), lambda_max=1.0)
    assert st.threshold == pytest.approx(coef / lr)
    for ratio, diverges in ((0.95, False), (1.05, True)):
        lam = ratio * st.threshold
        verdict = stability(_sgd_state(lr, **kw), lambda_max=lam)
        assert verdict.stable is (not diverges)
        assert verdict.ratio == pytest.approx(ratio)
        assert verdict.eta_lambda_max == pytest.approx(lr * lam)
        assert _torch_sgd_grows(_spd(lam), lr, **kw) is diverges


def _frozen_adam_grows(A, P, lr, b1, wd=0.0, steps=3000):
    """Adam's update with P frozen (EMA momentum, bias correction inside P); AdamW decay if wd."""
    x = torch.ones(A.shape[0], dtype=torch.float64)
    m = torch.zeros_like(x)
    for _ in range(steps):
        m = b1 * m + (1 - b1) * (A @ x)
        x = (1 - lr * wd) * x - lr * m / P
        if float(x.norm()) > 1e6:
            return True
    assert float(x.norm()) < 1e-3, "neither diverged nor converged"
    return False


def _pre_top(A, P):
    s = P.rsqrt()
    return float(torch.linalg.eigvalsh(s[:, None] * A * s[None, :])[-1])


@pytest.mark.parametrize("kind,b1,wd", [("adam", 0.9, 0.0), ("adam", 0.5, 0.0), ("adamw", 0.9, 20.0)])
def test_frozen_P_adam_thresholds(kind, b1, wd):
    lr = 0.01
    g = torch.Generator().manual_seed(1)
    P = torch.rand(8, generator=g, dtype=torch.float64) * 2 + 0.1
    state = OptimizerState(kind, {"lr": lr, "betas": (b1, 0.999), "eps": 1e-8, "weight_decay": wd,
                                  "decoupled_weight_decay": kind == "adamw"}, {})
    st = stability(state, lambda_max=0.0, preconditioned_lambda_max=1.0)
    base = (2 + 2 * b1) / ((1 - b1) * lr)
    if kind == "adam":
        assert st.threshold == pytest.approx(base)       # 38/η at β₁ = 0.9
    else:
        # decoupled decay lowers it (η·wd = 0.2 here): 1.05× the corrected threshold diverges
        # although it is below the uncorrected (2+2β₁)/((1−β₁)η)
        assert 1.05 * st.threshold < base
    for ratio, diverges in ((0.95, False), (1.05, True)):
        A0 = _spd(1.0)
        A = A0 * (ratio * st.threshold / _pre_top(A0, P))
        verdict = stability(state, lambda_max=float(torch.linalg.eigvalsh(A)[-1]),
                            preconditioned_lambda_max=_pre_top(A, P))
        assert verdict.stable is (not diverges)
        assert _frozen_adam_grows(A, P, lr, b1, wd) is diverges


def test_rmsprop_momentum_frozen_P_threshold():
    lr, mu = 0.01, 0.5
    g = torch.Generator().manual_seed(2)
    P = torch.rand(8, generator=g, dtype=torch.float64) + 0.2
    state = OptimizerState("rmsprop", {"lr": lr, "momentum": mu, "eps": 1e-8}, {})
    thr = stability(state, lambda_max=0.0, preconditioned_lambda_max=1.0).threshold
    assert thr == pytest.approx((2 + 2 * mu) / lr)
    for ratio, diverges in ((0.95, False), (1.05, True)):
        A0 = _spd(1.0, seed=3)
        A = A0 * (ratio * thr / _pre_top(A0, P))
        x, b = torch.ones(8, dtype=torch.float64), torch.zeros(8, dtype=torch.float64)
        grew = False
        for _ in range(3000):          # torch RMSprop with momentum: b = μb + g/P, x -= lr·b
            b = mu * b + (A @ x) / P
            x = x - lr * b
            if float(x.norm()) > 1e6:
                grew = True
                break
        assert grew is diverges


def test_adaptive_without_preconditioned_value_and_missing_lr():
    st = stability(OptimizerState("adam", {"lr": 1e-3, "betas": (0.9, 0.999)}, {}), lambda_max=5.0)
    assert st.stable is None and math.isnan(st.sharpness)
    st = stability(None, lambda_max=5.0)
    assert st.stable is None and math.isnan(st.threshold)
    st = stability(None, lr=0.1, lambda_max=25.0)
    assert st.optimizer == "sgd" and st.stable is False and st.threshold == pytest.approx(20.0)
    assert set(st.to_json()) >= {"optimizer", "lr", "threshold", "sharpness", "ratio", "eta_lambda_max", "stable"}
