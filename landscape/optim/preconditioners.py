"""Each optimizer family as a frozen-preconditioner linear recursion, and its stability threshold.

**The model.** Every family we train takes steps of the form

    θ_{t+1} = θ_t − η P_t⁻¹ u_t,

with P_t a positive diagonal (the identity for SGD) and u_t a *momentum term* built from gradients
by one of four recursions:

    none        u_t = g_t
    heavy_ball  u_t = β u_{t−1} + (1 − d) g_t          (torch SGD momentum, dampening d)
    ema         u_t = β u_{t−1} + (1 − β) g_t          (Adam's m_t)
    nesterov    u_t = g_t + β(β u_{t−1} + g_t)         (torch SGD nesterov=True)

Freeze P at its value at the checkpoint and take a quadratic L = ½θᵀHθ (g = Hθ). With
z = P^{1/2}θ the recursion acts on z through A = P^{−1/2} H P^{−1/2}, whose eigenvalues are those
of P⁻¹H; on an eigenvector with eigenvalue λ a step multiplies the state by the roots of

    none        z − (1 − ηλ)                                  → stable iff ηλ < 2
    heavy_ball  z² − (1 + β − (1 − d)ηλ) z + β                → iff (1 − d)ηλ < 2 + 2β
    ema         z² − (1 + β − (1 − β)ηλ) z + β                → iff ηλ < (2 + 2β)/(1 − β)
    nesterov    z² − (1 + β − (1 + β)ηλ) z + β(1 − ηλ)     → iff ηλ < (2 + 2β)/(1 + 2β)

(for 0 ≤ β < 1 both roots stay inside the unit circle for small ηλ and the first to leave does so
at z = −1; substituting z = −1 gives the thresholds). So each family diverges along the top
eigenvector of P⁻¹H exactly when λ₁(P⁻¹H) > c/η, with c the coefficient above: **threshold =
c/η on λ₁(P⁻¹H)**, computed as the top eigenvalue of the symmetric P^{−1/2} H P^{−1/2}.

**P and u per family** (torch.optim update rules; t = the state's step, after its update):

- sgd: P = I; recursion from momentum/dampening/nesterov.
- adam / adamw / amsgrad: P = (1 − β₁ᵗ)(√(v/(1 − β₂ᵗ)) + ε), v = ``exp_avg_sq`` (AMSGrad:
  ``max_exp_avg_sq``); u = m (ema, β₁). AdamW's decoupled decay θ ← (1 − η·wd)θ acts outside P
  and the EMA: the recursion becomes z² − (1 + β − η·wd − (1 − β)ηλ)z + β(1 − η·wd), whose
  z = −1 root gives c = (1 + β)(2 − η·wd)/(1 − β) (exact when P ∝ I; with a non-uniform P the
  unpreconditioned decay does not share P⁻¹H's eigenvectors and this is the per-mode estimate,
  as in :mod:`landscape.hessian.stability`).
- adagrad: P = √(Σg²) + ε (``sum``, which includes ``initial_accumulator_value``); u = g;
  η = lr/(1 + (t − 1)·lr_decay), the rate of step t.
- rmsprop: P = √v + ε, or √(v − ḡ²) + ε when centred (``grad_avg`` ḡ). Without momentum u = g;
  with momentum torch keeps b = βb + g/P, i.e. b = P⁻¹u for the heavy-ball u = βu + g when P is
  frozen: u = P·b, recursion heavy_ball (d = 0).
- adadelta: P = √(s + ε)/√(a + ε) with s = ``square_avg``, a = ``acc_delta``; u = g. torch uses
  the *previous* step's ``acc_delta``; from a checkpoint we only have the current one, so P is
  the rate the next step would use if s did not change (an O(1 − ρ) approximation; ``notes``).
- radam: rectified phase (ρ_t > 5): P = (1 − β₁ᵗ)(√v + ε)/(r_t √(1 − β₂ᵗ)) with r_t the
  rectification term; before it P = (1 − β₁ᵗ) (SGD with bias-corrected EMA momentum); u = m.
- adabound / amsbound: P = η / η̂_t with η̂_t the clipped per-coordinate rate at the checkpoint's
  step (:func:`landscape.optim.adabound.clipped_rate`); u = m (ema, β₁).
- swats: its saved groups say ``landscape_type`` adam (before the switch) or sgd (after, with
  lr = (1 − β₁)Λ and heavy-ball momentum β₁), and are read as those.

Coupled weight decay (torch ``weight_decay`` for every family but AdamW) makes the gradient
g + λ_wd θ: the operator is H + λ_wd I, reported in ``coupled_weight_decay``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import torch

from ..errors import LandscapeError
from .adabound import clipped_rate

RECURSIONS = ("none", "heavy_ball", "ema", "nesterov")


def threshold_coefficient(recursion: str, momentum: float = 0.0, dampening: float = 0.0) -> float:
    """c such that the frozen-P recursion diverges iff η·λ₁(P⁻¹H) > c (see module docstring)."""
    b = float(momentum)
    if recursion == "none":
        return 2.0
    if recursion == "heavy_ball":
        return (2.0 + 2.0 * b) / (1.0 - dampening)
    if recursion == "ema":
        return (2.0 + 2.0 * b) / (1.0 - b)
    if recursion == "nesterov":
        return (2.0 + 2.0 * b) / (1.0 + 2.0 * b)
    raise ValueError(f"unknown recursion {recursion!r}")


@dataclass(frozen=True)
class FrozenModel:
    """A family's step as θ ← θ − η P⁻¹ u with frozen P, and its threshold c/η on λ₁(P⁻¹H)."""

    family: str
    lr: float
    p_diag: Optional[torch.Tensor]     # flat, in ParamSpace order; None = identity
    recursion: str
    momentum: float
    dampening: float
    coefficient: float
    coupled_weight_decay: float
    step: Optional[int]
    notes: Tuple[str, ...] = ()

    @property
    def threshold(self) -> float:
        """c/η: the frozen-P quadratic diverges iff λ₁(P⁻¹H) exceeds it."""
        return self.coefficient / self.lr

    def to_json(self) -> dict:
        p = self.p_diag
        return {"family": self.family, "lr": self.lr, "recursion": self.recursion,
                "momentum": self.momentum, "dampening": self.dampening, "coefficient": self.coefficient,
                "threshold": self.threshold, "coupled_weight_decay": self.coupled_weight_decay,
                "step": self.step, "notes": list(self.notes),
                "p_min": float(p.min()) if p is not None else 1.0,
                "p_median": float(p.median()) if p is not None else 1.0,
                "p_max": float(p.max()) if p is not None else 1.0}


