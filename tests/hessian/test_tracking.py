"""The sharpness tracker (train hook writing sharpness.csv) against dense float64 references."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from landscape.checkpoint import map_optimizer_state
from landscape.hessian.batch_sharpness import batch_sharpness
from landscape.hessian.preconditioner import preconditioner_diag
from landscape.hessian.tracking import SHARPNESS_COLUMNS, SharpnessTracker, read_sharpness
from landscape.objective import Objective
from tests.cases import dense_hessian, make_data, tiny_mlp


def _run(opt_name: str, tmp_path, *, batch_size: int, steps: int = 4):
    torch.manual_seed(0)
    model = tiny_mlp("tanh").double()
    x, y = make_data(40)
    x = x.double()
    opt = (torch.optim.Adam(model.parameters(), lr=0.01) if opt_name == "adam"
           else torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9))
    tracker = SharpnessTracker(tmp_path, x=x, y=y, loss="mse-sum", every=2, train_batch_size=batch_size,
                               batches=5, tol=1e-8)
    state = SimpleNamespace(model=model, optimizer=opt, step=0, epoch=0)
    for _ in range(steps):
        opt.zero_grad()
        out = model(x[:batch_size])
        (0.5 * ((out - torch.nn.functional.one_hot(y[:batch_size], 3).double()) ** 2).sum(1).mean()).backward()
        opt.step()
        state.step += 1
        tracker(state)
    return model, x, y, opt, tracker


def test_adam_rows_match_dense(tmp_path) -> None:
    model, x, y, opt, tracker = _run("adam", tmp_path, batch_size=40)
    assert [r["step"] for r in tracker.rows] == [1, 2, 4]
    row = tracker.rows[-1]
    obj = Objective(model, x, y, loss="mse-sum", dtype=torch.float64)
    h = dense_hessian(obj)
    assert row["lambda_max"] == pytest.approx(float(torch.linalg.eigvalsh(h)[-1]), rel=1e-6)
    p = preconditioner_diag(map_optimizer_state(opt.state_dict(), obj.space, "adam"), obj.space)
    s = p.rsqrt()
    pre = float(torch.linalg.eigvalsh(s[:, None] * h * s[None, :])[-1])
    assert row["preconditioned_lambda_max"] == pytest.approx(pre, rel=1e-6)
    assert row["threshold"] == pytest.approx(38 / 0.01) and row["preconditioned_threshold"] == row["threshold"]
    assert row["sharpness"] == row["preconditioned_lambda_max"]
    assert math.isnan(row["batch_sharpness"]) and math.isnan(row["lambda_max_threshold"])
    cols = read_sharpness(tmp_path / "sharpness.csv")
    assert tuple(cols) == SHARPNESS_COLUMNS and cols["step"] == [1.0, 2.0, 4.0]


def test_sgd_minibatch_batch_sharpness(tmp_path) -> None:
    model, x, y, _, tracker = _run("sgd", tmp_path, batch_size=8)
    row = tracker.rows[-1]
    obj = Objective(model, x, y, loss="mse-sum", dtype=torch.float64)
    ref = batch_sharpness(obj, batch_size=8, batches=5, seed=0)
    assert row["batch_sharpness"] == pytest.approx(ref.value, rel=1e-8)
    assert row["batch_sharpness_threshold"] == pytest.approx((2 + 2 * 0.9) / 0.1)
    assert row["on"] == "batch sharpness" and row["ratio"] == pytest.approx(ref.value / row["threshold"])
    assert row["lambda_max"] == pytest.approx(float(torch.linalg.eigvalsh(dense_hessian(obj))[-1]), rel=1e-6)


def test_cli_full_batch_and_minibatch_tracking(tmp_path) -> None:
    from click.testing import CliRunner

    from landscape.cli import main

    gd = tmp_path / "gd"
    r = CliRunner().invoke(main, ["train", "--model", "mlp:hidden=16,act=tanh", "--loss", "mse-sum", "--lr", "0.05",
                                  "--full-batch", "--epochs", "3", "--track-sharpness", "2", "--track-subset", "100",
                                  "--out", str(gd)])
    assert r.exit_code == 0, r.output
    cols = read_sharpness(gd / "sharpness.csv")
    assert cols["step"] == [1.0, 2.0] and cols["threshold"] == [40.0, 40.0]
    assert all(math.isnan(v) for v in cols["batch_sharpness"])  # full batch: no batch sharpness
    meta = torch.load(gd / "epoch_003.pt", weights_only=False)["landscape"]
    assert meta["batch_size"] == 1000 and meta["train"]["epochs"] == 3
    sgd = tmp_path / "sgd"
    r = CliRunner().invoke(main, ["train", "--model", "mlp:hidden=16,act=tanh", "--loss", "mse-sum", "--lr", "0.05",
                                  "--batch-size", "100", "--epochs", "1", "--track-sharpness", "5",
                                  "--track-subset", "300", "--track-batches", "3", "--out", str(sgd)])
    assert r.exit_code == 0, r.output
    cols = read_sharpness(sgd / "sharpness.csv")
    assert cols["step"] == [1.0, 5.0, 10.0]
    assert all(v > 0 for v in cols["batch_sharpness"]) and cols["on"] == ["batch sharpness"] * 3
