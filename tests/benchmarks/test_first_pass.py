"""Smoke test of benchmarks/first_pass.py at a tiny size: the baseline and the first-pass call
run, their product counts add up in full-data units, and the answers agree within their bounds."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

pytestmark = pytest.mark.usefixtures("one_thread")


def test_first_pass_benchmark_tiny(capsys):
    import first_pass

    out = first_pass.main(["--model", "cnn", "--n", "16", "--ks", "1", "--subsets", "4", "--tol", "1e-3"])
    assert "| 1 | 4 |" in capsys.readouterr().out
    (case,) = out["cases"]
    assert case["first_pass_units"] == pytest.approx(case["first_pass_matvecs"] * 4 / 16)
    assert case["units"] == pytest.approx(case["first_pass_units"] + case["full_matvecs"])
    assert case["baseline_units"] == out["baselines"]["1"]["matvecs"] and case["agrees_within_bounds"]
