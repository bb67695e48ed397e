"""The one curvature verdict (landscape.hessian.verdict): the spike probe and `landscape hessian`
agree on λ₁(P⁻¹(H + wd)) for Adam with L2 weight decay (the probe used to leave the decay out), the
verdict is on the training objective whatever --bn-mode says, and it matches dense references."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from cases import dense_hessian
from click.testing import CliRunner

from landscape.cli import main
from landscape.hessian.verdict import curvature_verdict, training_objective
from landscape.objective import Objective
from landscape.optim.families import preconditioner_diag
from landscape.probes.spikes import SpikeProbeConfig, probe_checkpoint
from landscape.session import open_session
from landscape.train import TrainConfig, train

pytestmark = pytest.mark.usefixtures("one_thread")


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def hessian_json(ckpt, out, *flags) -> dict:
    """`landscape hessian CKPT --top-k 1 --subset 128 --dtype float64 FLAGS --json OUT`, read back."""
    res = run("hessian", ckpt, "--top-k", 1, "--subset", 128, "--dtype", "float64", *flags, "--json", out)
    assert res.exit_code == 0, res.output
    return json.loads(out.read_text())


def adam_run(tmp_path_factory, name: str, **config) -> Path:
    """One epoch of Adam (lr 0.01, seed 0) on the digits with ``config``, in a fresh folder."""
    out = tmp_path_factory.mktemp(name)
    train(TrainConfig(data="digits", optimizer="adam", lr=0.01, epochs=1, seed=0, **config), out)
    return out


@pytest.fixture(scope="module")
def adam_l2_run(tmp_path_factory):
    return adam_run(tmp_path_factory, "adam_l2", model="mlp:hidden=12", weight_decay=0.05, batch_size=128)


@pytest.fixture(scope="module")
def adam_bn_run(tmp_path_factory):
    return adam_run(tmp_path_factory, "adam_bn", model="cnn:bn=true", batch_size=64, width=0.25)


def test_spike_probe_and_hessian_agree_with_l2_weight_decay(adam_l2_run, tmp_path):
    ckpt = adam_l2_run / "epoch_001.pt"
    st = hessian_json(ckpt, tmp_path / "h.json", "--tol", 1e-8)["stability"]
    kwargs = {"subset": 128, "dtype": "float64", "seed": 0}
    probe = probe_checkpoint(ckpt, 1, "at", 1.0, prev=None, log=[], cfg=SpikeProbeConfig(tol=1e-8, points=3),
                             session_kwargs=kwargs)
    # the dense reference: top eigenvalue of P^-1/2 (H + wd I) P^-1/2
    s = open_session(str(ckpt), **kwargs)
    wd = 0.05
    H = dense_hessian(s.train) + wd * torch.eye(s.train.dim, dtype=torch.float64)
    r = preconditioner_diag(s.optimizer, s.space).rsqrt()
    exact = float(torch.linalg.eigvalsh(r[:, None] * H * r[None, :])[-1])
    assert st["coupled_weight_decay"] == pytest.approx(wd)
    assert st["sharpness"] == pytest.approx(exact, rel=1e-6)
    assert probe.preconditioned_sharpness == pytest.approx(exact, rel=1e-6)
    assert probe.preconditioned_sharpness == pytest.approx(st["sharpness"], rel=1e-6)
    assert probe.stability["threshold"] == pytest.approx(st["threshold"]) == pytest.approx(38 / 0.01)


def test_bn_verdict_is_the_same_in_eval_and_train_mode(adam_bn_run, tmp_path):
    ckpt = adam_bn_run / "epoch_001.pt"
    outs = {mode: hessian_json(ckpt, tmp_path / f"{mode}.json", "--bn-mode", mode, "--tol", 1e-6, "--preconditioned")
            for mode in ("eval", "train")}
    ev, tr = outs["eval"]["stability"], outs["train"]["stability"]
    for key in ("sharpness", "threshold", "ratio", "preconditioned_lambda_max"):
        assert ev[key] == pytest.approx(tr[key], rel=1e-6), key
    assert ev["stable"] == tr["stable"]
    assert ev["objective"]["bn_mode"] == tr["objective"]["bn_mode"] == "train"
    assert ev["objective"]["batch_size"] == tr["objective"]["batch_size"] == 64   # the run's batch size
    # the reported eigenvalues follow --bn-mode (running statistics vs batch statistics)
    assert outs["eval"]["eigenvalues"][0] != pytest.approx(outs["train"]["eigenvalues"][0], rel=1e-3)
    assert "running statistics" in outs["eval"]["objectives"]["eigenvalues"]
    assert "batch statistics over batches of 64" in outs["eval"]["objectives"]["stability"]
    # --preconditioned reports λ(P^-1/2 H P^-1/2) on the evaluated objective, the verdict keeps its own
    assert "running statistics" in outs["eval"]["objectives"]["preconditioned_eigenvalues"]
    assert outs["eval"]["preconditioned_eigenvalues"][0] != pytest.approx(ev["preconditioned_lambda_max"], rel=1e-3)
    assert "over batches of 128" in outs["train"]["objectives"]["preconditioned_eigenvalues"]


def test_training_objective_is_batch_statistics_over_the_run_batch_size(adam_bn_run):
    s = open_session(str(adam_bn_run / "epoch_001.pt"), subset=96, dtype="float64")
    obj = s.train
    before = obj.evaluate().loss
    t = training_objective(obj, batch_size=32)
    ref = Objective(s.model, obj.x, obj.y, loss=obj.loss_name, batch_size=32, bn_mode="train", dtype=torch.float64)
    assert t.bn_mode == "train" and t.batch_size == 32 and t.space.names == obj.space.names
    assert t.evaluate().loss == pytest.approx(ref.evaluate().loss, rel=1e-12)
    assert obj.evaluate().loss == before and obj.bn_mode == "eval"          # the caller's is untouched
    assert training_objective(t, batch_size=32) is t


def test_verdict_without_batchnorm_is_dense_exact_and_reuses_the_objective():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 3)).double()
    x, y = torch.randn(40, 4, dtype=torch.float64), torch.randint(0, 3, (40,))
    obj = Objective(model, x, y, loss="ce", batch_size=16)
    assert training_objective(obj, batch_size=8) is obj
    v = curvature_verdict(obj, None, lr=0.5, tol=1e-10, seed=0)
    lam = float(torch.linalg.eigvalsh(dense_hessian(obj))[-1])
    assert v.lambda_max == pytest.approx(lam, rel=1e-8)
    assert v.threshold == pytest.approx(4.0) and v.ratio == pytest.approx(lam / 4.0, rel=1e-8)
    assert v.stable is (lam <= 4.0) and v.converged and v.same_objective
    d = v.to_json()
    assert d["objective"]["batchnorm"] is False and d["on"] == "H" and d["lambda_max"] == v.lambda_max
    # warm start: a second call from the first's eigenvector needs fewer products
    again = curvature_verdict(obj, None, lr=0.5, tol=1e-10, seed=1, warm=v.warm)
    assert again.hvps < v.hvps and again.lambda_max == pytest.approx(lam, rel=1e-8)
