"""Smoke test of benchmarks/scale.py at tiny sizes: every tool runs and the table is printed."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

pytestmark = pytest.mark.usefixtures("one_thread")


def test_scale_benchmark_tiny(tmp_path, capsys):
    import scale

    out = tmp_path / "scale.json"
    res = scale.main(["--models", "cnn", "--n", "8", "--grid", "2", "--pyhessian-iters", "3", "--repeats", "1",
                      "--ref-tol", "1e-6", "--inline", "--json", str(out)])
    table = capsys.readouterr().out
    assert "| cnn | landscape |" in table and "Li et al.'s loop" in table
    d = json.loads(out.read_text())
    assert d == json.loads(json.dumps(res)) and d["tf32"] is False and d["n"] == 8
    r = d["models"]["cnn"]
    ref, ours = r["reference"], r["landscape"]
    assert ref["converged"] and ours["converged"] and len(ours["eigenvalues"]) == 5
    # landscape's answer is within its own bounds of the float64 reference
    assert all(abs(a - b) <= e + f for a, b, e, f in zip(ours["eigenvalues"], ref["eigenvalues"],
                                                         ours["error_bounds"], ref["error_bounds"]))
    assert r["pyhessian"]["hvps"] == 15                         # 3 power iterations × 5 eigenvalues
    assert "eigenvalues" in r["curvlinops"] or "skipped" in r["curvlinops"]
    assert r["hvp_cost"]["ratio"] > 0 and r["slice"]["points"] == 4
    assert r["slice"]["max_abs_loss_difference"] < 1e-4       # both loops computed the same surface
    assert all(r[t]["peak_memory_mb"] > 0 for t in r)
