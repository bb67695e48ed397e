"""Stochastic trace estimates of a symmetric operator, with their standard errors.

- Hutchinson (1989): tr(H) = E[zᵀHz] for Rademacher z; the estimate is the mean of ``m`` samples
  and its standard error the sample standard deviation / √m.
- Hutch++ (Meyer, Musco, Musco & Woodruff 2021, "Hutch++: Optimal Stochastic Trace Estimation"):
  a third of the products sketch the range of H (Q = orth(H S)), a third give tr(QᵀHQ) exactly,
  and the last third run Hutchinson on the deflated (I − QQᵀ) H (I − QQᵀ). For a spectrum with a
  few large eigenvalues (as Hessians have) the error falls like 1/m instead of 1/√m. The standard
  error reported is that of the Hutchinson part given Q (the low-rank part has no sampling error).

A fixed number of products is used; there is no stopping rule that divides by the (possibly
negative) trace estimate.
"""

from __future__ import annotations

import math

import torch

from ..results import result
from .operator import LinearOperator


@result()
class TraceResult:
    """A trace estimate, its standard error and the number of operator products used."""

    trace: float
    stderr: float
    matvecs: int
    method: str = "hutch++"


def rademacher(n: int, d: int, *, generator: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    """``(n, d)`` random signs (drawn on the CPU for reproducibility across devices)."""
    z = torch.randint(0, 2, (n, d), generator=generator, dtype=torch.int8)
    return (z.to(dtype=like.dtype) * 2 - 1).to(device=like.device)


def _quadratic_forms(op: LinearOperator, Z: torch.Tensor, chunk: int) -> torch.Tensor:
    out = torch.empty(len(Z), dtype=torch.float64, device=Z.device)
    for a in range(0, len(Z), chunk):
        out[a:a + chunk] = (Z[a:a + chunk] * op.matmat(Z[a:a + chunk])).sum(dim=1).double()
    return out.cpu()


def hutchinson(op: LinearOperator, *, matvecs: int = 100, seed: int = 0, chunk: int = 8) -> TraceResult:
    """Hutchinson's estimate from ``matvecs`` Rademacher probes."""
    if matvecs < 2:
        raise ValueError("need at least 2 products for a standard error")
    like = torch.empty(0, dtype=op.dtype, device=op.device)
    gen = torch.Generator().manual_seed(int(seed))
    samples = _quadratic_forms(op, rademacher(matvecs, op.dim, generator=gen, like=like), chunk)
    return TraceResult(float(samples.mean()), float(samples.std(unbiased=True)) / math.sqrt(matvecs),
                       matvecs, "hutchinson")


def hutchpp(op: LinearOperator, *, matvecs: int = 99, seed: int = 0, chunk: int = 8) -> TraceResult:
    """Hutch++ with ``matvecs`` products split in thirds (sketch, exact part, residual part)."""
    if matvecs < 6:
        raise ValueError("Hutch++ needs at least 6 products")
    d = op.dim
    s = min(matvecs // 3, d)
    g = matvecs - 2 * s
    like = torch.empty(0, dtype=op.dtype, device=op.device)
    gen = torch.Generator().manual_seed(int(seed))
    S = rademacher(s, d, generator=gen, like=like)
    Y = torch.cat([op.matmat(S[a:a + chunk]) for a in range(0, s, chunk)])
    Q = torch.linalg.qr(Y.T.double()).Q.T.to(op.dtype)
    low = float(_quadratic_forms(op, Q, chunk).sum())
    G = rademacher(g, d, generator=gen, like=like)
    for _ in range(2):
        G = G - (G @ Q.T) @ Q
    samples = _quadratic_forms(op, G, chunk)
    return TraceResult(low + float(samples.mean()),
                       float(samples.std(unbiased=True)) / math.sqrt(g), 2 * s + g, "hutch++")
