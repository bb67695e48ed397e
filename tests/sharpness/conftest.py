"""The exactly quadratic case the sharpness measures are checked against (closed forms).

A linear model with PyTorch-mean MSE on one-hot targets at its least-squares solution, so
L(θ + δ) − L(θ) = ½ δᵀHδ exactly, with H from ``dense_hessian``.
"""

from __future__ import annotations

import pytest
import torch
from cases import dense_hessian
from torch import nn

from landscape.objective import Objective


def quadratic_objective(seed: int = 0) -> Objective:
    """Linear regression (4 inputs, 2 outputs, MSE) at its least-squares minimum: 10 parameters."""
    g = torch.Generator().manual_seed(seed)
    n, d_in, classes = 40, 4, 2
    x = torch.randn(n, d_in, generator=g, dtype=torch.float64) * torch.tensor([3.0, 1.0, 0.5, 0.2], dtype=torch.float64)
    y = torch.randint(0, classes, (n,), generator=g)
    xa = torch.cat([x, torch.ones(n, 1, dtype=torch.float64)], 1)
    sol = torch.linalg.lstsq(xa, nn.functional.one_hot(y, classes).double()).solution
    model = nn.Linear(d_in, classes).double()
    with torch.no_grad():
        model.weight.copy_(sol[:d_in].T)
        model.bias.copy_(sol[d_in])
    return Objective(model, x, y, loss="mse", batch_size=16, dtype=torch.float64)


@pytest.fixture(scope="module")
def quad():
    obj = quadratic_objective()
    return obj, dense_hessian(obj)
