"""Top Hessian eigenpairs and stability verdicts for the probes, through the Hessian engine.

Thin glue over :mod:`landscape.hessian`: λ_max of H (or of an adaptive optimizer's
P^{-1/2} H P^{-1/2}) by Lanczos with residual-based convergence, and the optimizer's stability
threshold (REFERENCES.md table) via :func:`landscape.hessian.stability.stability`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from ..checkpoint import OptimizerState
from ..errors import LandscapeError
from ..hessian.lanczos import eigsh
from ..hessian.operator import HessianOperator, PreconditionedOperator
from ..hessian.preconditioner import is_adaptive, preconditioner_diag
from ..hessian.stability import Stability, stability
from ..objective import Objective
from ..params import ParamSpace

__all__ = ["TopEigen", "top_eigen", "preconditioner", "stability", "Stability", "is_adaptive", "synthetic_state"]


@dataclass(frozen=True)
class TopEigen:
    """λ_max, its unit eigenvector, the residual ‖Hv − λv‖, convergence and the HVPs spent."""

    value: float
    vector: torch.Tensor
    residual: float
    converged: bool
    matvecs: int

    def to_json(self) -> dict:
        return {"value": self.value, "residual": self.residual, "converged": self.converged,
                "matvecs": self.matvecs}


def top_eigen(objective: Objective, theta: Optional[torch.Tensor] = None, *,
              p_diag: Optional[torch.Tensor] = None, tol: float = 1e-3, seed: int = 0) -> TopEigen:
    """Largest-algebraic eigenpair of H(θ), or of P^{-1/2} H P^{-1/2} when ``p_diag`` is given."""
    op = HessianOperator(objective, objective.theta0 if theta is None else theta)
    if p_diag is not None:
        op = PreconditionedOperator(op, p_diag)
    res = eigsh(op, k=1, which="LA", tol=tol, seed=seed)
    return TopEigen(float(res.eigenvalues[0]), res.eigenvectors[0], float(res.residuals[0]),
                    bool(res.converged), int(res.matvecs))


def preconditioner(opt: Optional[OptimizerState], space: ParamSpace) -> Optional[torch.Tensor]:
    """The adaptive optimizer's diagonal P from its state, or None (SGD, or no buffers yet, as in
    a checkpoint saved before the first step)."""
    if not is_adaptive(opt):
        return None
    try:
        return preconditioner_diag(opt, space)
    except LandscapeError:
        return None


def synthetic_state(kind: str, *, lr: float, momentum: float = 0.0, betas=(0.9, 0.999),  # noqa: ANN001
                    eps: float = 1e-8) -> OptimizerState:
    """Hyper-parameters only (no buffers), to ask the engine for a threshold."""
    hyper = {"lr": lr, "momentum": momentum, "dampening": 0.0, "nesterov": False} if kind == "sgd" else \
        {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": 0.0, "amsgrad": False}
    return OptimizerState(kind, hyper, {})
