"""SWATS (landscape.optim.switching): its Adam phase is torch's Adam, and the switch to SGD follows
Algorithm 1 of Keskar & Socher 2017 (the projected learning rate Λ, then heavy ball)."""

from __future__ import annotations

import pytest
import torch

from landscape.optim import SWATS, optimizer_type


def test_swats_adam_phase_is_torch_adam_and_switch_follows_algorithm_1() -> None:
    a = torch.tensor([4.0, 1.0, 0.25], dtype=torch.float64)
    theta0 = torch.tensor([1.0, -1.0, 2.0], dtype=torch.float64)
    p = torch.nn.Parameter(theta0.clone())
    q = torch.nn.Parameter(theta0.clone())
    swats = SWATS([p], lr=0.05, switch_eps=1e-3)
    adam = torch.optim.Adam([q], lr=0.05)
    b2 = 0.999
    lam, switched_at = 0.0, None
    for k in range(1, 400):
        before = p.detach().clone()
        g = a * p.detach()
        p.grad = g.clone()
        q.grad = a * q.detach()
        swats.step()
        group = swats.param_groups[0]
        if group["landscape_type"] == "sgd":
            switched_at = k
            break
        adam.step()
        torch.testing.assert_close(p.detach(), q.detach(), rtol=1e-12, atol=1e-14)
        step = p.detach() - before
        gamma = float(step @ step) / -float(step @ g)
        lam = b2 * lam + (1 - b2) * gamma
        assert abs(lam / (1 - b2 ** k) - gamma) >= 1e-3 or k == 1
    assert switched_at is not None, "SWATS never switched on a quadratic with switch_eps=1e-3"
    group = swats.param_groups[0]
    big = group["sgd_lambda"]
    assert group["lr"] == pytest.approx((1 - 0.9) * big) and group["momentum"] == 0.9
    assert group["switch_step"] == switched_at
    # after the switch: heavy ball v ← β₁v + g, w ← w − (1 − β₁)Λ v
    v = torch.zeros(3, dtype=torch.float64)
    w = p.detach().clone()
    for _ in range(5):
        g = a * w
        v = 0.9 * v + g
        w = w - (1 - 0.9) * big * v
        p.grad = a * p.detach()
        swats.step()
        torch.testing.assert_close(p.detach(), w, rtol=1e-12, atol=1e-14)
    assert optimizer_type(swats) == "sgd"
