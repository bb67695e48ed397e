"""Adaptive (ASAM) sharpness (landscape.sharpness.adaptive) against its closed form on the exact
quadratic: ρ²λ_max(THT)/2 with T = |θ| + η."""

from __future__ import annotations

import pytest
import torch

from landscape.sharpness import adaptive_sharpness


@pytest.mark.parametrize("eta", [0.01, 0.0])
def test_adaptive_matches_closed_form(quad, eta):
    obj, h = quad
    t = obj.theta0.abs() + eta
    exact = 0.5 ** 2 * float(torch.linalg.eigvalsh(t[:, None] * h * t[None, :])[-1]) / 2
    # T H T has a small relative eigengap here (0.25 vs 0.28), so the ascent needs more steps
    res = adaptive_sharpness(obj, rho=0.5, eta=eta, steps=60, restarts=2)
    assert exact * (1 - 2e-3) <= res.value <= exact * (1 + 1e-9)
    # not the isotropic value: the scaling matters
    iso = 0.5 ** 2 * float(torch.linalg.eigvalsh(h)[-1]) / 2
    assert abs(res.value - iso) > 0.05 * iso
