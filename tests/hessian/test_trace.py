"""Trace estimators (landscape.hessian.trace: Hutchinson, Hutch++) against dense float64 Hessians
and a matrix of known spectrum: within 5% after training, honest standard errors."""

import math

import pytest
import torch
from cases import dense_hessian, objective_for, spiked_matrix

from landscape.hessian import DenseOperator, HessianOperator, hutchinson, hutchpp

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


def test_hutchinson_stderr_is_honest_and_hutchpp_beats_it():
    A, eigs = spiked_matrix()
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
