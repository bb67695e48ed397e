"""Adaptive worst-case sharpness: Kwon et al. 2021 (ASAM, "Adaptive sharpness-aware minimization
for scale-invariant learning of deep neural networks", ICML 2021); Andriushchenko et al. 2023 ("A
modern look at the relationship between sharpness and generalization", ICML 2023):

    S^a_ρ(θ) = max_{‖T⁻¹δ‖₂ ≤ ρ} L(θ + δ) − L(θ),   T = diag(|θᵢ| + η).

The ball is an ellipsoid in δ; writing δ = ρ·T·u turns it into the unit ball ‖u‖₂ ≤ 1, where
projected gradient ascent (gradient ρ·T·∇L) projects exactly, with no bisection on a Lagrange
multiplier. Scaling a ReLU layer by α and the next by 1/α leaves S^a unchanged when η = 0.
At a minimum, for small ρ, S^a_ρ ≈ ρ²·λ_max(T H T)/2.

Defaults ρ = 0.5 and η = 0.01: ASAM's CIFAR-10 settings (Kwon et al. 2021); ``eta=0`` gives the
pure |θ| scaling of Andriushchenko et al. (coordinates with θᵢ = 0 then cannot move).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..objective import Objective
from ..results import result
from .common import AscentSharpness, maximize_in_ball, perturbation_info, perturbation_mask

ADAPTIVE_RHO_DEFAULT = 0.5
ADAPTIVE_ETA_DEFAULT = 0.01


@result()
@dataclass(frozen=True)
class AdaptiveSharpness(AscentSharpness):
    """max over the |θ|-scaled ball of L(θ+δ) − L(θ) and how it was found."""

    DEFINITION = "max_{||d / (|theta| + eta)||_2 <= rho} L(theta+d) - L(theta)"
    REFERENCE = "Kwon et al. 2021 (ASAM); Andriushchenko et al. 2023"
    METHOD = ("projected gradient ascent in u = d / (rho (|theta| + eta)) on the unit L2 ball "
              "(exact projection; lower bound on the maximum)")
    RADIUS = ("rho", "eta")

    rho: float
    eta: float


def adaptive_sharpness(objective: Objective, *, rho: float = ADAPTIVE_RHO_DEFAULT,
                       eta: float = ADAPTIVE_ETA_DEFAULT, steps: int = 20, restarts: int = 3,
                       seed: int = 0, include_bn: bool = False,
                       base_loss: Optional[float] = None) -> AdaptiveSharpness:
    """Adaptive (ASAM) worst-case sharpness of ``objective`` at its ``theta0``."""
    if not rho > 0 or eta < 0:
        raise ValueError("rho must be positive and eta non-negative")
    mask = perturbation_mask(objective, include_bn=include_bn)
    theta = objective.theta0
    scale = rho * (theta.abs() + eta) * mask
    base = objective.loss(theta) if base_loss is None else float(base_loss)
    res = maximize_in_ball(objective, scale, norm="l2", steps=steps, restarts=restarts, seed=seed)
    return AdaptiveSharpness.from_ascent(res, value=res.max_loss - base, base_loss=base, steps=steps,
                                         restarts=restarts, seed=seed, rho=float(rho), eta=float(eta),
                                         perturbation=perturbation_info(objective, mask, include_bn))
