"""One budget (products and a deadline) for every Lanczos run of a call (#22 item 3), and the
cheap first pass on a data subset (#22 item 4): the limits hold across all runs, counted from the
results' own product counts, and a run at the limit returns bounds with converged: false."""

import json
import math

import pytest
import torch
from click.testing import CliRunner

from landscape.cli import main
from landscape.hessian import DenseOperator, eigsh
from landscape.hessian.analyze import HessianConfig, analyze_hessian, first_pass, top_eigen
from landscape.hessian.lanczos import Budget
from landscape.session import open_session

pytestmark = pytest.mark.usefixtures("one_thread")


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _matrix(d=200, seed=0):
    """Five eigenvalues 2 % apart at the top, the rest from 9 down: slow to converge."""
    g = torch.Generator().manual_seed(seed)
    U, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    top = torch.tensor([10.0, 9.8, 9.6, 9.4, 9.2])
    eigs = torch.cat([top, torch.linspace(9.0, -1, d - 5)]).double()
    return U @ torch.diag(eigs) @ U.T, eigs.sort(descending=True).values


# ------------------------------------------------------------------------------ Budget itself
def test_products_cap_is_shared_by_consecutive_runs():
    A, exact = _matrix()
    budget = Budget(max_hvps=30)
    first = eigsh(DenseOperator(A), k=5, tol=1e-12, budget=budget)      # wants far more than 30
    second = eigsh(DenseOperator(A), k=1, tol=1e-8, budget=budget)
    assert first.matvecs == 30 and first.stopped == "max_hvps" and not first.converged
    # at the limit each value still comes with a bound that holds (for the nearest eigenvalue:
    # an unconverged run may not have met every member of the top five yet)
    near = (torch.tensor(first.eigenvalues)[:, None] - exact[None, :]).abs().min(dim=1).values
    assert bool((near <= torch.tensor(first.error_bounds)).all())
    assert abs(first.eigenvalues[0] - 10.0) <= first.error_bounds[0]
    # nothing left: the second run does not start, and says so instead of raising
    assert second.matvecs == 0 and second.stopped == "max_hvps" and not second.converged
    assert math.isnan(second.eigenvalues[0]) and second.error_bounds[0] == math.inf
    assert budget.used == 30 == first.matvecs + second.matvecs and budget.skipped == 1
    js = second.to_json()
    assert js["converged"] is False and js["stopped"] == "max_hvps" and js["matvecs"] == 0


def test_a_run_gets_what_the_earlier_ones_left_within_its_own_cap():
    A, _ = _matrix()
    budget = Budget(max_hvps=40)
    a = eigsh(DenseOperator(A), k=1, tol=1e-6, budget=budget)
    assert a.converged and a.matvecs < 40
    b = eigsh(DenseOperator(A), k=5, tol=1e-12, budget=budget, max_iter=1000)
    assert b.matvecs == 40 - a.matvecs and b.stopped == "max_hvps"
    c = Budget(max_hvps=1000)
    own = eigsh(DenseOperator(A), k=5, tol=1e-12, budget=c, max_iter=12)   # the run's own cap is smaller
    assert own.matvecs == 12 and c.used == 12
    with pytest.raises(ValueError):
        Budget(max_hvps=0)


def test_deadline_is_shared_and_measured_from_the_start():
    A, _ = _matrix()
    now = [0.0]
    budget = Budget(seconds=10.0, clock=lambda: now[0])
    a = eigsh(DenseOperator(A), k=1, tol=1e-6, budget=budget)
    assert a.converged
    now[0] = 10.5                                    # the deadline passed during other work
    b = eigsh(DenseOperator(A), k=1, tol=1e-6, budget=budget)
    assert b.matvecs == 0 and b.stopped == "time_budget" and not b.converged
    assert budget.to_json()["exhausted"] == "time_budget" and budget.to_json()["skipped_runs"] == 1


