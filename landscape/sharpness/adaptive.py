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
from typing import Optional, Tuple

from ..objective import Objective
from .common import maximize_in_ball, perturbation_info, perturbation_mask

ADAPTIVE_RHO_DEFAULT = 0.5
ADAPTIVE_ETA_DEFAULT = 0.01


@dataclass(frozen=True)
class AdaptiveSharpness:
    """max over the |θ|-scaled ball of L(θ+δ) − L(θ) and how it was found."""

    value: float
    rho: float
    eta: float
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
            "definition": "max_{||d / (|theta| + eta)||_2 <= rho} L(theta+d) - L(theta)",
            "reference": "Kwon et al. 2021 (ASAM); Andriushchenko et al. 2023",
            "rho": self.rho,
            "eta": self.eta,
            "base_loss": self.base_loss,
            "max_loss": self.max_loss,
            "method": "projected gradient ascent in u = d / (rho (|theta| + eta)) on the unit L2 ball "
                      "(exact projection; lower bound on the maximum)",
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
    return AdaptiveSharpness(res.max_loss - base, float(rho), float(eta), base, res.max_loss, steps,
                             restarts, res.per_restart, res.history, res.final_step, res.delta_norm,
                             res.evaluations, perturbation_info(objective, mask, include_bn), seed)
