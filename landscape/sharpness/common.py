"""Pieces shared by the perturbation-based sharpness measures.

- :func:`perturbation_mask`: which coordinates of θ a measure may perturb (by default every
  weight and bias, not the parameters of normalisation layers such as BatchNorm, whose scale
  invariance makes perturbations of their neighbours meaningless and their own perturbations
  incomparable across networks).
- :func:`maximize_in_ball`: projected gradient ascent of L(θ + s ⊙ u) over a unit ball of ``u``
  (L2 or L∞), used by the ε-sharpness (box), worst-case (L2 ball) and adaptive (|θ|-scaled L2
  ball, i.e. an ellipsoid in δ) measures. Optimising over ``u`` instead of δ = s ⊙ u turns the
  ellipsoid and the box into unit balls, so the projection is exact and needs no bisection.
- :func:`noise`: seeded Gaussian draws, reproducible per sample index (common random numbers).

Every loss value comes from the :class:`~landscape.objective.Objective` (``evaluate`` /
``value_and_grad`` at a perturbed θ); nothing here touches data.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import ClassVar, Dict, Optional, Tuple

import torch

from ..errors import OptionError
from ..objective import Objective
from ..results import result

_SEED_STRIDE = 1_000_003


def perturbation_mask(objective: Objective, *, include_bn: bool = False) -> torch.Tensor:
    """1 on the coordinates a measure perturbs: weights and biases, plus norm-layer parameters
    when ``include_bn`` (normalisation layers: BatchNorm, GroupNorm, LayerNorm)."""
    kinds = ("weight", "bias", "norm") if include_bn else ("weight", "bias")
    mask = objective.space.mask(kinds, like=objective.theta0)
    if not bool(mask.any()):
        raise OptionError("no parameters to perturb (the model has only normalisation-layer "
                          "parameters); pass {include_bn}")
    return mask


def perturbation_info(objective: Objective, mask: torch.Tensor, include_bn: bool) -> dict:
    """What was perturbed, for the JSON."""
    return {
        "include_bn": bool(include_bn),
        "perturbed": "weights, biases and normalisation-layer parameters" if include_bn
        else "weights and biases (normalisation-layer parameters excluded)",
        "n_perturbed": int(mask.sum().item()),
        "n_params": int(objective.dim),
    }


def generator(objective: Objective, seed: int) -> torch.Generator:
    """A torch generator on the objective's device, seeded."""
    return torch.Generator(device=objective.device).manual_seed(int(seed))


def noise(objective: Objective, seed: int, index: int) -> torch.Tensor:
    """Standard normal vector number ``index`` of the stream ``seed`` (the same on every call)."""
    g = generator(objective, seed * _SEED_STRIDE + index)
    return torch.randn(objective.dim, generator=g, device=objective.device, dtype=objective.dtype)


@dataclass(frozen=True)
class AscentNumbers:
    """What one projected gradient ascent (:func:`maximize_in_ball`) found, declared once for its raw
    result (:class:`AscentResult`) and for the measures that report it (:class:`AscentSharpness`).

    ``max_loss``: the largest L(θ + δ) seen (a lower bound on the true maximum); ``per_restart``:
    the best loss of each restart; ``history``: the best loss after each step of the best restart;
    ``final_step``: that restart's step size at the end (in units of the ball radius; halved on every
    step that failed to increase the loss, so a small value means it settled on a local maximum);
    ``evaluations``: loss+gradient passes used; ``delta_norm``: ‖δ‖₂ of the best point (None in a
    measure that does not report it: the box of the ε-sharpness).
    """

    max_loss: float
    per_restart: Tuple[float, ...]
    history: Tuple[float, ...]
    final_step: float
    evaluations: int
    delta_norm: Optional[float]


@dataclass(frozen=True)
class AscentResult(AscentNumbers):
    """The best point found by projected gradient ascent: its numbers and ``delta``, the
    perturbation δ itself (a tensor, which the measures do not keep)."""

    delta: Optional[torch.Tensor] = None


@result()
@dataclass(frozen=True)
class AscentSharpness(AscentNumbers):
    """A sharpness that is a maximum of L(θ + δ) − L(θ) over a ball, found by projected ascent
    (:func:`maximize_in_ball`): the shared record of the ε (Keskar), worst-case (SAM) and adaptive
    (ASAM) measures. Each subclass names its definition, reference, method and the fields that
    size its ball (``RADIUS``); the JSON lists them in that order, then the ascent's numbers.
    Build them with :meth:`from_ascent` (keywords)."""

    DEFINITION: ClassVar[str] = ""
    REFERENCE: ClassVar[str] = ""
    METHOD: ClassVar[str] = ""
    RADIUS: ClassVar[Tuple[str, ...]] = ()
    EXTRA: ClassVar[Dict[str, str]] = {}

    value: float
    base_loss: float
    steps: int
    restarts: int
    perturbation: dict
    seed: int

    def to_json(self) -> dict:
        d = {"value": self.value, "definition": self.DEFINITION, "reference": self.REFERENCE}
        d.update({k: getattr(self, k) for k in self.RADIUS})
        d.update(self.EXTRA)
        d.update(base_loss=self.base_loss, max_loss=self.max_loss, method=self.METHOD, steps=self.steps,
                 restarts=self.restarts, per_restart_max_loss=list(self.per_restart),
                 history=list(self.history), final_step=self.final_step)
        if self.delta_norm is not None:
            d["delta_norm"] = self.delta_norm
        d.update(evaluations=self.evaluations, perturbation=self.perturbation, seed=self.seed)
        return d

    @classmethod
    def from_ascent(cls, res: AscentResult, *, value: float, base_loss: float, steps: int, restarts: int,
                    perturbation: dict, seed: int, with_delta_norm: bool = True, **radius: float) -> AscentSharpness:
        """The measure from an ascent's result (its :class:`AscentNumbers`, all of them) and the
        ball's parameters; ``with_delta_norm=False`` for a measure that does not report ‖δ‖₂."""
        numbers = {f.name: getattr(res, f.name) for f in fields(AscentNumbers)}
        if not with_delta_norm:
            numbers["delta_norm"] = None
        return cls(**numbers, value=value, base_loss=base_loss, steps=steps, restarts=restarts,
                   perturbation=perturbation, seed=seed, **radius)