# ------------------------------------------------------------------ every run of `landscape hessian`
def _runs_of(report):
    """Products of every Lanczos run of one analysis, from the results themselves."""
    runs = {"top": report.top.matvecs}
    if report.first_pass is not None:
        runs["first_pass"] = report.first_pass.matvecs
    for name, r in report.verdict.runs.items():
        runs[f"verdict.{name}"] = r["matvecs"]
    if report.smallest is not None:
        runs["smallest"] = report.smallest.matvecs
    for p in report.per_layer or ():
        runs[f"layer.{p.name}"] = p.matvecs
    return runs


def test_hessian_budget_covers_the_verdict_smallest_and_per_layer_runs(digits_run):
    s = open_session(str(digits_run / "epoch_003.pt"), subset=100, dtype="float64")
    cfg = dict(top_k=2, smallest=True, per_layer=True, train_batch_size=128, tol=1e-6)
    free = analyze_hessian(s.train, s.optimizer, HessianConfig(**cfg))
    total = sum(_runs_of(free).values())
    assert free.verdict.runs["lambda_max"]["matvecs"] > 0   # BN: the verdict's λ_max is its own run
    cap = total // 2
    rep = analyze_hessian(s.train, s.optimizer, HessianConfig(**cfg, max_hvps=cap))
    runs = _runs_of(rep)
    assert sum(runs.values()) == cap == rep.budget["hvps_used"], runs
    assert rep.budget["exhausted"] == "max_hvps" and rep.budget["skipped_runs"] >= 1
    d = rep.to_json()
    assert d["budget"]["max_hvps"] == cap
    # the top-k and the verdict come first; what the budget did not reach says so
    assert runs["top"] == free.top.matvecs and d["stopped"] == "converged"
    assert d["smallest_stopped"] == "max_hvps" or any(
        p["matvecs"] == 0 and not p["converged"] for p in d["per_layer"])
    assert any("got no products" in n for n in d["notes"])


def test_hessian_cli_budget_reaches_the_stability_run(digits_run, tmp_path):
    """A cap the top-k uses up leaves the verdict's own λ_max run without products: NaN, unknown
    verdict, converged false and stopped max_hvps in the JSON, exit status 0."""
    out = tmp_path / "h.json"
    res = run("hessian", digits_run / "epoch_003.pt", "--top-k", 2, "--subset", 100, "--tol", 1e-8,
              "--max-hvps", 6, "--json", out)
    assert res.exit_code == 0, res.output
    d = json.loads(out.read_text())
    assert d["top_hvps"] == 6 and d["stopped"] == "max_hvps" and d["converged"] is False
    st = d["stability"]
    assert st["runs"]["lambda_max"] == {"matvecs": 0, "converged": False, "stopped": "max_hvps",
                                        "error_bound": "Infinity", "reused": False}
    assert st["converged"] is False and st["stable"] is None and st["lambda_max"] == "NaN"
    assert d["budget"]["hvps_used"] == 6


def test_sharpness_run_folder_budget_per_checkpoint(digits_run, tmp_path):
    out = tmp_path / "s.json"
    res = run("sharpness", digits_run, "--measures", "lambda_max,stability", "--subset", 100,
              "--eig-tol", 1e-8, "--max-hvps", 4, "--json", out)
    assert res.exit_code == 0, res.output
    d = json.loads(out.read_text())
    assert d["config"]["max_hvps"] == 4 and len(d["checkpoints"]) == 4      # epochs 0-3
    for ck in d["checkpoints"]:
        lam, st = ck["lambda_max"], ck["stability"]
        used = lam["matvecs"] + sum(r["matvecs"] for r in st["runs"].values())
        assert used == 4 == st["budget"]["hvps_used"]                 # per checkpoint, all runs together
        assert lam["stopped"] == "max_hvps" and lam["converged"] is False
        assert st["runs"]["lambda_max"]["stopped"] == "max_hvps" and st["converged"] is False


def test_spike_probe_budget_per_checkpoint(digits_run, tmp_path):
    out = tmp_path / "p.json"
    res = run("probe", "spikes", digits_run, "--at", 2, "--points", 3, "--subset", 100, "--eig-tol", 1e-9,
              "--max-hvps", 3, "--json", out)
    assert res.exit_code == 0, res.output
    d = json.loads(out.read_text())
    assert d["config"]["max_hvps"] == 3 and d["checkpoints"]
    for c in d["checkpoints"]:
        info, st = c["lambda_max_info"], c["stability"]
        assert info["matvecs"] == 3 and info["stopped"] == "max_hvps" and info["converged"] is False
        assert st["runs"]["lambda_max"]["matvecs"] == 0 and st["converged"] is False