def frozen_model(opt, space, *, dtype: torch.dtype = torch.float64) -> FrozenModel:
    """The frozen-preconditioner model of an :class:`~landscape.checkpoint.OptimizerState`."""
    family = (opt.type or "unknown").lower()
    builder = _BUILDERS.get(family)
    if builder is None:
        raise LandscapeError(f"no preconditioner model for optimizer family {family!r} "
                             f"(known: {', '.join(sorted(_BUILDERS))})")
    if not opt.buffers and family != "sgd":
        raise LandscapeError(f"the {family} state has no per-parameter buffers (saved before the first step?)")
    return builder(opt, space, dtype)


def momentum_term(model: FrozenModel, opt, space, *, grad: Optional[torch.Tensor] = None,
                  dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """u_t of the model (flat) from the state; ``grad`` (g_t) where the state does not hold it.

    With it, the step that produced the state is θ_t − θ_{t−1} = −η P⁻¹ u_t.
    """
    fam = model.family
    if fam in ("adam", "adamw", "radam", "adabound", "amsbound"):
        return _flat(opt, space, "exp_avg", dtype)
    if fam == "sgd" and model.momentum > 0:
        buf = _flat(opt, space, "momentum_buffer", dtype)
        if model.recursion == "nesterov":
            return _need(grad, fam).to(dtype) + model.momentum * buf
        return buf
    if fam == "rmsprop" and model.momentum > 0:
        return model.p_diag * _flat(opt, space, "momentum_buffer", dtype)
    return _need(grad, fam).to(dtype)


# --------------------------------------------------------------------------- builders
def _shared_p(opt, space, dtype) -> torch.Tensor:
    """P of Adam/AMSGrad/AdamW, RMSprop and Adagrad: the Hessian engine's one definition
    (:func:`landscape.hessian.preconditioner.preconditioner_diag`, per-group hyper-parameters)."""
    from ..hessian.preconditioner import preconditioner_diag

    return preconditioner_diag(opt, space, dtype=dtype)


def _sgd(opt, space, dtype) -> FrozenModel:
    b, d = opt.momentum, opt.dampening
    rec = "none" if b == 0 else ("nesterov" if opt.nesterov else "heavy_ball")
    return FrozenModel("sgd", float(opt.lr), None, rec, b, d if rec == "heavy_ball" else 0.0,
                       threshold_coefficient(rec, b, d), opt.weight_decay, opt.step)


def _adam(opt, space, dtype) -> FrozenModel:
    b1 = opt.betas[0]
    t = _step(opt)
    ams = opt.amsgrad
    p = _shared_p(opt, space, dtype)
    notes = []
    family = opt.type.lower()
    wd = opt.weight_decay
    coefficient = threshold_coefficient("ema", b1)
    if family == "adamw":
        lr = float(opt.lr)
        coefficient = (1 + b1) * (2 - lr * wd) / (1 - b1)
        notes.append(f"decoupled weight decay {wd:g}: θ ← (1 − η·wd)θ outside P and the EMA; the z = −1 "
                     "condition gives c = (1+β₁)(2 − η·wd)/(1−β₁) (exact for P ∝ I)")
        wd = 0.0
    if ams:
        notes.append("amsgrad: P uses max_exp_avg_sq")
    return FrozenModel(family, float(opt.lr), p, "ema", b1, 0.0, coefficient, wd, t,
                       tuple(notes) + tuple(opt.notes))


def _adagrad(opt, space, dtype) -> FrozenModel:
    t = _step(opt)
    lr_decay = float(opt.hyper.get("lr_decay", 0.0) or 0.0)
    lr = float(opt.lr) / (1 + (t - 1) * lr_decay)
    notes = (f"lr_decay: η_t = {lr:g}",) if lr_decay else ()
    return FrozenModel("adagrad", lr, _shared_p(opt, space, dtype), "none", 0.0, 0.0, 2.0, opt.weight_decay, t, notes)


def _rmsprop(opt, space, dtype) -> FrozenModel:
    centered = bool(opt.hyper.get("centered", False))
    p = _shared_p(opt, space, dtype)
    b = opt.momentum
    rec = "heavy_ball" if b > 0 else "none"
    notes = ("centred: P = √(v − ḡ²) + ε",) if centered else ()
    return FrozenModel("rmsprop", float(opt.lr), p, rec, b, 0.0, threshold_coefficient(rec, b),
                       opt.weight_decay, opt.step, notes)


def _adadelta(opt, space, dtype) -> FrozenModel:
    s = _flat(opt, space, "square_avg", dtype)
    a = _flat(opt, space, "acc_delta", dtype)
    eps = opt.eps
    p = (s + eps).sqrt() / (a + eps).sqrt()
    note = ("P uses the checkpoint's acc_delta (torch's next step would use it with an updated "
            "square_avg): exact up to O(1 − ρ) changes in one step",)
    return FrozenModel("adadelta", float(opt.lr), p, "none", 0.0, 0.0, 2.0, opt.weight_decay, opt.step, note)


def radam_rectification(t: int, beta2: float) -> Optional[float]:
    """RAdam's r_t (Liu et al. 2020) at step t, or None before the rectified phase (ρ_t ≤ 5)."""
    rho_inf = 2 / (1 - beta2) - 1
    rho_t = rho_inf - 2 * t * beta2 ** t / (1 - beta2 ** t)
    if rho_t <= 5.0:
        return None
    return math.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t))


