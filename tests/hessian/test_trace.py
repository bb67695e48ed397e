"""Trace (Hutchinson, Hutch++), SLQ density and per-layer blocks against dense float64 Hessians."""

import math

import pytest
import torch
from cases import dense_hessian, objective_for

from landscape.hessian import DenseOperator, HessianOperator, hutchinson, hutchpp, slq
from landscape.hessian.analyze import layer_blocks, per_layer_eigen

pytestmark = pytest.mark.usefixtures("one_thread")


CASES = [("mlp_tanh", "ce"), ("mlp_relu", "mse"), ("bn_cnn", "ce")]


@pytest.fixture(scope="module")
def dense():
    out = {}
    for case, loss in CASES:
        obj = objective_for(case, loss=loss, batch_size=16)
        out[(case, loss)] = (obj, dense_hessian(obj))
    return out


@pytest.fixture(scope="module")
def trained():
    """The same cases after 300 full-batch GD steps (a Hessian like a checkpoint's: few negatives)."""
    out = {}
    for case, loss in CASES:
        obj = objective_for(case, loss=loss, batch_size=16)
        theta = obj.theta0.clone()
        for _ in range(300):
            theta -= 0.5 * obj.grad(theta)
        out[(case, loss)] = (obj, theta, dense_hessian(objective_for(case, loss=loss, batch_size=16), theta))
    return out


@pytest.mark.parametrize("case,loss", CASES)
def test_hutchpp_within_5_percent(trained, case, loss):
    obj, theta, H = trained[(case, loss)]
    true = float(torch.trace(H))
    est = hutchpp(HessianOperator(obj, theta), matvecs=30, seed=0)       # 30 products for d ≈ 50
    assert est.matvecs == 30
    assert abs(est.trace - true) <= 0.05 * abs(true)
    assert est.stderr > 0 and math.isfinite(est.stderr)


@pytest.mark.parametrize("case,loss", CASES)
def test_trace_stderr_covers_the_error_at_init(dense, case, loss):
    """At initialisation the spectra are indefinite and flat (trace ≪ Σ|λ|): no 5% there, but the
    reported standard errors must cover the actual errors."""
    obj, H = dense[(case, loss)]
    true = float(torch.trace(H))
    for est in (hutchpp(HessianOperator(obj), matvecs=30, seed=3),
                hutchinson(HessianOperator(obj), matvecs=30, seed=3)):
        assert abs(est.trace - true) <= 4 * est.stderr


def _spiked(d=400, seed=0):
    g = torch.Generator().manual_seed(seed)
    U, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    eigs = torch.cat([torch.tensor([50.0, 30.0, 20.0, 10.0, 8.0], dtype=torch.float64),
                      torch.rand(d - 5, generator=g, dtype=torch.float64) * 0.5 - 0.1])
    return U @ torch.diag(eigs) @ U.T, eigs


def test_hutchinson_stderr_is_honest_and_hutchpp_beats_it():
    A, eigs = _spiked()
    true = float(eigs.sum())
    errs_h, errs_pp, z = [], [], []
    for seed in range(8):
        h = hutchinson(DenseOperator(A), matvecs=60, seed=seed)
        p = hutchpp(DenseOperator(A), matvecs=60, seed=seed)
        errs_h.append(abs(h.trace - true))
        errs_pp.append(abs(p.trace - true))
        z.append((h.trace - true) / h.stderr)
    # standardized errors look like N(0, 1): none beyond 4, rms within a factor 2 of 1
    assert max(abs(v) for v in z) < 4
    assert 0.4 < math.sqrt(sum(v * v for v in z) / len(z)) < 2.0
    assert sum(errs_pp) < 0.5 * sum(errs_h)


def test_slq_density_and_trace():
    A, eigs = _spiked(d=300, seed=1)
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


def test_slq_on_a_network_matches_dense_moments(dense):
    obj, H = dense[("mlp_tanh", "ce")]
    res = slq(HessianOperator(obj), steps=20, runs=3, seed=1)
    evals = torch.linalg.eigvalsh(H)
    assert max(max(n) for n in res.nodes) == pytest.approx(float(evals[-1]), rel=1e-6)
    assert abs(res.trace - float(evals.sum())) <= 4 * res.trace_stderr + 1e-6 * float(evals.abs().sum())


def test_per_layer_blocks_match_dense_blocks(dense):
    obj, H = dense[("bn_cnn", "ce")]
    blocks = layer_blocks(obj)
    assert list(blocks) == ["conv", "bn", "fc"]
    out = per_layer_eigen(HessianOperator(obj), blocks, tol=1e-7)
    for item in out:
        sl = blocks[item.name]
        exact = float(torch.linalg.eigvalsh(H[sl, sl])[-1])
        assert item.lambda_max == pytest.approx(exact, rel=1e-5, abs=1e-9)
        assert item.params == sl.stop - sl.start
        assert item.converged
