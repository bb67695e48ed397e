"""Batch sharpness (Andreyev & Beneventano 2024) against a dense float64 computation."""

from __future__ import annotations

import math

import pytest
import torch

from landscape.errors import LandscapeError
from landscape.hessian.batch_sharpness import batch_indices, batch_sharpness
from tests.cases import objective_for


def _dense_reference(obj, idx: torch.Tensor) -> list:
    """g_Bᵀ H_B g_B / ‖g_B‖² per batch from torch.func.hessian of the batch's mean loss."""
    theta = obj.theta0.detach().to(torch.float64)
    model = obj.model
    out = []
    for rows in idx:
        xb, yb = obj.x[rows].clone(), obj.y[rows].clone()

        def loss(t: torch.Tensor, xb: torch.Tensor = xb, yb: torch.Tensor = yb) -> torch.Tensor:
            logits = torch.func.functional_call(model, (obj.space.unflatten(t), obj._consts), (xb,))
            return obj._sum_loss(logits, yb) / len(yb)

        g = torch.func.grad(loss)(theta)
        h = torch.func.hessian(loss)(theta)
        out.append(float(g @ h @ g / (g @ g)))
    return out


@pytest.mark.parametrize("case,loss", [("mlp_tanh", "ce"), ("mlp_tanh", "mse-sum"), ("bn_cnn", "ce")])
def test_matches_dense(case: str, loss: str) -> None:
    obj = objective_for(case, loss=loss)
    res = batch_sharpness(obj, batch_size=6, batches=9, seed=3)
    idx = batch_indices(obj.n, batch_size=6, batches=9, seed=3)
    ref = _dense_reference(obj, idx)
    assert res.values == pytest.approx(ref, rel=1e-8, abs=1e-10)
    mean = sum(ref) / len(ref)
    sd = math.sqrt(sum((r - mean) ** 2 for r in ref) / (len(ref) - 1))
    assert res.value == pytest.approx(mean, rel=1e-8)
    assert res.stderr == pytest.approx(sd / 3, rel=1e-6)
    assert res.batches == 9 and res.batch_size == 6 and res.hvps == 9
    assert set(res.to_json()) >= {"batch_sharpness", "stderr", "batch_size", "batches", "values"}


def test_indices_disjoint_within_a_pass_and_seeded() -> None:
    idx = batch_indices(37, batch_size=5, batches=10, seed=1)
    assert idx.shape == (10, 5)
    first_pass = idx[:7].reshape(-1)
    assert len(set(first_pass.tolist())) == 35
    assert torch.equal(idx, batch_indices(37, batch_size=5, batches=10, seed=1))
    assert not torch.equal(idx, batch_indices(37, batch_size=5, batches=10, seed=2))


def test_full_batch_equals_gradient_direction_curvature_below_lambda_max() -> None:
    obj = objective_for("mlp_tanh", loss="mse-sum")
    res = batch_sharpness(obj, batch_size=obj.n, batches=1)
    h = torch.linalg.eigvalsh(__import__("tests.cases", fromlist=["dense_hessian"]).dense_hessian(obj))
    assert res.value <= float(h[-1]) + 1e-9
    assert math.isnan(res.stderr)


def test_bad_input() -> None:
    obj = objective_for("mlp_tanh")
    with pytest.raises(LandscapeError):
        batch_sharpness(obj, batch_size=1000, batches=2)
    with pytest.raises(LandscapeError):
        batch_sharpness(obj, batch_size=4, batches=0)


def test_in_hessian_report_with_sgd_verdict() -> None:
    from landscape.hessian.analyze import HessianConfig, analyze_hessian

    obj = objective_for("mlp_tanh", loss="mse-sum")
    cfg = HessianConfig(top_k=1, lr=0.5, batch_sharpness=True, train_batch_size=6, batches=4, seed=3)
    rep = analyze_hessian(obj, None, cfg)
    d = rep.to_json()
    ref = batch_sharpness(obj, batch_size=6, batches=4, seed=3)
    assert d["batch_sharpness"]["batch_sharpness"] == pytest.approx(ref.value, rel=1e-10)
    assert d["batch_stability"]["threshold"] == pytest.approx(2 / 0.5)
    assert d["batch_stability"]["ratio"] == pytest.approx(ref.value * 0.5 / 2, rel=1e-10)
    assert "batch sharpness" in rep.summary()
    with pytest.raises(LandscapeError):
        analyze_hessian(obj, None, HessianConfig(top_k=1, lr=0.5, batch_sharpness=True))