# ---------------------------------------------------------------------------- the first pass
def test_first_pass_starts_the_full_run_and_is_counted(digits_run):
    s = open_session(str(digits_run / "epoch_003.pt"), subset=200, dtype="float64")
    obj = s.train
    cold = top_eigen(obj, k=3, tol=1e-8)
    fp = first_pass(obj, subset=50, k=3, seed=0)
    assert fp.samples == 50 and fp.n == 200 and fp.full_data_units == pytest.approx(fp.matvecs * 50 / 200)
    assert fp.start.shape == (3, obj.dim)
    # the subset's Hessian is another matrix: its eigenvalues differ from the full data's
    assert abs(fp.eigenvalues[0] - cold.eigenvalues[0]) > 1e-3 * cold.eigenvalues[0]
    warm = top_eigen(obj, k=3, tol=1e-8, first_pass_subset=50)
    assert warm.converged and warm.matvecs != cold.matvecs    # it did start elsewhere
    for a, b, ea, eb in zip(warm.eigenvalues, cold.eigenvalues, warm.error_bounds, cold.error_bounds):
        assert abs(a - b) <= ea + eb
    assert first_pass(obj, subset=200, k=3) is None         # the whole data: nothing to gain
    rep = analyze_hessian(obj, s.optimizer, HessianConfig(top_k=3, tol=1e-8, first_pass_subset=50, max_hvps=500))
    d = rep.to_json()
    assert d["first_pass"]["samples"] == 50 and d["first_pass"]["matvecs"] == fp.matvecs
    assert d["eigenvalues"] == pytest.approx(list(warm.eigenvalues), rel=1e-9)
    assert d["budget"]["hvps_used"] == sum(_runs_of(rep).values())     # first-pass products count
    assert "first pass on 50 of 200 samples" in rep.summary()


def test_first_pass_option_is_checked(digits_run):
    res = run("hessian", digits_run / "epoch_003.pt", "--subset", 50, "--first-pass-subset", 0)
    assert res.exit_code == 2 and "--first-pass-subset" in res.output and "Traceback" not in res.output


def test_budget_reaches_the_preconditioned_run_of_an_adam_verdict(tmp_path):
    from landscape.train import TrainConfig, train

    train(TrainConfig(model="mlp:hidden=12", data="digits", optimizer="adam", lr=0.01, epochs=1,
                      batch_size=128, seed=0), tmp_path)
    s = open_session(str(tmp_path / "epoch_001.pt"), subset=128, dtype="float64")
    free = analyze_hessian(s.train, s.optimizer, HessianConfig(top_k=1, tol=1e-10, preconditioned=True))
    assert free.verdict.runs["preconditioned"]["matvecs"] > 3 and free.verdict.converged
    cap = free.top.matvecs + 3
    rep = analyze_hessian(s.train, s.optimizer, HessianConfig(top_k=1, tol=1e-10, preconditioned=True,
                                                              max_hvps=cap))
    d = rep.to_json()
    assert d["stopped"] == "converged" and d["top_hvps"] == free.top.matvecs
    assert d["stability"]["runs"]["preconditioned"]["matvecs"] == 3
    assert d["preconditioned_stopped"] == "max_hvps" and d["preconditioned_converged"] is False
    assert d["stability"]["converged"] is False and d["budget"]["hvps_used"] == cap
    # an answer at the limit: a Ritz value (never above λ₁) with a finite bound; its bound is for
    # the nearest eigenvalue, which after 3 products need not be λ₁ (the Krylov caveat)
    lam, lam_free = d["preconditioned_eigenvalues"][0], free.preconditioned.eigenvalues[0]
    assert lam <= lam_free + free.preconditioned.error_bounds[0]
    assert 0 < d["preconditioned_error_bounds"][0] < math.inf
