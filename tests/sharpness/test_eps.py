"""ε-sharpness (Keskar et al.; landscape.sharpness.eps) against vertex enumeration on the exact
quadratic, and monotone in ε on a small network."""

from __future__ import annotations

import itertools

import torch
from cases import objective_for

from landscape.sharpness import eps_sharpness


def test_eps_sharpness_against_vertex_enumeration(quad):
    """At a minimum of a convex quadratic the box maximum sits at a vertex: enumerate all 2^10."""
    obj, h = quad
    eps = 1e-2
    half = eps * (obj.theta0.abs() + 1)
    signs = torch.tensor(list(itertools.product([-1.0, 1.0], repeat=obj.dim)), dtype=torch.float64)
    vertices = signs * half
    best = float((0.5 * (vertices @ h * vertices).sum(1)).max())
    base = obj.loss()
    exact = 100 * best / (1 + base)
    res = eps_sharpness(obj, eps=eps, steps=20, restarts=5)
    assert res.value <= exact * (1 + 1e-9)
    assert res.value >= 0.85 * exact
    assert res.to_json()["eps"] == eps


def test_eps_sharpness_grows_with_eps():
    obj = objective_for("mlp_tanh")
    values = [eps_sharpness(obj, eps=e, steps=8, restarts=2).value for e in (1e-4, 1e-3, 1e-2, 5e-2)]
    assert values[0] > 0
    assert all(b > a for a, b in zip(values, values[1:]))
