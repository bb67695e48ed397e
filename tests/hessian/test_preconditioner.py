"""Adaptive preconditioners from real torch.optim states, and P^{-1/2} H P^{-1/2} against dense."""

import pytest
import torch
from cases import dense_hessian, make_data, tiny_mlp

from landscape.checkpoint import map_optimizer_state
from landscape.hessian import (
    HessianOperator,
    PreconditionedOperator,
    coupled_weight_decay,
    eigsh,
    preconditioner_diag,
)
from landscape.hessian.analyze import HessianConfig, analyze_hessian
from landscape.objective import Objective
from landscape.params import ParamSpace

pytestmark = pytest.mark.usefixtures("one_thread")


def _flat(model):
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()]).double()


def _grad(model, x, y):
    model.zero_grad()
    torch.nn.functional.cross_entropy(model(x), y).backward()
    return torch.cat([p.grad.reshape(-1) for p in model.parameters()]).double()


def _run(make_opt, steps=6, seed=0):
    """A real optimizer run; returns model, data, θ before and after the last step, its gradient."""
    model = tiny_mlp("tanh", seed=seed).double()
    x, y = make_data(seed=seed)
    x = x.double()
    opt = make_opt(model.parameters())
    for _ in range(steps):
        before = _flat(model)
        g = _grad(model, x, y)
        opt.step()
    state = map_optimizer_state(opt.state_dict(), ParamSpace.from_model(model))
    return model, (x, y), before, _flat(model), g, state


def _buf(state, space, key):
    return torch.cat([state.buffers[n][key].reshape(-1).double() for n in space.names])


ADAMS = {
    "adam": lambda p: torch.optim.Adam(p, lr=0.01),
    "adam-l2": lambda p: torch.optim.Adam(p, lr=0.01, weight_decay=0.05),
    "amsgrad": lambda p: torch.optim.Adam(p, lr=0.01, amsgrad=True, betas=(0.8, 0.99)),
    "adamw": lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=0.1),
}


@pytest.mark.parametrize("name", list(ADAMS))
def test_P_reproduces_a_real_adam_step(name):
    model, _, before, after, _, state = _run(ADAMS[name])
    space = ParamSpace.from_model(model)
    P = preconditioner_diag(state, space)
    m = _buf(state, space, "exp_avg")
    lr = state.lr
    decay = 1 - lr * state.weight_decay if name == "adamw" else 1.0
    assert state.type == ("adamw" if name == "adamw" else "adam")
    assert torch.allclose(after, decay * before - lr * m / P, rtol=0, atol=1e-12)
    if name == "amsgrad":       # P must use max_exp_avg_sq: the plain exp_avg_sq does not fit
        b1, b2 = state.betas
        t = state.step
        P_plain = (1 - b1 ** t) * ((_buf(state, space, "exp_avg_sq") / (1 - b2 ** t)).sqrt() + state.eps)
        assert not torch.allclose(after, before - lr * m / P_plain, rtol=0, atol=1e-12)
    wd = coupled_weight_decay(state, space)
    assert wd == (0.05 if name == "adam-l2" else None)


@pytest.mark.parametrize("name,make", [
    ("rmsprop", lambda p: torch.optim.RMSprop(p, lr=0.01)),
    ("rmsprop-centered", lambda p: torch.optim.RMSprop(p, lr=0.01, centered=True)),
    ("adagrad", lambda p: torch.optim.Adagrad(p, lr=0.05)),
])
def test_P_reproduces_rmsprop_and_adagrad_steps(name, make):
    model, _, before, after, g, state = _run(make)
    P = preconditioner_diag(state, ParamSpace.from_model(model))
    assert torch.allclose(after, before - state.lr * g / P, rtol=0, atol=1e-12)


def test_group_learning_rates_fold_into_P():
    def make(params):
        params = list(params)
        return torch.optim.Adam([{"params": params[:2]}, {"params": params[2:], "lr": 0.003}], lr=0.01)

    model, _, before, after, _, state = _run(make)
    space = ParamSpace.from_model(model)
    P = preconditioner_diag(state, space)
    assert torch.allclose(after, before - state.lr * _buf(state, space, "exp_avg") / P, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", ["adam", "adam-l2"])
def test_preconditioned_top_eigenvalues_match_dense(name):
    model, (x, y), _, _, _, state = _run(ADAMS[name], steps=8)
    obj = Objective(model, x, y, loss="ce", batch_size=16, dtype=torch.float64)
    space = obj.space
    P = preconditioner_diag(state, space)
    wd = coupled_weight_decay(state, space)
    H = dense_hessian(obj) + (wd or 0.0) * torch.eye(obj.dim, dtype=torch.float64)
    s = P.rsqrt()
    exact = torch.linalg.eigvalsh(s[:, None] * H * s[None, :]).flip(0)
    op = PreconditionedOperator(HessianOperator(obj, shift=wd), P)
    res = eigsh(op, k=3, tol=1e-7)
    assert res.converged
    assert torch.allclose(torch.tensor(res.eigenvalues, dtype=torch.float64), exact[:3],
                          rtol=0, atol=1e-4 * float(exact[0]))
    # the same through the analysis API, with the stability verdict on λ₁(P⁻¹H)
    report = analyze_hessian(obj, state, HessianConfig(top_k=2, preconditioned=True, tol=1e-7))
    lam = report.preconditioned.eigenvalues[0]
    assert lam == pytest.approx(float(exact[0]), rel=1e-4)
    st = report.stability
    assert st.on == "P^-1 H" and st.sharpness == lam
    assert st.threshold == pytest.approx(38 / state.lr)
    assert st.ratio == pytest.approx(lam / st.threshold)
    js = report.to_json()
    assert len(js["preconditioned_eigenvalues"]) == 2


def test_sgd_and_missing_state():
    model, _, _, _, _, state = _run(lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=1e-3))
    space = ParamSpace.from_model(model)
    assert preconditioner_diag(state, space) is None
    assert coupled_weight_decay(state, space) == pytest.approx(1e-3)
    assert preconditioner_diag(None, space) is None
