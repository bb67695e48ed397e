"""Lanczos / power iteration against exact dense float64 Hessians (tests/cases.py)."""

import pytest
import torch
from cases import dense_hessian, objective_for
from crosscheck import arpack_eigsh, power_iteration
from torch import nn

from landscape.hessian import DenseOperator, HessianOperator, eigsh, top_eigen
from landscape.objective import Objective

pytestmark = pytest.mark.usefixtures("one_thread")


CASES = [("mlp_tanh", "ce"), ("mlp_relu", "ce"), ("bn_cnn", "ce"), ("mlp_tanh", "mse"), ("bn_cnn", "mse")]


@pytest.fixture(scope="module")
def dense():
    out = {}
    for case, loss in CASES:
        obj = objective_for(case, loss=loss)
        H = dense_hessian(obj)     # once per Objective: cases.dense_hessian cannot be called twice on one
        out[(case, loss)] = (obj, torch.linalg.eigvalsh(H), H)
    return out


@pytest.mark.parametrize("case,loss", CASES)
def test_top5_and_smallest_match_dense(dense, case, loss):
    obj, evals, H = dense[(case, loss)]
    lam_max = float(evals.abs().max())
    top = top_eigen(obj, k=5, tol=1e-6, seed=1)
    assert top.converged
    assert list(top.eigenvalues) == sorted(top.eigenvalues, reverse=True)
    assert torch.allclose(torch.tensor(top.eigenvalues, dtype=torch.float64), evals.flip(0)[:5],
                          atol=1e-3 * lam_max, rtol=0)
    # reported residuals are the true ‖Hv − λv‖
    V = top.eigenvectors.double()
    true_res = (V @ H - torch.tensor(top.eigenvalues, dtype=torch.float64)[:, None] * V).norm(dim=1)
    assert torch.allclose(true_res, torch.tensor(top.residuals, dtype=torch.float64), atol=1e-9 * lam_max)
    # converged by the default criterion: every eigenvalue's error bound ≤ tol·λ_max, and it holds
    err = (torch.tensor(top.eigenvalues, dtype=torch.float64) - evals.flip(0)[:5]).abs()
    assert top.criterion == "values" and max(top.error_bounds) <= 1e-6 * lam_max * 1.0001
    assert bool((err <= torch.tensor(top.error_bounds, dtype=torch.float64)).all())
    vec = top_eigen(obj, k=5, tol=1e-6, seed=1, converge="vectors")
    assert vec.converged and max(vec.residuals) <= 1e-6 * lam_max * 1.0001
    low = top_eigen(obj, k=1, which="SA", tol=1e-6, seed=2, max_iter=400)
    assert abs(low.eigenvalues[0] - float(evals[0])) <= 1e-3 * lam_max


