"""Every family's first update from a fresh state, in closed form (torch.optim semantics).

With zero buffers and gradient g (coupled weight decay already added, g ← g + wd·θ₀):

| family | Δθ₁ |
|---|---|
| sgd (momentum β; the buffer starts at g) | −η g; Nesterov −η(1 + β) g |
| adam, amsgrad, swats, adamax | −η g/(|g| + ε) ≈ −η sign(g) |
| adamw | −η g/(|g| + ε) − η·wd·θ₀ (decoupled) |
| radam | −η g (ρ₁ = 1 ≤ 5: unrectified, SGD-like) |
| adagrad | −η g/(√(a₀ + g²) + ε), a₀ = initial_accumulator_value |
| rmsprop | −η g/(√(1 − α)|g| + ε) (centred: √(α(1 − α))|g| + ε) — ≈ 10η sign(g) at α = 0.99 |
| adadelta | −η √ε g/√((1 − ρ)g² + ε) |
| adabound, amsbound | −clip(η √(1−β₂)/((1−β₁)(√(1−β₂)|g| + ε)), η_l(1), η_u(1)) (1 − β₁) g |

AdaBound's upper bound at step 1 is η_u(1) = α*(1 + 1/γ) (100.1 with its defaults): it clips only
the coordinates with |g| < η/((1 − β₁)η_u(1)) (≈ 10⁻⁴ at η = 10⁻³, 0.01 at η = 0.1); ``clipped``
reports their fraction. The formulas are the ``first_step`` of each record in
:mod:`landscape.optim.families`.
"""

from __future__ import annotations

from typing import Optional

import torch

from .factory import OptimizerConfig
from .families import FirstStep, first_step

__all__ = ["FirstStep", "first_step_closed_form"]


def first_step_closed_form(cfg: OptimizerConfig, grad: torch.Tensor,
                           theta0: Optional[torch.Tensor] = None) -> FirstStep:
    """Δθ₁ of family ``cfg.name`` from zero state (table in the module docstring)."""
    return first_step(cfg, grad, theta0)