def _radam(opt, space, dtype) -> FrozenModel:
    b1, b2 = opt.betas
    t = _step(opt)
    r = radam_rectification(t, b2)
    wd = opt.weight_decay
    notes = []
    if opt.hyper.get("decoupled_weight_decay"):
        notes.append(f"decoupled weight decay {wd:g} is outside P; not included in the threshold")
        wd = 0.0
    if r is None:
        p = torch.full((space.size,), 1 - b1 ** t, dtype=dtype)
        notes.append(f"step {t}: before the rectified phase (ρ_t ≤ 5): SGD with bias-corrected EMA momentum")
    else:
        v = _flat(opt, space, "exp_avg_sq", dtype)
        p = (1 - b1 ** t) * (v.sqrt() + opt.eps) / (r * math.sqrt(1 - b2 ** t))
        notes.append(f"rectified phase, r_t = {r:.6g}")
    return FrozenModel("radam", float(opt.lr), p, "ema", b1, 0.0, threshold_coefficient("ema", b1),
                       wd, t, tuple(notes))


def _adabound(opt, space, dtype) -> FrozenModel:
    t = _step(opt)
    parts = []
    for name in space.names:
        group = opt.groups[opt.group_of.get(name, 0)] if opt.groups else opt.hyper
        bufs = opt.buffers.get(name)
        if not bufs:
            raise LandscapeError(f"adabound state has no buffers for {name}")
        state = {k: v.to(dtype) for k, v in bufs.items() if k != "step"}
        group = dict(group, betas=tuple(float(b) for b in group["betas"]))
        parts.append((float(group["lr"]) / clipped_rate(group, state, step=t)).reshape(-1))
    p = torch.cat(parts)
    lo_hi = _adabound_bounds_note(opt.hyper, t)
    b1 = opt.betas[0]
    return FrozenModel(opt.type.lower(), float(opt.lr), p, "ema", b1, 0.0, threshold_coefficient("ema", b1),
                       opt.weight_decay, t, (lo_hi,))


