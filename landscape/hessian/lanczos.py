"""Extreme eigenpairs of a symmetric operator: Lanczos with full reorthogonalisation.

The basis ``Q`` (orthonormal rows) and the products ``W = H Q`` are kept; every iteration solves
the small projected problem ``G = Q Wᵀ`` (Rayleigh–Ritz, in float64) and computes the *true*
residuals ``‖H y − θ y‖`` of the wanted Ritz pairs from ``W`` (no extra products). The run stops
when every wanted residual is at most ``tol · max|θ|`` (a relative residual; the eigenvalue error
is then at most ``tol·‖H‖`` by the Bauer–Fike / Weyl bound, and usually ~residual²/gap).

Expansion: from one start vector the next basis vector is the residual of a Ritz pair (all
residuals of a Krylov subspace are parallel, so this *is* the Lanczos vector q_{m+1}); it is
orthogonalised against the whole basis twice (classical Gram–Schmidt, "twice is enough"). With
a block warm start (``v0`` of several rows, e.g. the previous checkpoint's eigenvectors) the
expansion uses the residuals of the least-converged wanted pairs. When the basis is full it is
thick-restarted (Wu & Simon 2000; Stewart's Krylov–Schur): the wanted Ritz vectors and the next
ones in line are kept together with their products, so no product is recomputed.

``which="LA"`` gives the largest *algebraic* eigenvalues (descending); ``"SA"`` the smallest
(ascending). Largest-magnitude selection (power iteration, ARPACK's default 'LM') would return a
dominant negative eigenvalue as the "top" one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Tuple

import torch

from .operator import LinearOperator


@dataclass(frozen=True)
class EigenResult:
    """Eigenpairs of a symmetric operator with their residuals ‖Hv − λv‖ (``eigenvectors``: (k, d))."""

    eigenvalues: Tuple[float, ...]
    eigenvectors: torch.Tensor
    residuals: Tuple[float, ...]
    converged: bool
    matvecs: int
    which: str = "LA"
    tol: float = 0.0
    method: str = "lanczos"

    @property
    def relative_residuals(self) -> Tuple[float, ...]:
        scale = max((abs(x) for x in self.eigenvalues), default=0.0) or 1.0
        return tuple(r / scale for r in self.residuals)

    def to_json(self) -> dict:
        return {
            "eigenvalues": list(self.eigenvalues),
            "residuals": list(self.residuals),
            "converged": self.converged,
            "matvecs": self.matvecs,
            "which": self.which,
            "tol": self.tol,
            "method": self.method,
        }


Callback = Callable[[int, float], None]


def eigsh(op: LinearOperator, *, k: int = 1, which: str = "LA", tol: float = 1e-4, seed: int = 0,
          v0: Optional[torch.Tensor] = None, max_iter: Optional[int] = None,
          max_basis: Optional[int] = None, block: int = 1,
          callback: Optional[Callback] = None) -> EigenResult:
    """The ``k`` largest ('LA') or smallest ('SA') eigenpairs of the symmetric ``op``.

    Args:
        op: a symmetric operator with ``dim``, ``matvec``/``matmat``.
        k: number of eigenpairs.
        which: ``"LA"`` (largest algebraic, returned descending) or ``"SA"`` (smallest, ascending).
        tol: stop when every wanted ``‖Hy − θy‖ ≤ tol · max|θ|``.
        seed: seed of the random start vector(s).
        v0: warm start: one vector ``(d,)`` or several rows ``(j, d)`` (e.g. previous eigenvectors).
        max_iter: the most operator products (default ``max(100, 30k)``, at most about ``dim``).
        max_basis: basis size before a thick restart (default ``max(40, 2k + 20)``, at most ``dim``);
            memory is two ``(max_basis, dim)`` buffers.
        block: vectors added per iteration (products are batched through ``op.matmat``).
        callback: called as ``callback(matvecs, worst_relative_residual)`` after each iteration.
    """
    if which not in ("LA", "SA"):
        raise ValueError("which must be 'LA' or 'SA'")
    d = int(op.dim)
    if not 1 <= k <= d:
        raise ValueError(f"k must be between 1 and the dimension {d}")
    if tol <= 0:
        raise ValueError("tol must be positive")
    max_iter = int(max_iter if max_iter is not None else max(100, 30 * k))
    max_basis = min(d, int(max_basis if max_basis is not None else max(40, 2 * k + 20)))
    block = max(1, min(int(block), max_basis - k)) if max_basis > k else 1
    if max_basis < min(d, k + block):
        raise ValueError("max_basis must exceed k + block")
    dev, dt = op.device, op.dtype
    gen = torch.Generator().manual_seed(int(seed))

    Q = torch.zeros(max_basis, d, dtype=dt, device=dev)
    W = torch.zeros(max_basis, d, dtype=dt, device=dev)
    m = 0
    pending = _start_block(v0, d, block, gen, dt, dev)
    used = 0
    state = None
    while True:
        new = _orthonormalize(pending, Q[:m], gen)
        room = max_basis - m
        new = new[: min(room, max(1, max_iter - used))]
        W[m:m + len(new)] = op.matmat(new)
        Q[m:m + len(new)] = new
        m += len(new)
        used += len(new)
        state = _ritz(Q[:m], W[:m], k, which)
        theta, Y, HY, res, scale = state
        worst = float((res / scale).max()) if len(res) else float("inf")
        if callback is not None:
            callback(used, worst)
        done = len(res) == k and worst <= tol
        if done or used >= max_iter or m >= d:
            break
        order = torch.argsort(res, descending=True)[:block]
        pending = HY[order] - theta[order, None].to(Y) * Y[order]
        if m + len(pending) > max_basis:
            pending = _orthonormalize(pending, Q[:m], gen)
            m = _thick_restart(Q, W, m, k, which, keep_extra=max(1, (max_basis - k - block) // 2))
    theta, Y, HY, res, scale = state
    converged = bool(len(res) == k and float((res / scale).max()) <= tol) or (m >= d and len(res) == k)
    return EigenResult(tuple(float(t) for t in theta.tolist()), Y, tuple(float(r) for r in res.tolist()),
                       converged, used, which, float(tol), "lanczos")


def _start_block(v0: Optional[torch.Tensor], d: int, block: int, gen: torch.Generator,
                 dt: torch.dtype, dev: torch.device) -> torch.Tensor:
    if v0 is None:
        return torch.randn(block, d, generator=gen, dtype=torch.float64).to(dtype=dt, device=dev)
    v0 = v0.detach().to(dtype=dt, device=dev).reshape(-1, d)
    if not bool(torch.isfinite(v0).all()):
        raise ValueError("v0 holds non-finite values")
    return v0


def _orthonormalize(V: torch.Tensor, Q: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Rows of V made orthonormal to Q's rows and each other (CGS twice, then QR); rows that
    vanish (an invariant subspace was reached) are replaced by random directions."""
    d = V.shape[1]
    out = []
    for v in V:
        v = v.clone()
        base = torch.cat([Q, *[o[None] for o in out]]) if out else Q
        norm0 = float(v.norm())
        for _ in range(2):
            if len(base):
                v -= (base @ v) @ base
        nv = float(v.norm())
        tries = 0
        while (nv <= 1e-8 * max(norm0, 1e-30) or nv == 0.0) and tries < 3 and len(base) < d:
            v = torch.randn(d, generator=gen, dtype=torch.float64).to(V)
            norm0 = float(v.norm())
            for _ in range(2):
                if len(base):
                    v -= (base @ v) @ base
            nv = float(v.norm())
            tries += 1
        if nv == 0.0 or len(base) >= d:
            continue
        out.append(v / nv)
    if not out:
        return V[:0]
    return torch.stack(out)


