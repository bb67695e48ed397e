"""The sharpness command's pieces: λ_max against the Hessian engine and the dense Hessian, stability
verdicts from real optimizer states, run folders with warm starts, and the CLI."""

from __future__ import annotations

import json

import pytest
import torch
from cases import CASES, dense_hessian
from click.testing import CliRunner

from landscape.checkpoint import map_optimizer_state
from landscape.cli import main
from landscape.hessian.lanczos import eigsh
from landscape.hessian.operator import HessianOperator
from landscape.objective import Objective
from landscape.params import ParamSpace
from landscape.session import Session
from landscape.sharpness import SharpnessConfig, measure_run, measure_session, parse_measures

LIGHT = dict(steps=2, restarts=1, samples=2, pac_max_samples=2, pac_rel_tol=0.5, trace_matvecs=9)


def _session(model, x, y, opt_state=None) -> Session:
    obj = Objective(model, x, y, batch_size=16, dtype=torch.float64)
    return Session(None, model, None, None, "ce", obj, None, opt_state, ParamSpace.from_model(model))


def _trained(kind: str, lr: float, steps: int = 3):
    """A tiny tanh MLP after a few real optimizer steps, and the optimizer's mapped state."""
    model, x, y = CASES["mlp_tanh"]()
    model = model.double()
    opts = {
        "sgd": lambda p: torch.optim.SGD(p, lr=lr),
        "momentum": lambda p: torch.optim.SGD(p, lr=lr, momentum=0.9),
        "nesterov": lambda p: torch.optim.SGD(p, lr=lr, momentum=0.9, nesterov=True),
        "adam": lambda p: torch.optim.Adam(p, lr=lr, betas=(0.9, 0.999)),
    }
    opt = opts[kind](model.parameters())
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x.double()), y).backward()
        opt.step()
    for p in model.parameters():
        p.grad = None
    state = map_optimizer_state(opt.state_dict(), ParamSpace.from_model(model))
    return model, x, y, state


def test_lambda_max_equals_hessian_engine_and_dense():
    model, x, y = CASES["mlp_tanh"]()
    s = _session(model.double(), x, y)
    res = measure_session(s, SharpnessConfig(measures=("lambda_max",), eig_tol=1e-8, **LIGHT))
    dense = float(torch.linalg.eigvalsh(dense_hessian(s.train))[-1])
    engine = eigsh(HessianOperator(s.train), k=1, which="LA", tol=1e-8, seed=0).eigenvalues[0]
    js = res.to_json()["lambda_max"]
    assert js["value"] == pytest.approx(engine, rel=1e-9)
    assert js["value"] == pytest.approx(dense, rel=1e-6)
    assert js["converged"] and set(res.measures) == {"lambda_max"}


def _adam_p(state, space) -> torch.Tensor:
    """P = (1 − β₁ᵗ)(√(v/(1 − β₂ᵗ)) + ε), written out from the raw buffers."""
    b1, b2 = state.betas
    parts = []
    for name in space.names:
        bufs = state.buffers[name]
        t = float(bufs["step"])
        v = bufs["exp_avg_sq"].double().reshape(-1)
        parts.append((1 - b1 ** t) * (torch.sqrt(v / (1 - b2 ** t)) + state.eps))
    return torch.cat(parts)


@pytest.mark.parametrize("kind,lr,formula", [
    ("sgd", 1.0, lambda lr: 2 / lr),
    ("sgd", 5.0, lambda lr: 2 / lr),
    ("momentum", 1.0, lambda lr: (2 + 2 * 0.9) / lr),
    ("momentum", 10.0, lambda lr: (2 + 2 * 0.9) / lr),
    ("nesterov", 1.0, lambda lr: (2 + 2 * 0.9) / ((1 + 2 * 0.9) * lr)),
    ("nesterov", 5.0, lambda lr: (2 + 2 * 0.9) / ((1 + 2 * 0.9) * lr)),
    ("adam", 0.01, lambda lr: (2 + 2 * 0.9) / ((1 - 0.9) * lr)),
    ("adam", 0.5, lambda lr: (2 + 2 * 0.9) / ((1 - 0.9) * lr)),
])
def test_stability_verdicts_from_real_optimizer_states(kind, lr, formula):
    model, x, y, state = _trained(kind, lr)
    s = _session(model, x, y, state)
    res = measure_session(s, SharpnessConfig(measures=("lambda_max", "stability"), eig_tol=1e-8, **LIGHT))
    st = res.to_json()["stability"]
    h = dense_hessian(s.train)
    if kind == "adam":
        p = _adam_p(state, s.train.space)
        sharp = float(torch.linalg.eigvalsh(h / torch.sqrt(p[:, None] * p[None, :]))[-1])
        assert res.to_json()["preconditioned_lambda_max"]["value"] == pytest.approx(sharp, rel=1e-6)
    else:
        sharp = float(torch.linalg.eigvalsh(h)[-1])
        assert "preconditioned_lambda_max" not in res.measures
    assert st["optimizer"] == ("adam" if kind == "adam" else "sgd")
    assert st["lr"] == lr
    assert st["threshold"] == pytest.approx(formula(lr), rel=1e-12)
    assert st["sharpness"] == pytest.approx(sharp, rel=1e-6)
    assert st["ratio"] == pytest.approx(sharp / formula(lr), rel=1e-6)
    assert st["eta_lambda_max"] == pytest.approx(lr * sharp, rel=1e-6)
    assert st["stable"] == (sharp <= formula(lr))


