"""Real optimizer steps on a tiny float64 model, shared by the optimizer tests: the model, its
parameters as one flat vector, and a loop of cross-entropy steps on seeded random batches."""

from __future__ import annotations

import copy
from typing import Optional, Tuple

import torch


def tiny_model() -> torch.nn.Module:
    """3 → 4 (tanh) → 2, float64, seeded."""
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2)).double()


def flat(model: torch.nn.Module, grads: bool = False) -> torch.Tensor:
    """The parameters (or their gradients) as one vector."""
    return torch.cat([(p.grad if grads else p).detach().reshape(-1) for p in model.parameters()])


def take_steps(opt: torch.optim.Optimizer, model: torch.nn.Module,
               steps: int) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, Optional[dict]]:
    """``steps`` steps on batches of 16 (seed 1); returns (θ_{t−1}, θ_t, g_t, optimizer state after t−1)."""
    gen = torch.Generator().manual_seed(1)
    prev = grad = before_state = None
    for _ in range(steps):
        x = torch.randn(16, 3, generator=gen, dtype=torch.float64)
        y = torch.randint(0, 2, (16,), generator=gen)
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        prev, grad = flat(model), flat(model, grads=True)
        before_state = copy.deepcopy(opt.state_dict())
        opt.step()
    return prev, flat(model), grad, before_state