def _adabound_bounds_note(group: dict, t: int) -> str:
    from .adabound import bounds

    lo, hi = bounds(dict(group), t)
    return f"step {t}: per-coordinate rate clipped to [{lo:.6g}, {hi:.6g}]"


_BUILDERS = {"sgd": _sgd, "adam": _adam, "adamw": _adam, "amsgrad": _adam, "adagrad": _adagrad,
             "rmsprop": _rmsprop, "adadelta": _adadelta, "radam": _radam, "adabound": _adabound,
             "amsbound": _adabound}


# --------------------------------------------------------------------------- helpers
def _flat(opt, space, key: str, dtype: torch.dtype) -> torch.Tensor:
    parts = []
    missing = []
    for name in space.names:
        buf: Dict[str, torch.Tensor] = opt.buffers.get(name, {})
        if key not in buf:
            missing.append(name)
            continue
        parts.append(buf[key].detach().to(dtype).reshape(-1))
    if missing:
        raise LandscapeError(f"{opt.type} state lacks {key!r} for {len(missing)} parameter(s), e.g. {missing[0]}")
    return torch.cat(parts)


def _step(opt) -> int:
    t = opt.step
    if t is None or t < 1:
        raise LandscapeError(f"the {opt.type} state records no step count; cannot form its preconditioner")
    return int(t)


def _need(grad: Optional[torch.Tensor], family: str) -> torch.Tensor:
    if grad is None:
        raise LandscapeError(f"{family}: the momentum term is the gradient itself; pass grad=")
    return grad
