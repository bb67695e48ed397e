"""Top Hessian eigenpairs and stability thresholds for the probes, through the Hessian engine.

The probes need λ_max of H (or of Adam's preconditioned P^{-1/2} H P^{-1/2}) at a parameter point
and the optimizer's stability threshold. Both come from :mod:`landscape.hessian` (Lanczos with
residual-based convergence; thresholds per optimizer, REFERENCES.md). Until that package is
importable, the eigenpair falls back to scipy's ARPACK ``eigsh`` (largest algebraic) on the
Objective's Hessian-vector products, with the residual ‖Hv − λv‖ reported either way, and the
thresholds to the table of REFERENCES.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from ..checkpoint import OptimizerState
from ..objective import Objective


@dataclass(frozen=True)
class TopEigen:
    """λ_max, its unit eigenvector, the residual ‖Hv − λv‖, convergence and the HVPs spent."""

    value: float
    vector: torch.Tensor
    residual: float
    converged: bool
    matvecs: int
    engine: str

    def to_json(self) -> dict:
        return {"value": self.value, "residual": self.residual, "converged": self.converged,
                "matvecs": self.matvecs, "engine": self.engine}


def top_eigen(objective: Objective, theta: Optional[torch.Tensor] = None, *,
              p_diag: Optional[torch.Tensor] = None, tol: float = 1e-3, seed: int = 0) -> TopEigen:
    """Largest-algebraic eigenpair of H(θ), or of P^{-1/2} H P^{-1/2} when ``p_diag`` is given."""
    theta = objective.theta0 if theta is None else theta
    try:
        from ..hessian.lanczos import eigsh
        from ..hessian.operator import HessianOperator, PreconditionedOperator
    except ImportError:
        return _scipy_top(objective, theta, p_diag, tol, seed)
    op = HessianOperator(objective, theta)
    if p_diag is not None:
        op = PreconditionedOperator(op, p_diag)
    res = eigsh(op, k=1, which="LA", tol=tol, seed=seed)
    return TopEigen(float(res.eigenvalues[0]), res.eigenvectors[0], float(res.residuals[0]),
                    bool(res.converged), int(res.matvecs), "landscape.hessian")


def _scipy_top(objective: Objective, theta: torch.Tensor, p_diag: Optional[torch.Tensor],
               tol: float, seed: int) -> TopEigen:
    from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigsh

    scale = None if p_diag is None else p_diag.to(objective.theta0).rsqrt()
    count = [0]

    def mv(v: np.ndarray) -> np.ndarray:
        t = torch.as_tensor(np.asarray(v).reshape(-1), dtype=objective.dtype, device=objective.device)
        if scale is not None:
            t = t * scale
        out = objective.hvp(t, theta)
        if scale is not None:
            out = out * scale
        count[0] += 1
        return out.double().cpu().numpy()

    d = objective.dim
    rng = np.random.default_rng(seed)
    op = LinearOperator((d, d), matvec=mv, dtype=np.float64)
    try:
        vals, vecs = eigsh(op, k=1, which="LA", tol=tol, v0=rng.standard_normal(d), maxiter=max(200, 10))
        converged = True
    except ArpackNoConvergence as exc:  # keep the best estimate, flagged
        vals, vecs = exc.eigenvalues, exc.eigenvectors
        converged = False
        if len(vals) == 0:
            return TopEigen(float("nan"), torch.zeros(d), float("nan"), False, count[0], "scipy-arpack")
    v = vecs[:, 0] / np.linalg.norm(vecs[:, 0])
    hv = mv(v)
    residual = float(np.linalg.norm(hv - vals[0] * v))
    vec = torch.as_tensor(v, dtype=objective.dtype, device=objective.device)
    return TopEigen(float(vals[0]), vec, residual, converged, count[0], "scipy-arpack")


def stability_threshold(opt: Optional[OptimizerState], *, optimizer: Optional[str] = None,
                        lr: float, momentum: Optional[float] = None) -> dict:
    """The curvature above which the optimizer diverges on a quadratic (REFERENCES.md table).

    Returns ``{"optimizer", "threshold", "on"}`` where ``on`` says which sharpness it applies to
    (``"H"`` or ``"P^-1 H"``, Adam's preconditioned Hessian, threshold (2+2β₁)/((1−β₁)η)).
    """
    kind = (opt.type if opt is not None else optimizer or "sgd").lower()
    if kind in ("adam", "adamw", "amsgrad", "nadam", "adamax", "radam"):
        b1 = (opt.betas[0] if opt is not None and opt.betas else 0.9)
        return {"optimizer": kind, "threshold": (2 + 2 * b1) / ((1 - b1) * lr), "on": "P^-1 H"}
    beta = momentum if momentum is not None else (opt.momentum if opt is not None else 0.0)
    damp = opt.dampening if opt is not None else 0.0
    nesterov = opt.nesterov if opt is not None else False
    if nesterov and beta > 0:
        thr = (2 + 2 * beta) / ((1 + 2 * beta) * lr)
    else:  # heavy ball with dampening d: effective lr (1 − d)η; plain SGD when β = 0
        thr = (2 + 2 * beta) / ((1 - damp) * lr) if beta > 0 else 2.0 / lr
    return {"optimizer": kind, "threshold": thr, "on": "H"}


ADAM_FAMILY = ("adam", "adamw", "amsgrad")


def adam_preconditioner(opt: Optional[OptimizerState], space, *, like: torch.Tensor) -> Optional[torch.Tensor]:  # noqa: ANN001
    """Adam's P = (1 − β₁ᵗ)·(√(v/(1 − β₂ᵗ)) + ε) as a flat vector (REFERENCES.md), or None when the
    state is not Adam's or lacks ``exp_avg_sq``. Uses the Hessian engine's
    ``preconditioner_diag`` when it is importable (amsgrad: ``max_exp_avg_sq``)."""
    if opt is None or opt.type not in ADAM_FAMILY:
        return None
    try:
        from ..hessian.preconditioner import preconditioner_diag
    except ImportError:
        preconditioner_diag = None
    if preconditioner_diag is not None:
        p = preconditioner_diag(opt, space)
        return None if p is None else p.to(like)
    t = opt.step
    b1, b2 = opt.betas or (0.9, 0.999)
    eps = opt.eps if opt.eps is not None else 1e-8
    key = "max_exp_avg_sq" if opt.amsgrad else "exp_avg_sq"
    parts = []
    for name in space.names:
        buf = opt.buffers.get(name, {}).get(key)
        if buf is None or not t:
            return None
        parts.append(buf.reshape(-1).to(like))
    v = torch.cat(parts)
    return (1 - b1 ** t) * ((v / (1 - b2 ** t)).sqrt() + eps)
