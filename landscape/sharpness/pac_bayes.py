"""PAC-Bayesian flatness σ of Jiang et al. 2020 ("Fantastic generalization measures and where to
find them", ICLR 2020, measures ``pacbayes.flatness`` and ``pacbayes.mag.flatness``):

    σ* = the largest σ with  E_{δ ~ N(0, Σ_σ)} [c(θ + δ)] − c(θ) ≤ target,

where c is the criterion and Σ_σ the noise covariance:

- ``criterion="loss"`` (default, as the issue specifies): c = the training loss;
  ``criterion="error"``: c = the training 0-1 error, Jiang et al.'s own criterion (their reference
  code bisects on the change of training accuracy, target 0.1).
- plain: Σ_σ = σ² I; ``magnitude=True`` (the magnitude-aware variant): per-coordinate variance
  σ²θᵢ² + ε², ε = 1e-3 (so σ is relative to each weight's size).

Jiang et al. report 1/σ*² as the flatness measure (larger = sharper); both are in the JSON.

Estimation. The expectation is a Monte Carlo mean over antithetic pairs ±δⱼ (the noise is
symmetric, so the mean is unchanged and the first-order term cancels) with *common random
numbers*: the j-th sample is δⱼ = Σ_σ^{1/2} zⱼ with the same zⱼ at every σ, so the estimate is a
smooth function of σ and a bracketing search on it is consistent. σ is bracketed starting from
σ₀ = 0.01 and the bracket is shrunk (safeguarded interpolation in log-log, geometric bisection as
the fallback) until σ_hi/σ_lo ≤ 1 + rel_tol (default 0.05); the reported σ is σ_lo (estimate ≤
target). Monte Carlo error is controlled: while the standard error of the estimate at
σ exceeds ``mc_tol`` the number of pairs is doubled (up to ``max_samples``) and the bisection
is redone with the extended sample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import torch

from ..objective import Objective
from .common import noise, perturbation_info, perturbation_mask

SIGMA_MIN, SIGMA_MAX, SIGMA_START, MAX_ROUNDS = 1e-7, 1e3, 1e-2, 40


@dataclass(frozen=True)
class PacBayesSigma:
    """The largest noise scale σ whose expected criterion increase stays within ``target``."""

    sigma: float
    sigma_upper: float
    criterion: str
    target: float
    magnitude: bool
    mag_eps: Optional[float]
    increase: float
    stderr: float
    increase_upper: float
    samples: int
    mc_tol: float
    rel_tol: float
    bracketed: bool
    base_value: float
    evaluations: int
    history: Tuple[dict, ...]
    perturbation: dict
    seed: int

    @property
    def flatness(self) -> float:
        """Jiang et al.'s measure 1/σ² (larger = sharper)."""
        return 1.0 / self.sigma ** 2 if self.sigma > 0 else float("inf")

    @property
    def mc_ok(self) -> bool:
        return self.stderr <= self.mc_tol

    def to_json(self) -> dict:
        noise_def = ("N(0, sigma^2 theta_i^2 + mag_eps^2) per coordinate" if self.magnitude
                     else "N(0, sigma^2 I)")
        return {
            "value": self.sigma,
            "sigma": self.sigma,
            "sigma_upper": self.sigma_upper,
            "flatness": self.flatness,
            "definition": f"largest sigma with E[c(theta+d)] - c(theta) <= target, d ~ {noise_def}",
            "reference": "Jiang et al. 2020 (pacbayes.mag.flatness)" if self.magnitude
            else "Jiang et al. 2020 (pacbayes.flatness)",
            "criterion": self.criterion,
            "criterion_note": "training loss (the issue's criterion)" if self.criterion == "loss"
            else "training 0-1 error (Jiang et al.'s criterion)",
            "target": self.target,
            "magnitude_aware": self.magnitude,
            "mag_eps": self.mag_eps,
            "increase_at_sigma": self.increase,
            "stderr_at_sigma": self.stderr,
            "increase_at_sigma_upper": self.increase_upper,
            "base_value": self.base_value,
            "samples": self.samples,
            "antithetic": True,
            "common_random_numbers": True,
            "mc_tol": self.mc_tol,
            "mc_error_within_tol": self.mc_ok,
            "rel_tol": self.rel_tol,
            "bracketed": self.bracketed,
            "converged": bool(self.bracketed and self.mc_ok),
            "evaluations": self.evaluations,
            "history": list(self.history),
            "perturbation": self.perturbation,
            "seed": self.seed,
        }


class _Estimator:
    """Monte Carlo estimates of the criterion increase at σ, caching the pairs per σ."""

    def __init__(self, objective: Objective, mask: torch.Tensor, criterion: str, magnitude: bool,
                 mag_eps: float, seed: int) -> None:
        self.obj, self.mask, self.criterion = objective, mask, criterion
        self.magnitude, self.mag_eps, self.seed = magnitude, mag_eps, seed
        self.theta = objective.theta0
        self.base = self.value(self.theta)
        self.cache: Dict[float, List[float]] = {}
        self.evaluations = 1
        self.history: List[dict] = []

    def value(self, theta: torch.Tensor) -> float:
        ev = self.obj.evaluate(theta)
        return ev.loss if self.criterion == "loss" else 1.0 - ev.acc

    def std(self, sigma: float) -> torch.Tensor:
        if self.magnitude:
            return torch.sqrt(sigma ** 2 * self.theta ** 2 + self.mag_eps ** 2) * self.mask
        return sigma * self.mask

    def __call__(self, sigma: float, m: int) -> Tuple[float, float]:
        pairs = self.cache.setdefault(sigma, [])
        fresh = len(pairs) < m
        if fresh:
            std = self.std(sigma)
            for j in range(len(pairs), m):
                delta = std * noise(self.obj, self.seed, j)
                plus, minus = self.value(self.theta + delta), self.value(self.theta - delta)
                pairs.append(0.5 * (plus + minus) - self.base)
                self.evaluations += 2
        t = torch.tensor(pairs[:m], dtype=torch.float64)
        mean = float(t.mean())
        se = float(t.std(unbiased=True) / math.sqrt(m)) if m > 1 else float("inf")
        if fresh:
            self.history.append({"sigma": sigma, "samples": m, "increase": mean, "stderr": se})
        return mean, se


