"""Average-case sharpness: the expected loss increase under isotropic Gaussian weight noise,

    A_σ(θ) = E_{δ ~ N(0, σ² I)} [L(θ + δ) − L(θ)]   (≈ σ²·tr(H)/2 for small σ at any θ),

as used in the flatness comparisons of Jiang et al. 2020 and Andriushchenko et al. 2023.
Estimated by Monte Carlo with antithetic pairs: each sample is (L(θ+δ) + L(θ−δ))/2 − L(θ), which
has the same mean (the noise is symmetric) but cancels the first-order term gᵀδ, so its standard
error, reported with the value, is far smaller away from a minimum.

Default σ = ρ/√d (d = number of perturbed coordinates, ρ the worst-case radius), so that
E‖δ‖² = ρ²: the average and the worst case then probe perturbations of the same size, and near
a minimum their ratio is about tr(H)/(d·λ_max).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch

from ..objective import Objective
from .common import noise, perturbation_info, perturbation_mask
from .worst_case import RHO_DEFAULT


@dataclass(frozen=True)
class AverageSharpness:
    """E[L(θ+δ)] − L(θ) over Gaussian δ, with its Monte Carlo standard error."""

    value: float
    stderr: float
    sigma: float
    sigma_rule: str
    samples: int
    base_loss: float
    perturbation: dict
    seed: int

    def to_json(self) -> dict:
        return {
            "value": self.value,
            "stderr": self.stderr,
            "definition": "E_{d ~ N(0, sigma^2 I)} L(theta+d) - L(theta)",
            "reference": "Jiang et al. 2020; Andriushchenko et al. 2023",
            "sigma": self.sigma,
            "sigma_rule": self.sigma_rule,
            "samples": self.samples,
            "antithetic": True,
            "evaluations": 2 * self.samples,
            "base_loss": self.base_loss,
            "perturbation": self.perturbation,
            "seed": self.seed,
        }


def default_sigma(n_perturbed: int, rho: float = RHO_DEFAULT) -> float:
    """σ = ρ/√d: Gaussian noise with the worst-case ball's expected squared radius."""
    return rho / math.sqrt(max(1, n_perturbed))


def average_sharpness(objective: Objective, *, sigma: Optional[float] = None,
                      rho: float = RHO_DEFAULT, samples: int = 16, seed: int = 0,
                      include_bn: bool = False, base_loss: Optional[float] = None) -> AverageSharpness:
    """Average-case sharpness (see module docstring); ``samples`` antithetic pairs."""
    if samples < 2:
        raise ValueError("samples must be at least 2 (for a standard error)")
    mask = perturbation_mask(objective, include_bn=include_bn)
    info = perturbation_info(objective, mask, include_bn)
    if sigma is None:
        sigma, rule = default_sigma(info["n_perturbed"], rho), f"rho/sqrt(d) with rho={rho}"
    else:
        rule = "given"
    if not sigma > 0:
        raise ValueError("sigma must be positive")
    theta = objective.theta0
    base = objective.loss(theta) if base_loss is None else float(base_loss)
    pairs = torch.empty(samples, dtype=torch.float64)
    for j in range(samples):
        delta = sigma * noise(objective, seed, j) * mask
        plus, minus = objective.loss(theta + delta), objective.loss(theta - delta)
        pairs[j] = 0.5 * (plus + minus) - base
    mean, stderr = float(pairs.mean()), float(pairs.std(unbiased=True) / math.sqrt(samples))
    return AverageSharpness(mean, stderr, float(sigma), rule, samples, base, info, seed)
