"""Power iteration with deflation: the reference method (what PyHessian and most papers use).

Kept as a cross-check for :func:`~landscape.hessian.lanczos.eigsh`. It converges on the residual
‖Hv − λv‖ ≤ tol·|λ₁| (not on the change of λ between two iterations, which stops early when the
gap is small), deflates found vectors by orthogonalisation, and finds the largest *magnitude*
eigenvalues: with a dominant negative eigenvalue it returns that one first (the 'LM' trap).
Pass ``shift=σ`` to iterate on H − σI instead (σ below the spectrum turns 'LM' into 'LA').
"""

from __future__ import annotations

from typing import Optional

import torch

from .lanczos import EigenResult
from .operator import LinearOperator


def power_iteration(op: LinearOperator, *, k: int = 1, tol: float = 1e-4, seed: int = 0,
                    max_iter: int = 1000, v0: Optional[torch.Tensor] = None,
                    shift: float = 0.0) -> EigenResult:
    """The ``k`` eigenpairs of largest |λ − shift|, one after the other (deflated).

    ``max_iter`` bounds the products per eigenpair. ``converged`` is true when every pair met
    ``‖Hv − λv‖ ≤ tol · |λ₁|``.
    """
    d = int(op.dim)
    if not 1 <= k <= d:
        raise ValueError(f"k must be between 1 and the dimension {d}")
    gen = torch.Generator().manual_seed(int(seed))
    found = torch.zeros(0, d, dtype=op.dtype, device=op.device)
    values, residuals = [], []
    used, ok, scale = 0, True, 0.0
    for i in range(k):
        if v0 is not None and v0.reshape(-1, d).shape[0] > i:
            v = v0.reshape(-1, d)[i].detach().to(dtype=op.dtype, device=op.device).clone()
        else:
            v = torch.randn(d, generator=gen, dtype=torch.float64).to(dtype=op.dtype, device=op.device)
        v = _deflate(v, found)
        v = v / v.norm()
        lam, res, converged = 0.0, float("inf"), False
        for _ in range(max_iter):
            hv = op.matvec(v) - shift * v
            used += 1
            hv = _deflate(hv, found)
            lam_s = float(v @ hv)
            lam = lam_s + shift
            res = float((hv - lam_s * v).norm())
            scale = max(scale, abs(lam))
            if res <= tol * max(scale, 1e-30):
                converged = True
                break
            nv = hv.norm()
            if float(nv) == 0.0:
                converged = True
                break
            v = hv / nv
        ok = ok and converged
        values.append(lam)
        residuals.append(res)
        found = torch.cat([found, v[None]])
    return EigenResult(tuple(values), found, tuple(residuals), ok, used, "LM", float(tol), "power")


def _deflate(v: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    """v with its components along the (orthonormal) rows of ``basis`` removed (twice)."""
    for _ in range(2):
        if len(basis):
            v = v - (basis @ v) @ basis
    return v
