"""Stochastic Lanczos quadrature (landscape.hessian.density) against a matrix of known spectrum and
against the dense float64 Hessian of a small network (extreme node, trace, unit mass)."""

import math

import pytest
import torch
from cases import dense_hessian, objective_for, spiked_matrix

from landscape.hessian import DenseOperator, HessianOperator, slq

pytestmark = pytest.mark.usefixtures("one_thread")


def test_slq_density_and_trace():
    A, eigs = spiked_matrix(d=300, seed=1)
    res = slq(DenseOperator(A), steps=40, runs=4, seed=0, grid_points=2000)
    grid = torch.tensor(res.grid, dtype=torch.float64)
    vals = torch.tensor(res.values, dtype=torch.float64)
    mass = float(torch.trapezoid(vals, grid))
    assert mass == pytest.approx(1.0, abs=0.02)                    # a probability density
    assert max(max(n) for n in res.nodes) == pytest.approx(50.0, rel=1e-6)   # extreme node = λ_max
    for w in res.weights:
        assert sum(w) == pytest.approx(1.0, abs=1e-10)
    # the SLQ trace d·Σ τθ is zᵀAz per run (‖z‖² = d): unbiased, variance 2(‖A‖²_F − Σ A_ii²)/runs
    sd = math.sqrt(2 * (float((A * A).sum()) - float((A.diagonal() ** 2).sum())) / res.runs)
    assert abs(res.trace - float(eigs.sum())) <= 4 * sd
    # the bulk (95% of the eigenvalues) sits in [-0.1, 0.4]: most of the mass is there
    bulk = (grid > -0.1 - 5 * res.sigma) & (grid < 0.4 + 5 * res.sigma)
    assert float(torch.trapezoid(vals * bulk, grid)) > 0.9
    assert res.matvecs == 160


def test_slq_on_a_network_matches_dense_moments():
    obj = objective_for("mlp_tanh", loss="ce", batch_size=16)
    H = dense_hessian(obj)
    res = slq(HessianOperator(obj), steps=20, runs=3, seed=1)
    evals = torch.linalg.eigvalsh(H)
    assert max(max(n) for n in res.nodes) == pytest.approx(float(evals[-1]), rel=1e-6)
    assert abs(res.trace - float(evals.sum())) <= 4 * res.trace_stderr + 1e-6 * float(evals.abs().sum())
