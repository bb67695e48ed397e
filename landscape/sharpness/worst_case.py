"""Worst-case (SAM) sharpness, Foret et al. 2021 ("Sharpness-aware minimization for efficiently
improving generalization", ICLR 2021):

    S_ρ(θ) = max_{‖δ‖₂ ≤ ρ} L(θ + δ) − L(θ),

here over the whole evaluation set (m = n in their m-sharpness notation), maximised by projected
gradient ascent on the L2 ball; restart 0 starts at δ = 0, so its first step is SAM's own ascent
step ρ·g/‖g‖. For small ρ at a minimum, S_ρ ≈ ρ²·λ_max/2.

Default ρ = 0.05: the radius SAM is most often run with (the usual default of SAM
implementations), so the number is the loss increase SAM's ascent step probes.
It is not scale-invariant (see :mod:`.adaptive`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

from ..objective import Objective
from .common import maximize_in_ball, perturbation_info, perturbation_mask

RHO_DEFAULT = 0.05


@dataclass(frozen=True)
class WorstCaseSharpness:
    """max_{‖δ‖₂≤ρ} L(θ+δ) − L(θ) and how it was found."""

    value: float
    rho: float
    base_loss: float
    max_loss: float
    steps: int
    restarts: int
    per_restart: Tuple[float, ...]
    history: Tuple[float, ...]
    final_step: float
    delta_norm: float
    evaluations: int
    perturbation: dict
    seed: int

    def to_json(self) -> dict:
        return {
            "value": self.value,
            "definition": "max_{||d||_2 <= rho} L(theta+d) - L(theta)",
            "reference": "Foret et al. 2021 (SAM)",
            "rho": self.rho,
            "rho_rule": "SAM's usual radius 0.05 unless --rho is given",
            "m": "whole evaluation set",
            "base_loss": self.base_loss,
            "max_loss": self.max_loss,
            "method": "projected gradient ascent on the L2 ball (lower bound on the maximum)",
            "steps": self.steps,
            "restarts": self.restarts,
            "per_restart_max_loss": list(self.per_restart),
            "history": list(self.history),
            "final_step": self.final_step,
            "delta_norm": self.delta_norm,
            "evaluations": self.evaluations,
            "perturbation": self.perturbation,
            "seed": self.seed,
        }


def worst_case_sharpness(objective: Objective, *, rho: float = RHO_DEFAULT, steps: int = 20,
                         restarts: int = 3, seed: int = 0, include_bn: bool = False,
                         base_loss: Optional[float] = None) -> WorstCaseSharpness:
    """SAM's worst-case sharpness of ``objective`` at its ``theta0`` (see module docstring)."""
    if not rho > 0:
        raise ValueError("rho must be positive")
    mask = perturbation_mask(objective, include_bn=include_bn)
    theta = objective.theta0
    base = objective.loss(theta) if base_loss is None else float(base_loss)
    res = maximize_in_ball(objective, rho * mask, norm="l2", steps=steps, restarts=restarts, seed=seed)
    return WorstCaseSharpness(res.max_loss - base, float(rho), base, res.max_loss, steps, restarts,
                              res.per_restart, res.history, res.final_step, res.delta_norm,
                              res.evaluations, perturbation_info(objective, mask, include_bn), seed)