def pac_bayes_sigma(objective: Objective, *, target: float = 0.1, criterion: str = "loss",
                    magnitude: bool = False, mag_eps: float = 1e-3, samples: int = 16,
                    max_samples: int = 64, mc_tol: Optional[float] = None, rel_tol: float = 0.05,
                    seed: int = 0, include_bn: bool = False) -> PacBayesSigma:
    """Bisection for Jiang et al.'s σ (see module docstring).

    ``samples``: antithetic pairs to start with; doubled while the standard error at σ exceeds
    ``mc_tol`` (default target/10), up to ``max_samples``. ``rel_tol``: relative width of the
    final bracket [σ, σ_upper].
    """
    if criterion not in ("loss", "error"):
        raise ValueError("criterion must be 'loss' or 'error'")
    if not target > 0 or samples < 2 or max_samples < samples or not rel_tol > 0:
        raise ValueError("need target > 0, 2 <= samples <= max_samples and rel_tol > 0")
    tol = target / 10.0 if mc_tol is None else float(mc_tol)
    mask = perturbation_mask(objective, include_bn=include_bn)
    est = _Estimator(objective, mask, criterion, magnitude, mag_eps, seed)
    m, lo, hi = samples, None, None
    while True:
        lo, hi, bracketed = _search(est, m, target, rel_tol, lo, hi)
        inc, se = est(lo, m)
        if se <= tol or m >= max_samples:
            break
        m = min(2 * m, max_samples)
    inc_hi, _ = est(hi, m) if hi is not None else (float("nan"), float("nan"))
    return PacBayesSigma(lo, hi if hi is not None else float("inf"), criterion, float(target),
                         bool(magnitude), float(mag_eps) if magnitude else None, inc, se, inc_hi, m,
                         tol, float(rel_tol), bracketed, est.base, est.evaluations,
                         tuple(est.history), perturbation_info(objective, mask, include_bn), seed)


def _search(est: _Estimator, m: int, target: float, rel_tol: float, lo: Optional[float],
            hi: Optional[float]) -> Tuple[float, Optional[float], bool]:
    """Bracket σ* (reusing a previous bracket when it still holds), then shrink the bracket to
    σ_hi/σ_lo ≤ 1 + rel_tol. Each round aims at σ* by interpolating log(increase) linearly in
    log σ (the increase is ≈ quadratic in σ for small σ) and probes just below and just above
    the aim; a geometric midpoint replaces an aim too close to either end (safeguard)."""
    lo, hi, ok = _bracket(est, m, target, rel_tol, lo, hi)
    if not ok:
        return lo, hi, False
    assert hi is not None
    half = math.sqrt(1.0 + rel_tol)
    for _ in range(MAX_ROUNDS):
        if hi / lo <= (1.0 + rel_tol) * (1.0 + 1e-9):
            break
        aim = _aim(lo, hi, est(lo, m)[0], est(hi, m)[0], target)
        for probe in (aim / half, aim * half):
            if lo < probe < hi:
                if est(probe, m)[0] <= target:
                    lo = probe
                else:
                    hi = probe
    return lo, hi, hi / lo <= (1.0 + rel_tol) * (1.0 + 1e-9)


def _aim(lo: float, hi: float, f_lo: float, f_hi: float, target: float) -> float:
    mid = math.sqrt(lo * hi)
    if not (f_lo > 0 and f_hi > f_lo):
        return mid
    a, b = math.log(lo), math.log(hi)
    x = a + (math.log(target) - math.log(f_lo)) * (b - a) / (math.log(f_hi) - math.log(f_lo))
    return math.exp(x) if a + 0.1 * (b - a) <= x <= b - 0.1 * (b - a) else mid


def _bracket(est: _Estimator, m: int, target: float, rel_tol: float, lo: Optional[float],
             hi: Optional[float]) -> Tuple[float, Optional[float], bool]:
    """σ_lo with estimate ≤ target and σ_hi with estimate > target.

    From scratch: probe σ₀, jump to σ₀·√(target/increase) (the quadratic guess), then gallop
    outwards (factors 1.5, 1.5², 1.5⁴, ...). With a previous bracket: check both ends with the
    current sample and gallop outwards from the broken end with factors starting at 1 + rel_tol.
    """
    if lo is None or hi is None:
        f0 = est(SIGMA_START, m)[0]
        guess = SIGMA_START * min(100.0, max(0.01, math.sqrt(target / f0))) if f0 > 0 else SIGMA_START * 4
        lo = hi = guess
        factor = 1.5
    else:
        factor = 1.0 + rel_tol
    if est(lo, m)[0] > target:
        hi = lo
        while est(lo, m)[0] > target:
            hi, lo = lo, lo / factor
            factor *= factor
            if lo < SIGMA_MIN:
                return SIGMA_MIN, hi, False
    if hi <= lo or est(hi, m)[0] <= target:
        hi = max(lo, hi)
        while est(hi, m)[0] <= target:
            lo, hi = hi, hi * factor
            factor *= factor
            if hi > SIGMA_MAX:
                return lo, None, False
    return lo, hi, True