def test_stability_verdicts_cover_both_outcomes():
    verdicts = set()
    for kind, lr in (("sgd", 1.0), ("sgd", 5.0), ("adam", 0.01), ("adam", 0.5)):
        model, x, y, state = _trained(kind, lr)
        res = measure_session(_session(model, x, y, state),
                              SharpnessConfig(measures=("stability",), eig_tol=1e-6, **LIGHT))
        verdicts.add((kind, res.to_json()["stability"]["stable"]))
    assert verdicts == {("sgd", True), ("sgd", False), ("adam", True), ("adam", False)}


def test_parse_measures():
    assert parse_measures(None)[0] == "lambda_max"
    assert parse_measures("eps, worst-case,lambda_max") == ("lambda_max", "eps_sharpness", "worst_case_sharpness")
    from landscape.errors import LandscapeError

    with pytest.raises(LandscapeError, match="unknown measure"):
        parse_measures("sharpest")


def test_run_folder_warm_starts_and_series(digits_run):
    cfg = SharpnessConfig(measures=("lambda_max", "worst_case_sharpness", "stability"), **LIGHT)
    run = measure_run(digits_run, cfg, subset=120)
    epochs = [r.epoch for r in run.results]
    assert epochs == sorted(epochs) and epochs[0] == 0 and len(epochs) >= 3
    warm = [r.to_json()["lambda_max"]["warm_start"] for r in run.results]
    assert warm == [False] + [True] * (len(epochs) - 1)
    s = run.series()
    assert s["epoch"] == epochs
    assert all(t == pytest.approx((2 + 2 * 0.9) / 0.05) for t in s["threshold"])
    # the verdict is on the training objective (BatchNorm batch statistics over the run's batch size),
    # λ_max on the evaluated one (running statistics)
    stabs = [r.to_json()["stability"] for r in run.results]
    assert s["stability_sharpness"] == [st["lambda_max"] for st in stabs]
    # batches of the run's 128, here one batch of all 120 evaluated samples
    assert all(st["objective"]["bn_mode"] == "train" and st["objective"]["batch_size"] == 120 for st in stabs)
    assert all(v is not None and v > 0 for v in s["worst_case_sharpness"][1:])
    assert "sharpness" in run.table() and "threshold" in run.table()


def test_cli_checkpoints_side_by_side_and_run_folder(digits_run, tmp_path):
    runner = CliRunner()
    ckpts = sorted(str(p) for p in digits_run.glob("epoch_*.pt"))
    light = ["--subset", "100", "--steps", "2", "--restarts", "1", "--samples", "2",
             "--pac-max-samples", "2", "--trace-matvecs", "6"]
    out = tmp_path / "s.json"
    r = runner.invoke(main, ["sharpness", ckpts[0], ckpts[-1], *light, "--json", str(out)])
    assert r.exit_code == 0, r.output
    assert "gap loss (test-train)" in r.output and "eps-sharpness" in r.output
    d = json.loads(out.read_text())
    rec = d["checkpoints"][1]
    for key in ("lambda_max", "trace", "eps_sharpness", "worst_case_sharpness", "adaptive_sharpness",
                "average_sharpness", "pac_bayes_sigma", "pac_bayes_mag_sigma", "stability", "gap", "config"):
        assert key in rec, key
    assert set(rec["stability"]) >= {"optimizer", "lr", "threshold", "sharpness", "ratio", "eta_lambda_max", "stable"}
    assert rec["gap"]["loss"] == pytest.approx(rec["test"]["loss"] - rec["train"]["loss"])
    assert rec["config"]["eps"] == 1e-3 and rec["config"]["rho"] == 0.05
    assert rec["perturbation"]["include_bn"] is False
    assert rec["pac_bayes_sigma"]["criterion"] == "loss"
    # a run folder, with only a few measures, and an HTML report
    html = tmp_path / "s.html"
    r = runner.invoke(main, ["sharpness", str(digits_run), *light, "--measures", "average",
                             "--json", str(out), "--html", str(html)])
    assert r.exit_code == 0, r.output
    d = json.loads(out.read_text())
    assert d["kind"] == "sharpness_run" and len(d["series"]["epoch"]) == len(ckpts)
    assert "eps_sharpness" not in d["checkpoints"][0]
    assert html.exists() and html.stat().st_size > 1000
    # user errors are one line
    r = runner.invoke(main, ["sharpness", str(digits_run), ckpts[0]])
    assert r.exit_code == 1 and "either checkpoint files or a single run folder" in r.output
    r = runner.invoke(main, ["sharpness", ckpts[0], "--measures", "bogus"])
    assert r.exit_code == 1 and "unknown measure" in r.output
    r = runner.invoke(main, ["sharpness", ckpts[0], "--rho", "-1"])
    assert r.exit_code == 2 and "--rho" in r.output and "out of range" in r.output