def maximize_in_ball(objective: Objective, scale: torch.Tensor, *, norm: str, steps: int,
                     restarts: int, seed: int, theta: Optional[torch.Tensor] = None) -> AscentResult:
    """Maximise L(θ + scale ⊙ u) over ‖u‖ ≤ 1 (``norm`` = ``"l2"`` or ``"linf"``).

    Projected (steepest) gradient ascent in ``u``: L2 steps along the normalised gradient, L∞
    steps along its sign (the steepest-ascent directions of each norm), each followed by the exact
    projection onto the unit ball. The step starts at the ball's radius and is halved, from the best
    point so far, whenever a step does not increase the loss (as in APGD, Croce & Hein 2020).
    Restart 0 starts at u = 0 (its first step is SAM's one-step ascent); restarts 1.. start at a
    seeded random point (L2: radius ½ in a random direction; L∞: uniform in the box). Coordinates
    where ``scale`` is 0 never move.
    """
    if norm not in ("l2", "linf"):
        raise ValueError("norm must be 'l2' or 'linf'")
    if steps < 1 or restarts < 1:
        raise OptionError("{steps} and {restarts} must be at least 1")
    theta = objective.theta0 if theta is None else theta
    active = scale != 0
    best_overall: Optional[Tuple[float, torch.Tensor, Tuple[float, ...], float]] = None
    per_restart = []
    for r in range(restarts):
        u0 = _start(objective, active, norm, seed, r)
        best, u_best, hist, step = _ascend(objective, theta, scale, u0, norm, steps)
        per_restart.append(best)
        if best_overall is None or best > best_overall[0]:
            best_overall = (best, u_best, hist, step)
    assert best_overall is not None
    best, u_best, hist, step = best_overall
    delta = scale * u_best
    return AscentResult(max_loss=best, per_restart=tuple(per_restart), history=hist, final_step=step,
                        evaluations=restarts * (steps + 1), delta_norm=float(delta.norm().item()), delta=delta)


def _start(objective: Objective, active: torch.Tensor, norm: str, seed: int, restart: int) -> torch.Tensor:
    zeros = torch.zeros(objective.dim, dtype=objective.dtype, device=objective.device)
    if restart == 0:
        return zeros
    g = generator(objective, seed * _SEED_STRIDE + 7919 * restart + 17)
    if norm == "linf":
        u = torch.rand(objective.dim, generator=g, device=objective.device, dtype=objective.dtype) * 2 - 1
        return torch.where(active, u, zeros)
    z = torch.randn(objective.dim, generator=g, device=objective.device, dtype=objective.dtype)
    z = torch.where(active, z, zeros)
    return 0.5 * z / z.norm().clamp_min(torch.finfo(z.dtype).tiny)


def _ascend(objective: Objective, theta: torch.Tensor, scale: torch.Tensor, u: torch.Tensor,
            norm: str, steps: int) -> Tuple[float, torch.Tensor, Tuple[float, ...], float]:
    """One restart; returns (best loss, best u, best-so-far history, final step size).

    Tensor bookkeeping only (``torch.where``), so there is no host sync inside the loop.
    """
    tiny = torch.finfo(u.dtype).tiny
    best_value = torch.full((), -float("inf"), dtype=torch.float64, device=u.device)
    best_u = u.clone()
    best_dir = torch.zeros_like(u)
    step = torch.ones((), dtype=u.dtype, device=u.device)
    history = []
    for _ in range(steps):
        value, grad = objective.value_and_grad(theta + scale * u)
        value = value.double()
        g_u = scale * grad
        direction = g_u / g_u.norm().clamp_min(tiny) if norm == "l2" else torch.sign(g_u)
        better = value > best_value  # NaN never counts as better
        best_value = torch.where(better, value, best_value)
        best_u = torch.where(better, u, best_u)
        best_dir = torch.where(better, direction, best_dir)
        step = torch.where(better, step, step * 0.5)
        u = _project(best_u + step * best_dir, norm)
        history.append(best_value)
    final = torch.tensor(objective.evaluate(theta + scale * u).loss, dtype=torch.float64, device=u.device)
    better = final > best_value
    best_value = torch.where(better, final, best_value)
    best_u = torch.where(better, u, best_u)
    history.append(best_value)
    hist = tuple(float(v) for v in torch.stack(history).tolist())
    return float(best_value.item()), best_u, hist, float(step.item())


def _project(u: torch.Tensor, norm: str) -> torch.Tensor:
    if norm == "linf":
        return u.clamp(-1.0, 1.0)
    n = u.norm()
    return u / torch.clamp(n, min=1.0)
