"""adam-first-step: hand computation on a small MLP, dead-ReLU counting, and a real digits run."""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch
from torch import nn

from landscape import open_session
from landscape.losses import mean_loss
from landscape.objective import Objective
from landscape.probes.activations import activation_stats
from landscape.probes.adam_first_step import (
    FirstStepConfig,
    _run_optimizer,
    adam_first_step,
    first_batches,
)
from landscape.results import dumps


def _hand_grad(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss: str) -> torch.Tensor:
    m = copy.deepcopy(model)
    m.train()
    out = mean_loss(loss, m(x), y)
    grads = torch.autograd.grad(out, [p for p in m.parameters()])
    return torch.cat([g.reshape(-1) for g in grads])


def test_first_step_matches_hand_computation():
    lr, eps = 0.05, 1e-8
    s = open_session(None, model="mlp:hidden=12", data="digits", loss="mse", subset=300, init_seed=3,
                     seed=3, bn_mode="train")
    before = {k: v.clone() for k, v in s.model.state_dict().items()}
    cfg = FirstStepConfig(lrs=(lr,), batch_size=64, steps=3, seed=3, eps=eps, hessian=False,
                          alphas=(0.0, 0.5, 1.0, 1.5))
    r = adam_first_step(s, cfg)
    # the caller's model is untouched
    assert all(torch.equal(before[k], v) for k, v in s.model.state_dict().items())
    idx = first_batches(s.train.n, batch_size=64, steps=1, seed=3)[0]
    assert torch.equal(idx, torch.randperm(s.train.n, generator=torch.Generator().manual_seed(3))[:64])
    g = _hand_grad(s.model, s.train.x[idx], s.train.y[idx], "mse")
    theta0 = s.train.theta0
    d_adam = -lr * g / (g.abs() + eps)
    d_sgd = -lr * g
    run = r.runs[0]
    d = theta0.numel()
    assert r.n_params == d
    assert run.adam.update_norm == pytest.approx(float(d_adam.norm()), rel=1e-5)
    assert run.adam.update_norm <= lr * math.sqrt(d) + 1e-6
    assert run.adam.bound == pytest.approx(lr * math.sqrt(d))
    assert run.adam.closed_form_error < 1e-5
    assert run.sgd.update_norm == pytest.approx(float(d_sgd.norm()), rel=1e-5)
    assert run.sgd.closed_form_error < 1e-5
    # losses on the full evaluation set before/after (MLP: no buffers, so θ alone decides)
    assert run.adam.loss_before == pytest.approx(s.train.loss(theta0), rel=1e-6)
    assert run.adam.loss_after == pytest.approx(s.train.loss(theta0 + d_adam), rel=1e-4)
    assert run.sgd.loss_after == pytest.approx(s.train.loss(theta0 + d_sgd), rel=1e-4)
    # per-layer relative updates and the amplified fraction, by hand
    for row, (name, sl) in zip(run.adam.per_layer, s.train.space.blocks().items()):
        assert row["name"] == name
        assert row["update_norm"] == pytest.approx(float(d_adam[sl].norm()), rel=1e-5)
        w = float(theta0[sl].norm())
        assert row["relative"] == pytest.approx(float(d_adam[sl].norm()) / w, rel=1e-5)
    tiny = g.abs() < 1e-3 * g.abs().max()
    amp = float((tiny & (d_adam.abs() > lr / 2)).double().mean())
    assert run.adam.amplified_fraction == pytest.approx(amp, abs=1.0 / d)
    assert run.sgd.amplified_fraction == 0.0
    # first-order decrease: Adam η‖g‖₁, SGD η‖g‖²
    assert run.adam.first_order_decrease == pytest.approx(lr * float(g.abs().sum()), rel=1e-5)
    assert run.sgd.first_order_decrease == pytest.approx(lr * float(g @ g), rel=1e-5)
    # slice along the update: α = 1 is the loss after the step
    assert run.adam.slice["loss"][2] == pytest.approx(run.adam.loss_after, rel=1e-4)
    assert len(run.adam.curve["loss"]) == 4 and run.adam.curve["loss"][1] == run.adam.loss_after
    assert "Adam step is" in run.verdict
    assert json.loads(dumps(r))["runs"][0]["adam"]["bound"] == pytest.approx(lr * math.sqrt(d))


class _DeadNet(nn.Module):
    """Linear → nn.ReLU (2 of 6 units dead by a large negative bias) → Linear → F.relu → Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(4, 6)
        self.act = nn.ReLU()
        self.b = nn.Linear(6, 5)
        self.c = nn.Linear(5, 3)
        with torch.no_grad():
            self.a.bias[:2] = -100.0
            self.b.bias[:3] = -100.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c(torch.nn.functional.relu(self.b(self.act(self.a(x)))))


def test_dead_relu_counts_modules_and_functional_calls():
    torch.manual_seed(0)
    x, y = torch.randn(50, 4), torch.randint(0, 3, (50,))
    obj = Objective(_DeadNet(), x, y, batch_size=16)
    st = activation_stats(obj)
    assert st.relu_channels == (6, 5)
    assert st.relu_dead == (2, 3)
    assert st.dead_relu_fraction == pytest.approx(5 / 11)
    assert st.relu_sites[0].startswith("act") and st.relu_sites[1].startswith("<model>")


def test_real_high_lr_adam_run_is_diagnosed(tmp_path):
    """A real MSE + Adam lr 0.1 run on the bundled digits: the probe reproduces the run's first
    step exactly and diagnoses the blow-up from the run's initial checkpoint."""
    from click.testing import CliRunner

    from landscape.cli import main

    run = tmp_path / "adam_mse"
    res = CliRunner().invoke(main, ["train", "--model", "cnn", "--width", "0.25", "--data", "digits", "--loss", "mse",
                                    "--optimizer", "adam", "--lr", "0.1", "--epochs", "1", "--save-steps", "1",
                                    "--out", str(run)])
    assert res.exit_code == 0, res.output
    s = open_session(str(run / "epoch_000.pt"), bn_mode="train")
    batches = first_batches(s.train.n, batch_size=128, steps=1, seed=0)
    traj = _run_optimizer(s, "adam", 0.1, batches, FirstStepConfig(), s.train.evaluate())
    assert torch.equal(traj.theta1, open_session(str(run / "step_000001.pt")).train.theta0)

    out = tmp_path / "afs.json"
    res = CliRunner().invoke(main, ["probe", "adam-first-step", "--init", str(run / "epoch_000.pt"), "--lr", "0.1",
                                    "--steps", "3", "--no-hessian", "--json", str(out)])
    assert res.exit_code == 0, res.output
    d = json.loads(out.read_text())
    assert d["n_params"] == s.n_params
    r = d["runs"][0]
    for key in ("update_norm", "bound", "loss_before", "loss_after", "per_layer", "amplified_fraction",
                "dead_relu_fraction", "curve"):
        assert key in r["adam"]
    for key in ("update_norm", "loss_after", "per_layer", "dead_relu_fraction", "curve"):
        assert key in r["sgd"]
    assert r["adam"]["update_norm"] > 10 * r["sgd"]["update_norm"]
    assert r["adam"]["update_norm"] <= r["adam"]["bound"] * (1 + 1e-6)
    assert r["adam"]["loss_after"] > r["adam"]["loss_before"] > r["sgd"]["loss_after"]
    assert r["adam"]["bn_shift"] and max(b["mean_shift"] for b in r["adam"]["bn_shift"]) > \
        10 * max(b["mean_shift"] for b in r["sgd"]["bn_shift"])
    assert r["verdict"].startswith("Adam step is") and "lr 0.1" in res.output
