"""adam-first-step: hand computation on a small MLP, dead-ReLU counting, the causes on small
models and data made here (softmax-MSE saturation, logit-MSE collapse, the amplified-coordinates
experiment), --compare-losses, and a real digits run."""

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
from landscape.probes.activations import activation_stats, output_stats
from landscape.probes.adam_first_step import (
    AdamFirstStepResult,
    FirstStepConfig,
    _run_optimizer,
    _step1_preconditioner,
    adam_first_step,
    first_batches,
)
from landscape.results import dumps
from landscape.session import Session

pytestmark = pytest.mark.usefixtures("one_thread")


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
    # the amplified-coordinates experiment by hand: Δ on |g| < 1e-2·max|g| only, and on the rest only
    ex = run.adam.amplified_experiment
    small = g.abs() < 1e-2 * g.abs().max()
    d_small = torch.where(small, d_adam, torch.zeros_like(d_adam))
    assert ex["small_fraction"] == pytest.approx(float(small.double().mean()), abs=1.0 / d)
    assert ex["loss_small_only"] == pytest.approx(s.train.loss(theta0 + d_small), rel=1e-4)
    assert ex["loss_large_only"] == pytest.approx(s.train.loss(theta0 + d_adam - d_small), rel=1e-4)
    assert ex["rise_full"] == pytest.approx(run.adam.loss_after - run.adam.loss_before, rel=1e-4, abs=1e-7)
    # grad norms and output statistics at the three points, by hand
    assert run.adam.grad_norm["before"] == pytest.approx(float(s.train.grad(theta0).norm()), rel=1e-5)
    assert run.adam.grad_norm["after"] == pytest.approx(float(s.train.grad(theta0 + d_adam).norm()), rel=1e-3)
    assert run.adam.logit_scale["after"]["max"] == pytest.approx(
        output_stats(s.train, theta0 + d_adam).max_abs_logit, rel=1e-4)
    # Adam's P after step 1 through the one definition (optim.families) is (1 − β₁)(|g| + ε)
    traj = _run_optimizer(s, "adam", lr, [idx], cfg, s.train.evaluate())
    p1 = _step1_preconditioner(s.train, traj.state1)
    assert torch.allclose(p1, (0.1 * (g.abs() + eps)).double(), rtol=1e-5, atol=1e-12)
    assert [c["name"] for c in run.causes] == ["softmax_saturation", "output_collapse", "dead_units",
                                               "amplified_coordinates", "curvature_overshoot", "no_recovery"]


def test_output_stats_by_hand():
    """Saturation, logit scale and the between-sample share on a model whose logits are known."""
    class Fixed(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.zeros(1))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + 0 * self.w

    z = torch.tensor([[20.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 3.0], [1.0, 1.0, 1.0]], dtype=torch.float64)
    st = output_stats(Objective(Fixed(), z, torch.zeros(4, dtype=torch.long), batch_size=3))
    p = torch.softmax(z, dim=-1).amax(dim=-1)
    assert st.saturation == pytest.approx(float((p > 1 - 1e-4).double().mean())) == 0.25
    assert st.max_abs_logit == 20.0 and st.rms_logit == pytest.approx(float(z.pow(2).mean().sqrt()))
    between = float(((z - z.mean(0)) ** 2).sum())
    assert st.between_sample_share == pytest.approx(between / float(((z - z.mean()) ** 2).sum()))
    same = output_stats(Objective(Fixed(), z[[0, 0, 0]], torch.zeros(3, dtype=torch.long)))
    assert same.between_sample_share == 0.0  # the output does not depend on the input


