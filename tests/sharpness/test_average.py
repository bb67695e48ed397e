"""Average sharpness (landscape.sharpness.average) against σ² tr(H)/2 on the exact quadratic."""

from __future__ import annotations

import torch

from landscape.sharpness import average_sharpness


def test_average_matches_sigma2_trace(quad):
    obj, h = quad
    sigma = 0.05
    res = average_sharpness(obj, sigma=sigma, samples=64, seed=3)
    exact = sigma ** 2 * float(torch.trace(h)) / 2
    assert res.stderr > 0
    assert abs(res.value - exact) <= 4 * res.stderr
    assert res.stderr < 0.2 * exact
    assert res.to_json()["sigma_rule"] == "given"