def _ritz(Q: torch.Tensor, W: torch.Tensor, k: int,
          which: str) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """Wanted Ritz values, vectors, their products and true residual norms."""
    G = (Q @ W.T).double()
    G = 0.5 * (G + G.T)
    evals, evecs = torch.linalg.eigh(G)
    scale = float(evals.abs().max()) or 1.0
    n = min(k, len(evals))
    idx = torch.arange(len(evals) - 1, len(evals) - 1 - n, -1) if which == "LA" else torch.arange(n)
    theta = evals[idx]
    S = evecs[:, idx].to(Q.dtype)
    Y = S.T @ Q
    HY = S.T @ W
    res = (HY - theta.to(Q.dtype)[:, None] * Y).norm(dim=1).double().cpu()
    return theta.cpu(), Y, HY, res, scale


def _thick_restart(Q: torch.Tensor, W: torch.Tensor, m: int, k: int, which: str, *, keep_extra: int) -> int:
    """Compress the basis to the wanted Ritz vectors plus the next ``keep_extra`` in line."""
    G = (Q[:m] @ W[:m].T).double()
    evals, evecs = torch.linalg.eigh(0.5 * (G + G.T))
    keep = min(m - 1, k + keep_extra)
    idx = torch.arange(m - 1, m - 1 - keep, -1) if which == "LA" else torch.arange(keep)
    S = evecs[:, idx].to(Q.dtype)
    Q[:keep] = S.T @ Q[:m]
    W[:keep] = S.T @ W[:m]
    Q[keep:m] = 0
    W[keep:m] = 0
    return keep


def arpack_eigsh(op: LinearOperator, *, k: int = 1, which: str = "LA", tol: float = 1e-4,
                 seed: int = 0, v0: Optional[torch.Tensor] = None,
                 max_iter: Optional[int] = None) -> EigenResult:
    """The same problem through scipy's ARPACK (implicitly restarted Lanczos), for comparison.

    ARPACK's own test is ‖r‖ ≤ tol·|θ| per Ritz value; the residuals reported here are the true
    ‖Hv − λv‖, which costs ``k`` extra products (counted in ``matvecs``).
    """
    import numpy as np
    from scipy.sparse.linalg import LinearOperator as SciOp
    from scipy.sparse.linalg import eigsh as sci_eigsh

    d = int(op.dim)
    dev, dt = op.device, op.dtype
    start = op.hvps

    def mv(x: np.ndarray) -> np.ndarray:
        t = torch.as_tensor(np.ascontiguousarray(x).reshape(-1), dtype=dt, device=dev)
        return op.matvec(t).double().cpu().numpy()

    if v0 is None:
        gen = torch.Generator().manual_seed(int(seed))
        v0n = torch.randn(d, generator=gen, dtype=torch.float64).numpy()
    else:
        v0n = v0.detach().double().reshape(-1, d).sum(0).cpu().numpy()
    A = SciOp((d, d), matvec=mv, dtype=np.float64)
    vals, vecs = sci_eigsh(A, k=k, which=which, tol=tol, v0=v0n, maxiter=max_iter)
    order = np.argsort(-vals) if which == "LA" else np.argsort(vals)
    vals, vecs = vals[order], vecs[:, order]
    used = op.hvps - start
    V = torch.as_tensor(vecs.T.copy(), dtype=dt, device=dev)
    HV = op.matmat(V)
    res = (HV - torch.as_tensor(vals, dtype=dt, device=dev)[:, None] * V).norm(dim=1)
    scale = float(np.abs(vals).max()) or 1.0
    converged = bool(float(res.max()) <= tol * scale)
    return EigenResult(tuple(float(v) for v in vals), V, tuple(float(r) for r in res.tolist()),
                       converged, used + k, which, float(tol), "arpack")
