"""Exact-reference cases shared by the tests: tiny models, data, and dense float64 Hessians.

Every operator and estimator is compared against :func:`dense_hessian`, the exact Hessian of the
Objective's loss built with :func:`torch.func.hessian` in float64.
"""

from __future__ import annotations

import copy
from typing import Callable, Dict, Tuple

import torch
from torch import nn

from landscape.objective import Objective


def make_data(n: int = 37, shape: Tuple[int, ...] = (6,), classes: int = 3, seed: int = 0) -> Tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, *shape, generator=g)
    y = torch.randint(0, classes, (n,), generator=g)
    return x, y


def tiny_mlp(act: str = "tanh", d_in: int = 6, hidden: int = 5, classes: int = 3, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    a = {"tanh": nn.Tanh, "relu": nn.ReLU}[act]
    return nn.Sequential(nn.Linear(d_in, hidden), a(), nn.Linear(hidden, classes))


class TinyBNCNN(nn.Module):
    """conv(1→3) → BN → ReLU → global pool → linear: small enough for a dense Hessian."""

    def __init__(self, classes: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3, padding=1)
        self.bn = nn.BatchNorm2d(3)
        self.fc = nn.Linear(3, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.bn(self.conv(x)))
        return self.fc(h.mean(dim=(2, 3)))


def tiny_bn_cnn(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    m = TinyBNCNN()
    # non-trivial running statistics, as after training
    with torch.no_grad():
        m.bn.running_mean.uniform_(-0.3, 0.3)
        m.bn.running_var.uniform_(0.5, 1.5)
        m.bn.weight.uniform_(0.5, 1.5)
        m.bn.bias.uniform_(-0.2, 0.2)
    return m


CASES: Dict[str, Callable[[], Tuple[nn.Module, torch.Tensor, torch.Tensor]]] = {
    "mlp_tanh": lambda: (tiny_mlp("tanh"), *make_data()),
    "mlp_relu": lambda: (tiny_mlp("relu"), *make_data()),
    "bn_cnn": lambda: (tiny_bn_cnn(), *make_data(29, (1, 5, 5))),
}


def objective_for(case: str, *, loss: str = "ce", batch_size: int = 8, dtype=torch.float64) -> Objective:
    """An Objective over a case, float64 by default, with unequal batches (n not divisible)."""
    model, x, y = CASES[case]()
    return Objective(model, x, y, loss=loss, batch_size=batch_size, dtype=dtype)


def dense_hessian(obj: Objective, theta: torch.Tensor | None = None) -> torch.Tensor:
    """The exact Hessian of the Objective's mean loss, float64, via torch.func.hessian on all data at once."""
    theta = (obj.theta0 if theta is None else theta).detach().to(torch.float64)
    # Everything float64 outside the transformed function (converting the module inside it trips
    # a functorch internal assert on the second call).
    model = copy.deepcopy(obj.model).to(torch.float64)
    consts = {k: v.to(torch.float64) if v.is_floating_point() else v for k, v in obj._consts.items()}
    x = obj.x.to(torch.float64)

    def full_loss(t: torch.Tensor) -> torch.Tensor:
        out = torch.func.functional_call(model, (obj.space.unflatten(t), consts), (x,))
        return obj._sum_loss(out, obj.y) / obj.n

    return torch.func.hessian(full_loss)(theta)


def spiked_matrix(d: int = 400, seed: int = 0) -> Tuple[torch.Tensor, torch.Tensor]:
    """A dense symmetric float64 matrix with five outliers (50, 30, 20, 10, 8) over a bulk in
    [-0.1, 0.4], and its eigenvalues: the trace and density estimators' known answer."""
    g = torch.Generator().manual_seed(seed)
    U, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    eigs = torch.cat([torch.tensor([50.0, 30.0, 20.0, 10.0, 8.0], dtype=torch.float64),
                      torch.rand(d - 5, generator=g, dtype=torch.float64) * 0.5 - 0.1])
    return U @ torch.diag(eigs) @ U.T, eigs
