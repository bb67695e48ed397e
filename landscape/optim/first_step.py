"""Every family's first update from a fresh state, in closed form (torch.optim semantics).

With zero buffers and gradient g (coupled weight decay already added, g ← g + wd·θ₀):

| family | Δθ₁ |
|---|---|
| sgd (momentum β; the buffer starts at g) | −η g; Nesterov −η(1 + β) g |
| adam, amsgrad, swats | −η g/(|g| + ε) ≈ −η sign(g) |
| adamw | −η g/(|g| + ε) − η·wd·θ₀ (decoupled) |
| radam | −η g (ρ₁ = 1 ≤ 5: unrectified, SGD-like) |
| adagrad | −η g/(√(a₀ + g²) + ε), a₀ = initial_accumulator_value |
| rmsprop | −η g/(√(1 − α)|g| + ε) (centred: √(α(1 − α))|g| + ε) — ≈ 10η sign(g) at α = 0.99 |
| adadelta | −η √ε g/√((1 − ρ)g² + ε) |
| adabound, amsbound | −clip(η √(1−β₂)/((1−β₁)(√(1−β₂)|g| + ε)), η_l(1), η_u(1)) (1 − β₁) g |

AdaBound's upper bound at step 1 is η_u(1) = α*(1 + 1/γ) (100.1 with its defaults): it clips only
the coordinates with |g| < η/((1 − β₁)η_u(1)) (≈ 10⁻⁴ at η = 10⁻³, 0.01 at η = 0.1); ``clipped``
reports their fraction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch

from ..errors import SpecError
from .adabound import bounds
from .factory import OptimizerConfig


@dataclass(frozen=True)
class FirstStep:
    delta: torch.Tensor
    clipped: Optional[float] = None    # AdaBound/AMSBound: fraction of coordinates capped by η_u(1)


def first_step_closed_form(cfg: OptimizerConfig, grad: torch.Tensor,
                           theta0: Optional[torch.Tensor] = None) -> FirstStep:
    """Δθ₁ of family ``cfg.name`` from zero state (table in the module docstring)."""
    name, lr, eps = cfg.name.lower(), cfg.lr, cfg.eps
    g = grad
    if cfg.weight_decay and name != "adamw":
        if theta0 is None:
            raise SpecError("coupled weight decay: pass theta0")
        g = g + cfg.weight_decay * theta0
    if name == "sgd":
        return FirstStep(-lr * (1 + cfg.momentum) * g if cfg.nesterov else -lr * g)
    if name in ("adam", "amsgrad", "swats"):
        return FirstStep(-lr * g / (g.abs() + eps))
    if name == "adamw":
        decay = -lr * cfg.weight_decay * theta0 if (cfg.weight_decay and theta0 is not None) else 0.0
        return FirstStep(-lr * g / (g.abs() + eps) + decay)
    if name == "radam":
        return FirstStep(-lr * g)
    if name == "adagrad":
        return FirstStep(-lr * g / ((cfg.initial_accumulator_value + g * g).sqrt() + eps))
    if name == "rmsprop":
        scale = math.sqrt(cfg.alpha * (1 - cfg.alpha)) if cfg.centered else math.sqrt(1 - cfg.alpha)
        return FirstStep(-lr * g / (scale * g.abs() + eps))
    if name == "adadelta":
        return FirstStep(-lr * math.sqrt(eps) * g / ((1 - cfg.rho) * g * g + eps).sqrt())
    if name in ("adabound", "amsbound"):
        b1, b2 = cfg.betas
        lo, hi = bounds({"final_lr": cfg.final_lr, "gamma": cfg.gamma, "lr": lr, "base_lr": lr}, 1)
        raw = lr * math.sqrt(1 - b2) / (1 - b1) / (math.sqrt(1 - b2) * g.abs() + eps)
        rate = raw.clamp(lo, hi)
        return FirstStep(-rate * (1 - b1) * g, float((raw > hi).double().mean()))
    raise SpecError(f"no first-step closed form for optimizer {cfg.name!r}")
