"""`landscape hessian` end to end on real digits runs (SGD+momentum and Adam)."""

import json

import pytest
import torch
from cases import dense_hessian
from click.testing import CliRunner

from landscape.cli import main
from landscape.hessian import preconditioner_diag
from landscape.session import open_session

pytestmark = pytest.mark.usefixtures("one_thread")


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_hessian_cli_sgd_momentum_all_options(digits_run, tmp_path):
    out = tmp_path / "h.json"
    res = run("hessian", digits_run / "epoch_003.pt", "--top-k", 3, "--smallest", "--trace",
              "--trace-matvecs", 12, "--density", "--density-steps", 12, "--per-layer", "--subset", 200,
              "--json", out)
    assert res.exit_code == 0, res.output
    d = json.loads(out.read_text())
    for key in ("eigenvalues", "residuals", "converged", "smallest_eigenvalue", "trace", "trace_stderr",
                "density", "per_layer", "stability", "hvps", "seconds", "provenance"):
        assert key in d, key
    assert "preconditioned_eigenvalues" not in d          # SGD: nothing to precondition
    ev = d["eigenvalues"]
    assert len(ev) == 3 and ev == sorted(ev, reverse=True) and d["converged"] is True
    assert d["criterion"] == "values" and d["stopped"] == "converged" and len(d["error_bounds"]) == 3
    assert all(b <= 1e-4 * ev[0] * 1.001 for b in d["error_bounds"])     # the default criterion
    assert d["smallest_eigenvalue"] <= ev[-1]
    assert set(d["density"]) >= {"grid", "values"} and len(d["density"]["grid"]) == len(d["density"]["values"])
    assert [p["name"] for p in d["per_layer"]] == ["features.0", "features.1", "features.4", "features.5",
                                                   "classifier"]
    assert max(p["lambda_max"] for p in d["per_layer"]) <= ev[0] * (1 + 1e-3)   # a block's top ≤ λ_max
    st = d["stability"]
    assert set(st) >= {"optimizer", "lr", "threshold", "sharpness", "ratio", "eta_lambda_max", "stable"}
    assert st["optimizer"] == "sgd" and st["lr"] == 0.05
    assert st["threshold"] == pytest.approx((2 + 2 * 0.9) / 0.05)      # heavy ball, β = 0.9
    # the verdict is on the training objective (BatchNorm batch statistics over the run's batch 128),
    # the reported eigenvalues on the evaluated one (--bn-mode eval: running statistics)
    assert st["objective"]["bn_mode"] == "train" and st["objective"]["batch_size"] == 128
    assert st["sharpness"] == pytest.approx(st["lambda_max"]) and st["stable"] == (st["sharpness"] <= st["threshold"])
    assert "running statistics" in d["objectives"]["eigenvalues"]
    assert d["hvps"] > 0 and d["provenance"]["n_train"] == 200
    assert "top-3 Hessian eigenvalues" in res.output


def test_adam_checkpoint_preconditioned_matches_dense(tmp_path):
    run_dir = tmp_path / "adam"
    res = run("train", "--model", "mlp:hidden=16", "--optimizer", "adam", "--lr", 0.01, "--epochs", 1,
              "--out", run_dir)
    assert res.exit_code == 0, res.output
    ckpt = run_dir / "epoch_001.pt"
    out = tmp_path / "h.json"
    res = run("hessian", ckpt, "--top-k", 2, "--preconditioned", "--subset", 200, "--tol", 1e-6,
              "--dtype", "float64", "--json", out)
    assert res.exit_code == 0, res.output
    d = json.loads(out.read_text())
    s = open_session(str(ckpt), subset=200, dtype="float64")
    H = dense_hessian(s.train)
    p = preconditioner_diag(s.optimizer, s.space).rsqrt()
    exact = torch.linalg.eigvalsh(p[:, None] * H * p[None, :]).flip(0)
    assert d["preconditioned_eigenvalues"] == pytest.approx(exact[:2].tolist(), rel=1e-4)
    assert d["eigenvalues"] == pytest.approx(torch.linalg.eigvalsh(H).flip(0)[:2].tolist(), rel=1e-4)
    st = d["stability"]
    assert st["optimizer"] == "adam" and st["on"] == "P^-1 H"
    assert st["threshold"] == pytest.approx(38 / 0.01) and st["sharpness"] == d["preconditioned_eigenvalues"][0]


def test_bad_options_are_one_line_errors(digits_run):
    res = run("hessian", digits_run / "epoch_003.pt", "--top-k", 0, "--subset", 50)
    assert res.exit_code == 2 and "--top-k" in res.output and "out of range: need 1 <= x" in res.output
    res = run("hessian", digits_run / "missing.pt")
    assert res.exit_code == 1 and res.output.startswith("error:")
