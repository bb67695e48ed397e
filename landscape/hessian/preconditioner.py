"""Adaptive optimizers' diagonal preconditioners P and weight decay, as the Hessian engine uses them.

For the edge-of-stability analysis of adaptive methods (Cohen et al. 2022) P is frozen at the
checkpoint and the relevant curvature is λ₁(P⁻¹H) = λ₁(P^{-1/2} H P^{-1/2}); coupled L2 weight
decay turns H into H + wd·I. The formulas are defined once, per family, in
:mod:`landscape.optim.families` (see its docstring); this module names what the engine reads.
"""

from __future__ import annotations

from ..optim.families import (
    ADAPTIVE,
    coupled_weight_decay,
    decoupled_weight_decay,
    is_adaptive,
    preconditioner_diag,
)

__all__ = ["ADAPTIVE", "coupled_weight_decay", "decoupled_weight_decay", "is_adaptive", "preconditioner_diag"]
