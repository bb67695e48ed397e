"""Worst-case (SAM) sharpness (landscape.sharpness.worst_case): ρ²λ_max/2 on the exact quadratic,
and never below the average sharpness of the same radius."""

from __future__ import annotations

import math

import pytest
import torch
from cases import objective_for

from landscape.sharpness import average_sharpness, worst_case_sharpness


def test_worst_case_matches_rho2_lambda_max(quad):
    obj, h = quad
    lam = float(torch.linalg.eigvalsh(h)[-1])
    for rho in (0.05, 0.2):
        res = worst_case_sharpness(obj, rho=rho, steps=20, restarts=2)
        assert res.value == pytest.approx(rho ** 2 * lam / 2, rel=1e-3)
        assert res.delta_norm <= rho * (1 + 1e-9)
        assert res.value <= rho ** 2 * lam / 2 * (1 + 1e-9)  # a lower bound on the maximum


def test_worst_case_at_least_average_at_least_zero():
    obj = objective_for("mlp_tanh")
    rho = 0.1
    worst = worst_case_sharpness(obj, rho=rho, steps=10, restarts=2)
    avg = average_sharpness(obj, rho=rho, samples=16)  # default sigma = rho / sqrt(d)
    assert avg.sigma == pytest.approx(rho / math.sqrt(obj.dim))
    assert worst.value >= avg.value
    assert avg.value >= -3 * avg.stderr
    assert worst.value > 0
