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
from typing import Optional

from ..objective import Objective
from ..results import result
from .common import AscentSharpness, maximize_in_ball, perturbation_info, perturbation_mask

RHO_DEFAULT = 0.05


@result()
@dataclass(frozen=True)
class WorstCaseSharpness(AscentSharpness):
    """max_{‖δ‖₂≤ρ} L(θ+δ) − L(θ) and how it was found."""

    DEFINITION = "max_{||d||_2 <= rho} L(theta+d) - L(theta)"
    REFERENCE = "Foret et al. 2021 (SAM)"
    METHOD = "projected gradient ascent on the L2 ball (lower bound on the maximum)"
    RADIUS = ("rho",)
    EXTRA = {"rho_rule": "SAM's usual radius 0.05 unless --rho is given", "m": "whole evaluation set"}

    rho: float


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
    return WorstCaseSharpness.from_ascent(res, value=res.max_loss - base, base_loss=base, steps=steps,
                                          restarts=restarts, seed=seed, rho=float(rho),
                                          perturbation=perturbation_info(objective, mask, include_bn))