def test_batch_split_does_not_change_the_operator():
    a = objective_for("mlp_tanh", batch_size=8)     # 37 samples: 4×8 + 5
    b = objective_for("mlp_tanh", batch_size=37)
    v = torch.randn(a.dim, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(a.hvp(v), b.hvp(v), atol=1e-12)
    assert torch.allclose(a.hvp(v, method="rev"), a.hvp(v), atol=1e-12)
    op = HessianOperator(a)
    op.matmat(torch.stack([v, v]))
    assert op.hvps == 2


@pytest.mark.parametrize("case", ["mlp_relu", "bn_cnn"])
def test_product_methods_agree_with_dense(dense, case):
    obj, _, H = dense[(case, "ce")]
    v = torch.randn(obj.dim, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    for method in ("auto", "cached", "fwd", "rev"):
        op = HessianOperator(obj, method=method)
        assert torch.allclose(op.matvec(v), H @ v, atol=1e-12), method
    assert HessianOperator(obj).method == "cached"                       # tiny graphs fit
    assert HessianOperator(obj, cache_budget=1).method == "fwd"          # auto falls back
    with pytest.raises(MemoryError):
        HessianOperator(obj, method="cached", cache_budget=1)
    shifted = HessianOperator(obj).with_shift(0.25)
    assert torch.allclose(shifted.matvec(v), H @ v + 0.25 * v, atol=1e-12)


def test_linear_regression_closed_form():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(50, 7, generator=g, dtype=torch.float64) * torch.linspace(0.3, 3, 7, dtype=torch.float64)
    y = torch.zeros(50, dtype=torch.long)            # one output: MSE on a one-hot target of width 1
    model = nn.Linear(7, 1, bias=False).double()
    obj = Objective(model, x, y, loss="mse", batch_size=16, dtype=torch.float64)
    H = 2 * x.T @ x / 50
    exact = torch.linalg.eigvalsh(H).flip(0)
    res = top_eigen(obj, k=3, tol=1e-8)
    assert torch.allclose(torch.tensor(res.eigenvalues, dtype=torch.float64), exact[:3], rtol=1e-7)
    v = torch.randn(7, dtype=torch.float64, generator=g)
    assert torch.allclose(obj.hvp(v), H @ v, atol=1e-12)


def _quadratic(eigs, seed=0):
    g = torch.Generator().manual_seed(seed)
    d = len(eigs)
    U, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    return U @ torch.diag(torch.tensor(eigs, dtype=torch.float64)) @ U.T


def test_dominant_negative_eigenvalue_LA_vs_LM():
    eigs = [-10.0, 3.0, 2.0, 1.5] + [0.1 * i for i in range(-20, 20)]
    A = _quadratic(eigs)
    la = eigsh(DenseOperator(A), k=2, which="LA", tol=1e-8)
    assert la.eigenvalues[0] == pytest.approx(3.0, rel=1e-7)
    assert la.eigenvalues[1] == pytest.approx(2.0, rel=1e-7)
    sa = eigsh(DenseOperator(A), k=1, which="SA", tol=1e-8)
    assert sa.eigenvalues[0] == pytest.approx(-10.0, rel=1e-7)
    pw = power_iteration(DenseOperator(A), k=1, tol=1e-8)   # largest magnitude: the trap
    assert pw.eigenvalues[0] == pytest.approx(-10.0, rel=1e-6)
    shifted = power_iteration(DenseOperator(A), k=1, tol=1e-8, shift=-10.0, max_iter=5000)
    assert shifted.eigenvalues[0] == pytest.approx(3.0, rel=1e-5)


def test_power_iteration_matches_dense_top3_on_psd_problem():
    eigs = [10.0, 9.0, 5.0] + [0.05 * i for i in range(40)]
    A = _quadratic(eigs, seed=1)
    pw = power_iteration(DenseOperator(A), k=3, tol=1e-7, max_iter=5000)
    assert pw.converged
    assert pw.eigenvalues == pytest.approx([10.0, 9.0, 5.0], rel=1e-5)


def test_warm_start_thick_restart_block_and_arpack_agree():
    eigs = [30.0, 20.0, 15.0, 12.0, 10.0] + [0.5 * torch.randn(1, generator=torch.Generator().manual_seed(i)).item()
                                             for i in range(300)]
    A = _quadratic(eigs, seed=2)
    want = [30.0, 20.0, 15.0, 12.0, 10.0]
    cold = eigsh(DenseOperator(A), k=5, tol=1e-9)
    small_basis = eigsh(DenseOperator(A), k=5, tol=1e-9, max_basis=12)   # forces thick restarts
    block = eigsh(DenseOperator(A), k=5, tol=1e-9, block=3)
    warm = eigsh(DenseOperator(A + 1e-3 * _quadratic([1.0] * 305, seed=3)), k=5, tol=1e-7,
                 v0=cold.eigenvectors)
    ref = arpack_eigsh(DenseOperator(A), k=5, tol=1e-10)
    for r in (cold, small_basis, block, ref):
        assert r.converged
        assert list(r.eigenvalues) == pytest.approx(want, rel=1e-7)
    assert warm.converged and warm.matvecs < cold.matvecs
    assert list(warm.eigenvalues) == pytest.approx([w + 1e-3 for w in want], rel=1e-6)


def test_seeded_and_reports_nonconvergence():
    A = _quadratic([1.0 + 1e-3 * i for i in range(200)], seed=4)   # clustered: hard
    a = eigsh(DenseOperator(A), k=3, tol=1e-10, seed=5, max_iter=10)
    b = eigsh(DenseOperator(A), k=3, tol=1e-10, seed=5, max_iter=10)
    assert a.eigenvalues == b.eigenvalues
    assert not a.converged and a.matvecs == 10
    with pytest.raises(ValueError):
        eigsh(DenseOperator(A), k=0)


# --------------------------------------------------------------- error bounds (issues #19, #22)
def _spaced_cluster(sep, d=300, seed=0):
    """Top five eigenvalues 10/(1+sep)^j (neighbours `sep` apart), the rest in [-0.5, 1.5]."""
    g = torch.Generator().manual_seed(seed)
    top = [10.0 / (1 + sep) ** j for j in range(5)]
    bulk = (torch.rand(d - 5, generator=g, dtype=torch.float64) * 2.0 - 0.5).tolist()
    return _quadratic(top + bulk, seed=seed), torch.tensor(sorted(top + bulk, reverse=True), dtype=torch.float64)


def _tight_cluster(sep, d=300, seed=0):
    """Five eigenvalues within 0.4 % at the top (10, 9.99, ..., 9.96), separated by `sep`·10 from
    the rest, which decays from 10(1 − sep) to 0 like a Hessian's spectrum."""
    top = [10.0 * (1 - 1e-3 * j) for j in range(5)]
    bulk = (10.0 * (1 - sep) * torch.linspace(1, 0, d - 5, dtype=torch.float64) ** 3).tolist()
    return _quadratic(top + bulk, seed=seed), torch.tensor(sorted(top + bulk, reverse=True), dtype=torch.float64)


def _check_bounds(r, exact):
    err = (torch.tensor(r.eigenvalues, dtype=torch.float64) - exact[: len(r.eigenvalues)]).abs()
    bounds = torch.tensor(r.error_bounds, dtype=torch.float64)
    assert bool((err <= bounds).all()), (err, bounds)
    return err, bounds


@pytest.mark.parametrize("sep", [0.01, 0.1, 0.5])
def test_error_bounds_hold_on_a_five_fold_cluster(sep):
    for family, blocks in ((_spaced_cluster, (1, 5)), (_tight_cluster, (5,))):
        A, exact = family(sep)
        for block in blocks:
            for tol in (1e-4, 1e-6, 1e-8):
                r = eigsh(DenseOperator(A), k=5, tol=tol, block=block, max_iter=1000)
                assert r.converged and r.stopped == "converged" and r.criterion == "values"
                err, bounds = _check_bounds(r, exact)
                assert float(bounds.max()) <= tol * 10.0 * 1.01
                # the bound is informative: much smaller than the residual it starts from
                assert float(bounds.max()) < max(r.residuals) or max(r.residuals) <= tol * 10


def test_bounds_are_quadratic_in_the_residual_not_linear():
    A, exact = _spaced_cluster(0.5)
    vals = eigsh(DenseOperator(A), k=5, tol=1e-6)
    vecs = eigsh(DenseOperator(A), k=5, tol=1e-6, converge="vectors")
    _check_bounds(vals, exact)
    _check_bounds(vecs, exact)
    assert vals.matvecs < vecs.matvecs                   # converging on what is read is cheaper
    assert max(vecs.residuals) <= 1e-6 * 10.0 * 1.0001
    assert max(vals.residuals) > 1e-6 * 10.0             # ... because the vectors are not yet that good


def test_limits_return_bounds_and_converged_false():
    A, exact = _tight_cluster(0.1)
    r = eigsh(DenseOperator(A), k=5, tol=1e-10, max_iter=17)
    assert not r.converged and r.stopped == "max_hvps" and r.matvecs == 17
    assert len(r.error_bounds) == 5 and all(b > 0 for b in r.error_bounds)
    t = eigsh(DenseOperator(A), k=5, tol=1e-14, time_budget=1e-6, max_iter=10_000)
    assert not t.converged and t.stopped == "time_budget" and t.matvecs == 1   # one product, then over budget
    js = r.to_json()
    assert js["converged"] is False and js["stopped"] == "max_hvps" and len(js["error_bounds"]) == 5
    # float32 cannot give 1e-9·λ_max: stop once the bounds sit at the rounding floor
    p = eigsh(DenseOperator(_spaced_cluster(0.5)[0].float()), k=5, tol=1e-9, max_iter=300)
    assert not p.converged and p.stopped == "precision" and p.matvecs < 60
    assert max(p.error_bounds) < 6.2e-5 * 10.0     # float32: within 2x the 256-ulp floor (3.05e-5 relative)


def test_k_near_dim_is_dense_and_converged_means_the_bound_holds():
    """#19 item 7: float32, k = d and k = 40 of a rank-deficient Hessian: no `or m >= d`."""
    obj = objective_for("mlp_relu", dtype=torch.float32)
    obj64 = objective_for("mlp_relu")
    H = dense_hessian(obj64)
    exact = torch.linalg.eigvalsh(H).flip(0)
    d = obj.dim
    lam_max = float(exact.abs().max())
    for k in (d, 40, 20):
        op = HessianOperator(obj)
        r = eigsh(op, k=k, tol=1e-4)
        assert r.method == "dense" and r.matvecs == d == op.hvps
        err, bounds = _check_bounds(r, exact)
        assert r.converged == bool(float(bounds.max()) <= 1e-4 * max(abs(x) for x in r.eigenvalues))
        assert r.converged                                  # float32 products are good to ~1e-6 here
        assert float(err.max()) <= 1e-5 * lam_max
        # the k-th largest is the k-th largest, not the most negative eigenvalue
        assert r.eigenvalues[-1] == pytest.approx(float(exact[k - 1]), abs=1e-5 * lam_max)
    tight = eigsh(HessianOperator(obj), k=d, tol=1e-12)     # below float32's rounding: honest False
    assert not tight.converged and tight.stopped == "basis"


def test_full_basis_lanczos_does_not_claim_convergence_it_has_not_reached():
    A = _quadratic([1.0 + 1e-3 * i for i in range(30)], seed=7).float()
    r = eigsh(DenseOperator(A), k=5, tol=1e-12, max_basis=30, converge="vectors")
    assert r.matvecs >= 30 and not r.converged and r.stopped in ("basis", "max_hvps")
    assert max(r.residuals) > 1e-12 * max(r.eigenvalues)
    r = eigsh(DenseOperator(A), k=5, tol=1e-12, max_basis=30)
    assert not r.converged and r.stopped in ("precision", "basis")
    assert max(r.error_bounds) > 1e-12 * max(r.eigenvalues)


# --------------------------------------------------------------- blocks, limits, progress (#21, #22)
def test_block_lanczos_resolves_a_tight_cluster_that_single_vector_misses():
    """Five eigenvalues within 0.4 %, 1 % below them the rest: one start vector finds the cluster
    members one at a time and (like every Krylov method) may stop before the last has appeared;
    a block as large as the cluster has all of them from the start, so its bounds hold."""
    A, exact = _tight_cluster(0.01)
    single = eigsh(DenseOperator(A), k=5, tol=1e-4, block=1)
    err = (torch.tensor(single.eigenvalues, dtype=torch.float64) - exact[:5]).abs()
    assert single.converged and not bool((err <= torch.tensor(single.error_bounds)).all())
    for block in (5, "auto"):
        r = eigsh(DenseOperator(A), k=5, tol=1e-4, block=block)
        assert r.converged and r.block == 5
        _check_bounds(r, exact)


def test_block_lanczos_needs_fewer_products_on_a_repeated_eigenvalue():
    A, exact = _spaced_cluster(0.0)               # λ = 10 five times
    single = eigsh(DenseOperator(A), k=5, tol=1e-6, block=1)
    block = eigsh(DenseOperator(A), k=5, tol=1e-6, block=5)
    for r in (single, block):
        assert r.converged
        _check_bounds(r, exact)
    assert block.matvecs < single.matvecs


def test_batched_products_equal_one_at_a_time():
    obj = objective_for("bn_cnn")
    V = torch.randn(3, obj.dim, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    one = HessianOperator(obj, method="cached").with_shift(0.5)
    many = HessianOperator(obj, method="cached", batched=True).with_shift(0.5)
    assert torch.allclose(many.matmat(V), one.matmat(V), atol=1e-12)
    assert many.hvps == 3 and one.hvps == 3


def test_remaining_steps_extrapolates_the_log_error():
    from landscape.progress import format_seconds, remaining_steps

    hist = [(n, 10.0 ** (-n / 10)) for n in range(1, 11)]       # one decade per 10 products
    assert remaining_steps(hist, 1e-4) == pytest.approx(30.0)
    assert remaining_steps(hist[:1], 1e-4) is None                # one point: no rate yet
    assert remaining_steps([(1, 1.0), (2, 2.0)], 1e-4) is None    # not falling: no guess
    assert remaining_steps([(5, 1e-5)], 1e-4) == 0.0
    assert format_seconds(75) == "1:15" and format_seconds(3725) == "1:02:05" and format_seconds(None) == "?"


def test_convergence_bar_shows_worst_bound_and_eta(monkeypatch):
    import io
    import sys

    from landscape.progress import ConvergenceBar

    buf = io.StringIO()
    monkeypatch.setattr(sys, "stderr", buf)
    monkeypatch.setenv("LANDSCAPE_PROGRESS", "1")
    A, _ = _spaced_cluster(0.5)
    with ConvergenceBar() as bar:
        eigsh(DenseOperator(A), k=5, tol=1e-8,
              callback=lambda p: bar.update("top eigenvalues", p.matvecs, p.worst, p.tol))
    text = buf.getvalue()
    assert "top eigenvalues" in text and "worst bound" in text and "→ 1e-08" in text
    assert "ETA 0:0" in text                       # a number once the rate is known


def test_cli_limits_block_and_bad_values(digits_run, tmp_path):
    import json

    from click.testing import CliRunner

    from landscape.cli import main

    ck = str(digits_run / "epoch_003.pt")
    out = tmp_path / "h.json"
    res = CliRunner().invoke(main, ["hessian", ck, "--top-k", "3", "--subset", "100", "--max-hvps", "4",
                                    "--json", str(out)])
    assert res.exit_code == 0, res.output
    d = json.loads(out.read_text())
    assert d["converged"] is False and d["stopped"] == "max_hvps" and d["top_hvps"] == 4
    assert len(d["error_bounds"]) == 3 and "did not reach tol" in " ".join(d["notes"])
    res = CliRunner().invoke(main, ["hessian", ck, "--top-k", "3", "--subset", "100", "--block", "auto",
                                    "--converge", "vectors", "--json", str(out)])
    assert res.exit_code == 0, res.output
    d = json.loads(out.read_text())
    assert d["converged"] is True and d["criterion"] == "vectors" and d["settings"]["block"] == "auto"
    assert max(d["residuals"]) <= 1e-4 * d["eigenvalues"][0] * 1.0001
    for flag, value in (("--block", "0"), ("--block", "many"), ("--max-hvps", "0"), ("--time-budget", "-1")):
        res = CliRunner().invoke(main, ["hessian", ck, "--subset", "50", flag, value])
        assert res.exit_code != 0 and "Traceback" not in res.output and flag in res.output, res.output


def test_running_out_of_gpu_memory_while_caching_graphs_falls_back(monkeypatch):
    from landscape.hessian import operator

    def oom(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")

    monkeypatch.setattr(operator._GradientGraphs, "_build", classmethod(oom))
    obj = objective_for("mlp_tanh")
    assert HessianOperator(obj).method == "fwd"                    # auto: products without graphs
    with pytest.raises(MemoryError):
        HessianOperator(obj, method="cached")
