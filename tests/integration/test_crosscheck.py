"""landscape's Hessian engine against independent code (tests/crosscheck.py): PyPI pyhessian 0.1's
power iteration, Hutchinson trace and SLQ on the same Objective agree with landscape's Lanczos,
Hutch++ and the dense trace. (`landscape hessian --backend pyhessian` was removed: the package no
longer imports test-only code; these references live with the tests and benchmarks.)"""

import pytest
import torch
from cases import dense_hessian
from crosscheck import pyhessian_density, pyhessian_top, pyhessian_trace

from landscape.hessian import eigsh
from landscape.hessian.operator import HessianOperator
from landscape.session import open_session

pytestmark = pytest.mark.usefixtures("one_thread")


def test_pyhessian_agrees_with_landscape_on_a_real_checkpoint(digits_run):
    s = open_session(str(digits_run / "epoch_003.pt"), subset=200)
    ours = eigsh(HessianOperator(s.train), k=1, tol=1e-4, seed=0)
    theirs = pyhessian_top(s.train, k=1, seed=0)
    assert theirs.eigenvalues[0] == pytest.approx(ours.eigenvalues[0], rel=1e-2)
    assert theirs.method == "pyhessian-power" and theirs.matvecs > ours.matvecs


def test_pyhessian_trace_and_density_match_dense_references():
    from cases import objective_for

    obj = objective_for("mlp_tanh", dtype=torch.float64)
    exact = float(torch.trace(dense_hessian(obj)))
    tr, err, n = pyhessian_trace(obj, seed=0, max_iter=200)
    assert abs(tr - exact) <= 5 * err + 1e-9 and n > 1
    # SLQ: the quadrature nodes are Ritz values, the largest converges to λ_max; weights sum to 1
    lam = float(torch.linalg.eigvalsh(dense_hessian(obj))[-1])
    nodes, weights, _ = pyhessian_density(obj, steps=min(obj.dim, 40), runs=1, seed=0)
    assert max(nodes[0]) == pytest.approx(lam, rel=1e-3)
    assert sum(weights[0]) == pytest.approx(1.0, rel=1e-6)


def test_removed_pyhessian_backend_is_a_one_line_error(digits_run):
    from click.testing import CliRunner

    from landscape.cli import main

    res = CliRunner().invoke(main, ["hessian", str(digits_run / "epoch_003.pt"), "--backend", "pyhessian"])
    assert res.exit_code != 0 and "--backend pyhessian was removed" in res.output
    assert "Traceback" not in res.output and "--backend" not in CliRunner().invoke(main, ["hessian", "--help"]).output
