"""Each optimizer family as a frozen-preconditioner linear recursion θ ← θ − η P⁻¹ u.

The formulas (P, the momentum term u, the recursion and its threshold c/η on λ₁(P⁻¹H)) are the
family records of :mod:`landscape.optim.families`; this module assembles them, for one saved
state, into a :class:`FrozenModel` and gives the momentum term u_t that, with P, reproduces the
step that produced the state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import torch

from ..errors import LandscapeError
from .families import (
    RECURSIONS,
    describe,
    family,
    has_decoupled_decay,
    preconditioner_diag,
    radam_rectification,
    threshold,
    threshold_coefficient,
)

__all__ = ["FrozenModel", "RECURSIONS", "frozen_model", "momentum_term", "radam_rectification",
           "threshold_coefficient"]


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


def frozen_model(opt, space, *, dtype: torch.dtype = torch.float64) -> FrozenModel:  # noqa: ANN001
    """The frozen-preconditioner model of an :class:`~landscape.checkpoint.OptimizerState`."""
    fam = family(opt.type)
    if not fam.supported:
        raise LandscapeError(f"no preconditioner model for optimizer family {fam.name!r}")
    if not opt.buffers and fam.name != "sgd":
        raise LandscapeError(f"the {fam.name} state has no per-parameter buffers (saved before the first step?)")
    thr = threshold(opt, float(opt.lr))
    dyn = fam.dynamics(opt.hyper)
    wd = 0.0 if has_decoupled_decay(opt) else opt.weight_decay
    notes = thr.notes + describe(opt) + tuple(opt.notes)
    return FrozenModel(fam.name, thr.lr, preconditioner_diag(opt, space, dtype=dtype), dyn.recursion,
                       dyn.momentum, dyn.dampening if dyn.recursion == "heavy_ball" else 0.0,
                       thr.coefficient, wd, opt.step, notes)


def momentum_term(model: FrozenModel, opt, space, *, grad: Optional[torch.Tensor] = None,  # noqa: ANN001
                  dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """u_t of the model (flat) from the state; ``grad`` (g_t) where the state does not hold it.

    With it, the step that produced the state is θ_t − θ_{t−1} = −η P⁻¹ u_t.
    """
    key = family(model.family).momentum_key
    if key is None or (key == "momentum_buffer" and model.momentum == 0):
        return _need(grad, model.family).to(dtype)
    buf = _flat(opt, space, key, dtype)
    if model.recursion == "nesterov":
        return _need(grad, model.family).to(dtype) + model.momentum * buf
    if model.p_diag is not None and key == "momentum_buffer":   # RMSprop keeps b = P⁻¹u
        return model.p_diag * buf
    return buf


def _flat(opt, space, key: str, dtype: torch.dtype) -> torch.Tensor:  # noqa: ANN001
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


def _need(grad: Optional[torch.Tensor], family_name: str) -> torch.Tensor:
    if grad is None:
        raise LandscapeError(f"{family_name}: the momentum term is the gradient itself; pass grad=")
    return grad
