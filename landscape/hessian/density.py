"""Spectral density by stochastic Lanczos quadrature (SLQ).

Ghorbani, Krishnan & Xiao 2019 ("An Investigation into Neural Net Optimization via Hessian
Eigenvalue Density"); Papyan 2020; Lin, Saad & Yang 2016 (review). For a random unit vector v,
``m`` Lanczos steps from v give a tridiagonal T whose eigenvalues θ_j (nodes) and squared first
eigenvector components τ_j (weights) form a Gauss quadrature for the spectral measure of H
seen from v; averaged over ``runs`` vectors it estimates the eigenvalue density

    φ(t) = (1/d) Σ_i δ(t − λ_i) ≈ (1/runs) Σ_runs Σ_j τ_j · N(t; θ_j, σ²),

smoothed here with a Gaussian of width σ and returned on a grid. The same nodes give a trace
estimate d·Σ_j τ_j θ_j per run; its spread over runs is reported as a standard error, and the
density's pointwise standard error over runs is returned with it (runs ≥ 2).
The Lanczos steps use full reorthogonalisation (the plain three-term recurrence produces ghost
copies of the extreme eigenvalues, e.g. as in PyPI pyhessian 0.1).
"""

from __future__ import annotations

import math
from typing import Optional, Tuple

import torch

from ..results import result
from .operator import LinearOperator
from .trace import rademacher


@result()
class DensityResult:
    """A smoothed spectral density on a grid, with the quadrature it came from."""

    grid: Tuple[float, ...]
    values: Tuple[float, ...]
    stderr: Tuple[float, ...]
    sigma: float
    nodes: Tuple[Tuple[float, ...], ...]
    weights: Tuple[Tuple[float, ...], ...]
    trace: float
    trace_stderr: float
    steps: int
    runs: int
    matvecs: int


def lanczos_tridiagonal(op: LinearOperator, v: torch.Tensor, steps: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """``steps`` Lanczos steps with full reorthogonalisation from ``v``: (alphas, betas) in float64.

    Stops early when the Krylov space becomes invariant (β ≈ 0)."""
    d = op.dim
    steps = min(steps, d)
    Q = torch.zeros(steps, d, dtype=op.dtype, device=op.device)
    alphas = torch.zeros(steps, dtype=torch.float64)
    betas = torch.zeros(max(steps - 1, 0), dtype=torch.float64)
    q = v / v.norm()
    n = steps
    for j in range(steps):
        Q[j] = q
        w = op.matvec(q)
        a = w @ q
        for _ in range(2):
            w = w - (Q[:j + 1] @ w) @ Q[:j + 1]
        alphas[j] = float(a)
        if j == steps - 1:
            break
        b = w.norm()
        bf = float(b)
        if bf <= 1e-10 * max(float(alphas[:j + 1].abs().max()), 1e-30):
            n = j + 1
            break
        betas[j] = bf
        q = w / b
    return alphas[:n], betas[:n - 1]


def slq(op: LinearOperator, *, steps: int = 64, runs: int = 2, seed: int = 0,
        sigma: Optional[float] = None, grid_points: int = 512,
        grid: Optional[Tuple[float, float]] = None) -> DensityResult:
    """SLQ density of ``op`` (see module docstring).

    Args:
        steps: Lanczos steps per run (products per run).
        runs: random start vectors (Rademacher, normalised).
        sigma: Gaussian broadening width (default 1% of the node range).
        grid_points, grid: the grid (default: node range padded by 5σ).
    """
    if steps < 2 or runs < 1:
        raise ValueError("need steps >= 2 and runs >= 1")
    gen = torch.Generator().manual_seed(int(seed))
    like = torch.empty(0, dtype=op.dtype, device=op.device)
    nodes, weights, traces = [], [], []
    used0 = op.hvps
    for _ in range(runs):
        v = rademacher(1, op.dim, generator=gen, like=like)[0]
        a, b = lanczos_tridiagonal(op, v, steps)
        T = torch.diag(a) + torch.diag(b, 1) + torch.diag(b, -1)
        theta, S = torch.linalg.eigh(T)
        tau = S[0] ** 2
        nodes.append(theta)
        weights.append(tau)
        traces.append(float(op.dim * (tau * theta).sum()))
    lo = min(float(t.min()) for t in nodes)
    hi = max(float(t.max()) for t in nodes)
    width = sigma if sigma is not None else 0.01 * max(hi - lo, 1e-12)
    a0, b0 = grid if grid is not None else (lo - 5 * width, hi + 5 * width)
    ts = torch.linspace(a0, b0, grid_points, dtype=torch.float64)
    per_run = torch.stack([_broaden(ts, t, w, width) for t, w in zip(nodes, weights)])
    values = per_run.mean(0)
    err = per_run.std(0, unbiased=True) / math.sqrt(runs) if runs > 1 else torch.full_like(values, float("nan"))
    tr = torch.tensor(traces, dtype=torch.float64)
    tr_err = float(tr.std(unbiased=True)) / math.sqrt(runs) if runs > 1 else float("nan")
    return DensityResult(tuple(ts.tolist()), tuple(values.tolist()), tuple(err.tolist()), float(width),
                         tuple(tuple(t.tolist()) for t in nodes), tuple(tuple(w.tolist()) for w in weights),
                         float(tr.mean()), tr_err, int(steps), int(runs), op.hvps - used0)


def _broaden(ts: torch.Tensor, theta: torch.Tensor, tau: torch.Tensor, sigma: float) -> torch.Tensor:
    z = (ts[:, None] - theta[None, :]) / sigma
    return (tau[None, :] * torch.exp(-0.5 * z * z)).sum(1) / (sigma * math.sqrt(2 * math.pi))
