"""ε-sharpness of Keskar et al. 2017 ("On large-batch training for deep learning: generalization
gap and sharp minima", ICLR 2017, metric 2.1):

    φ_ε(θ) = 100 · (max_{δ ∈ C_ε} L(θ + δ) − L(θ)) / (1 + L(θ)),   C_ε = {δ : |δᵢ| ≤ ε(|θᵢ| + 1)}.

Keskar et al. maximised with 10 iterations of L-BFGS-B in the full space (ε = 1e-3 and 5e-4). Here
the maximum is approached by projected sign-gradient ascent in the box (the steepest-ascent
direction of the box's L∞ geometry) with random restarts; the result is a lower bound on the
true maximum, reported with the best loss of every restart and the ascent history.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..objective import Objective
from ..results import result
from .common import AscentSharpness, maximize_in_ball, perturbation_info, perturbation_mask

EPS_DEFAULT = 1e-3


@result()
@dataclass(frozen=True)
class EpsSharpness(AscentSharpness):
    """Keskar et al.'s ε-sharpness (percent) and how it was found."""

    DEFINITION = "100 * (max_{|d_i| <= eps*(|theta_i|+1)} L(theta+d) - L(theta)) / (1 + L(theta))"
    REFERENCE = "Keskar et al. 2017"
    METHOD = "projected sign-gradient ascent in the box (lower bound on the maximum)"
    RADIUS = ("eps",)

    eps: float


def eps_sharpness(objective: Objective, *, eps: float = EPS_DEFAULT, steps: int = 20,
                  restarts: int = 3, seed: int = 0, include_bn: bool = False,
                  base_loss: Optional[float] = None) -> EpsSharpness:
    """Keskar's ε-sharpness of ``objective`` at its ``theta0`` (see module docstring)."""
    if not eps > 0:
        raise ValueError("eps must be positive")
    mask = perturbation_mask(objective, include_bn=include_bn)
    theta = objective.theta0
    scale = eps * (theta.abs() + 1.0) * mask
    base = objective.loss(theta) if base_loss is None else float(base_loss)
    res = maximize_in_ball(objective, scale, norm="linf", steps=steps, restarts=restarts, seed=seed)
    value = 100.0 * (res.max_loss - base) / (1.0 + base)
    return EpsSharpness.from_ascent(res, value=value, base_loss=base, steps=steps, restarts=restarts,
                                    perturbation=perturbation_info(objective, mask, include_bn), seed=seed,
                                    with_delta_norm=False, eps=float(eps))