def _clusters(n: int = 256, d: int = 16, classes: int = 10, scale: float = 0.5, seed: int = 0):
    """Gaussian clusters, hard enough that nothing fits them in a few steps."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, d, generator=g) * scale
    y = torch.arange(n) % classes
    return centres[y] + torch.randn(n, d, generator=g), y


def _mlp(d: int, width: int, classes: int, *, bn: bool, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    norm = (lambda: [nn.BatchNorm1d(width)]) if bn else (lambda: [])
    return nn.Sequential(nn.Linear(d, width), *norm(), nn.ReLU(), nn.Linear(width, width), *norm(), nn.ReLU(),
                         nn.Linear(width, classes))


def _probe(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss: str, *, bn_mode: str = "train",
           **cfg) -> AdamFirstStepResult:
    obj = Objective(model, x, y, loss=loss, batch_size=256, bn_mode=bn_mode)
    session = Session(None, model, None, None, loss, obj, None, None, obj.space)
    base = dict(batch_size=64, steps=10, hessian=False, alphas=(0.0, 1.0))
    return adam_first_step(session, FirstStepConfig(**{**base, **cfg}))


def _cause(run, name: str) -> dict:  # noqa: ANN001
    return next(c for c in run.causes if c["name"] == name)


def test_softmax_mse_death_is_saturation_and_training_run_is_not():
    """A wide MLP under softmax-MSE: Adam at lr 0.1 saturates the softmax and its gradient vanishes
    (dies); at lr 0.001 it trains and the cause is not supported; under CE at lr 0.1 the gradient
    does not vanish, so saturation is not the story there."""
    x, y = _clusters()
    r = _probe(_mlp(16, 128, 10, bn=False), x, y, "mse-softmax", lrs=(0.1, 0.001), losses=("mse-softmax", "ce"))
    by = {(run.loss, run.lr): run for run in r.runs}
    dead, alive, ce = by[("mse-softmax", 0.1)], by[("mse-softmax", 0.001)], by[("ce", 0.1)]
    assert _cause(dead, "softmax_saturation")["supported"] and _cause(dead, "no_recovery")["supported"]
    assert dead.adam.saturation["end"] > 0.9 and dead.adam.grad_norm["end"] < 1e-3 * dead.adam.grad_norm["before"]
    assert "softmax saturation" in dead.mechanism and "does not train again" in dead.mechanism
    assert alive.adam.recovered and not _cause(alive, "softmax_saturation")["supported"]
    assert not _cause(alive, "no_recovery")["supported"] and "trains again" in alive.mechanism
    assert not _cause(ce, "softmax_saturation")["supported"]
    assert ce.adam.grad_norm["end"] > 1e-2 * ce.adam.grad_norm["before"]
    # every cause carries its evidence with numbers, and the JSON has them
    d = json.loads(dumps(r))
    assert sorted(d["by_loss"]) == ["ce", "mse-softmax"]
    for run in d["runs"]:
        for c in run["causes"]:
            assert set(c) >= {"name", "supported", "evidence", "numbers"} and any(ch.isdigit() for ch in c["evidence"])
        for key in ("saturation", "grad_norm", "logit_scale", "output_collapse", "dead_units"):
            assert key in run["adam"] and key in run["sgd"]


def test_logit_mse_collapse_is_output_collapse():
    """A BN MLP under logit MSE: Adam at lr 0.1 ends with input-independent logits (and dead
    units in eval mode); SGD from the same start does not collapse."""
    x, y = _clusters()
    r = _probe(_mlp(16, 128, 10, bn=True), x, y, "mse", lrs=(0.1,), steps=20)
    run = r.runs[0]
    c = _cause(run, "output_collapse")
    assert c["supported"], c["evidence"]
    assert run.adam.output_collapse["end"] < 0.05 and run.sgd.output_collapse["end"] > 0.5
    assert "output collapse" in run.mechanism
    assert not _cause(run, "softmax_saturation")["supported"]
    layers = run.adam.dead_units["end"]["layers"]
    assert len(layers) == 2 and all(0 <= row["fraction"] <= 1 for row in layers)


def test_amplified_coordinates_is_deterministic_and_in_json():
    x, y = _clusters(n=128)
    runs = [_probe(_mlp(16, 64, 10, bn=True), x, y, "mse-softmax", lrs=(0.1,), steps=2) for _ in range(2)]
    a, b = (json.loads(dumps(r))["runs"][0] for r in runs)
    assert a["adam"]["amplified_experiment"] == b["adam"]["amplified_experiment"]
    assert a["causes"] == b["causes"] and a["mechanism"] == b["mechanism"]
    amp = next(c for c in a["causes"] if c["name"] == "amplified_coordinates")
    for key in ("threshold", "small_fraction", "loss_before", "loss_full", "loss_small_only", "loss_large_only",
                "rise_full", "rise_small_only", "rise_large_only", "norm_small_only", "norm_large_only"):
        assert isinstance(amp["numbers"][key], float), key
    ex = a["adam"]["amplified_experiment"]
    assert ex["loss_full"] == pytest.approx(a["adam"]["loss_after"], rel=1e-5)
    assert amp["supported"] == (ex["rise_full"] > 0 and ex["rise_small_only"] >= 0.5 * ex["rise_full"])


def test_stability_numbers_are_on_the_training_objective_whatever_the_bn_mode():
    """λ_max and Adam's λ₁(P₁⁻¹H) use BatchNorm batch statistics over the training batch size, so
    evaluating with running statistics (bn_mode eval) does not change them."""
    x, y = _clusters(n=128)
    runs = [_probe(_mlp(16, 32, 10, bn=True), x, y, "ce", bn_mode=mode, lrs=(0.1,), steps=1, hessian=True, tol=1e-6)
            for mode in ("train", "eval")]
    (a, b) = runs
    assert a.lambda_max["value"] == pytest.approx(b.lambda_max["value"], rel=1e-6)
    assert a.adam_step1_preconditioned_sharpness["value"] == pytest.approx(
        b.adam_step1_preconditioned_sharpness["value"], rel=1e-6)
    obj = a.by_loss["ce"]["stability_objective"]
    assert obj["bn_mode"] == "train" and obj["batch_size"] == 64
    assert b.by_loss["ce"]["stability_objective"] == obj
    assert a.runs[0].adam.loss_before != b.runs[0].adam.loss_before  # the evaluations do follow bn_mode


def test_compare_losses_cli(tmp_path):
    from click.testing import CliRunner

    from landscape.cli import main

    out = tmp_path / "afs.json"
    args = ["probe", "adam-first-step", "--model", "mlp:hidden=16", "--data", "digits", "--subset", "200",
            "--lr", "0.1", "--steps", "2", "--batch-size", "64", "--no-hessian", "--json", str(out)]
    res = CliRunner().invoke(main, args + ["--loss", "ce", "--compare-losses", "mse-softmax,ce"])
    assert res.exit_code == 0, res.output
    d = json.loads(out.read_text())
    assert [(r["loss"], r["lr"]) for r in d["runs"]] == [("ce", 0.1), ("mse-softmax", 0.1)]
    assert "lr 0.1, mse-softmax: Adam at lr 0.1 under mse-softmax" in res.output
    # every loss convention: the starting loss of each is its own (mse-sum = C/2 · mse on logits)
    res = CliRunner().invoke(main, args + ["--compare-losses", "all"])
    assert res.exit_code == 0, res.output
    d = json.loads(out.read_text())
    assert [r["loss"] for r in d["runs"]] == ["ce", "mse", "mse-sum", "mse-softmax"]
    start = {k: v["loss_before"] for k, v in d["by_loss"].items()}
    assert start["mse-sum"] == pytest.approx(5 * start["mse"], rel=1e-5)
    assert all(len(r["causes"]) == 6 and r["mechanism"] for r in d["runs"])
    res = CliRunner().invoke(main, args + ["--compare-losses", "ce,hinge"])
    assert res.exit_code != 0
    assert res.output.strip().splitlines()[-1].startswith("error: --compare-losses 'ce,hinge': unknown loss hinge")


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
    assert r["loss"] == "mse" and r["mechanism"].startswith("Adam at lr 0.1 under mse")
