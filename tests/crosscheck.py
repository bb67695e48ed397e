"""Cross-library references for the Hessian engine: power iteration (what PyHessian and most papers
use), scipy's ARPACK and PyPI ``pyhessian`` 0.1 (Yao et al. 2020), run on landscape's operators and
Objectives. They live with the tests (and the benchmarks import them from here) because landscape
itself never uses them: they check its Lanczos, trace and density against independent code.

Power iteration converges on the residual ‖Hv − λv‖ ≤ tol·|λ₁| (not on the change of λ, which stops
early when the gap is small), deflates found vectors, and finds the largest *magnitude* eigenvalues
(with a dominant negative eigenvalue it returns that one first: the 'LM' trap); ``shift=σ`` iterates
on H − σI instead. ARPACK's own test is ‖r‖ ≤ tol·|θ| per Ritz value; the residuals reported here
are the true ‖Hv − λv‖. PyHessian runs on a private copy of the Objective's model over the
Objective's own batches with the batch-mean loss (so the objective is the same exact mean), with its
methods as shipped (power iteration with deflation, stopping when λ changes by < 1e-3; Hutchinson;
SLQ). pyhessian 0.1's ``density()`` calls ``torch.eig``, removed from torch: it gets a stand-in
(``torch.linalg.eigh`` of the symmetric tridiagonal T) for the duration of that call, and the
default dtype is switched to the Objective's while it draws its vectors.
"""

from __future__ import annotations

import contextlib
import copy
import math
import warnings
from typing import Any, Iterator, List, Optional, Tuple

import numpy as np
import torch
from scipy.sparse.linalg import LinearOperator as SciOp
from scipy.sparse.linalg import eigsh as sci_eigsh

from landscape.hessian.lanczos import EigenResult
from landscape.hessian.operator import HessianOperator, LinearOperator
from landscape.objective import Objective


# ============================================================================ power iteration
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


# ============================================================================ ARPACK
def arpack_eigsh(op: LinearOperator, *, k: int = 1, which: str = "LA", tol: float = 1e-4,
                 seed: int = 0, v0: Optional[torch.Tensor] = None,
                 max_iter: Optional[int] = None) -> EigenResult:
    """The same problem through scipy's ARPACK (implicitly restarted Lanczos), for comparison.

    ARPACK's own test is ‖r‖ ≤ tol·|θ| per Ritz value; the residuals reported here are the true
    ‖Hv − λv‖, which costs ``k`` extra products (counted in ``matvecs``).
    """
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


# ============================================================================ pyhessian 0.1
_DEFAULT_TOL = 1e-3
_DEFAULT_ITERS = 100


def _load() -> Any:
    try:
        from pyhessian import hessian
    except ImportError:
        raise ImportError("the cross-checks need the pyhessian package (pip install pyhessian)") from None
    return hessian


class _Criterion:
    """Batch-mean loss from the Objective's per-batch sum loss."""

    def __init__(self, objective: Objective) -> None:
        self.sum_loss = objective._sum_loss

    def __call__(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.sum_loss(out, y) / out.shape[0]


class PyHessianRunner:
    """A pyhessian ``hessian`` object over an Objective at ``theta``, counting its products."""

    def __init__(self, objective: Objective, theta: Optional[torch.Tensor] = None) -> None:
        if objective.bn_mode != "eval":
            raise ValueError("pyhessian evaluates BatchNorm in eval mode only")
        hessian = _load()
        self.objective = objective
        model = copy.deepcopy(objective.model)
        theta = objective.theta0 if theta is None else theta
        named = dict(model.named_parameters())
        with torch.no_grad():
            for name, value in objective.space.unflatten(theta.detach()).items():
                named[name].copy_(value)
                named[name].requires_grad_(True)
        self.model = model
        batches = [(xb, yb) for xb, yb in objective.batches()]
        self.hvps = 0
        self.h = hessian(model, _Criterion(objective), dataloader=batches,
                         cuda=objective.device.type == "cuda")
        original = self.h.dataloader_hv_product

        def counted(v: List[torch.Tensor]) -> Tuple[float, List[torch.Tensor]]:
            self.hvps += 1
            with warnings.catch_warnings():   # pyhessian's backward(create_graph=True): we clear .grad
                warnings.filterwarnings("ignore", message="Using backward\\(\\) with create_graph=True")
                out = original(v)
            for p in model.parameters():      # break the parameter <-> graph reference cycle
                p.grad = None
            return out

        self.h.dataloader_hv_product = counted

    def flat(self, vs: List[torch.Tensor]) -> torch.Tensor:
        return torch.cat([v.reshape(-1) for v in vs]).to(self.objective.dtype)


@contextlib.contextmanager
def _default_dtype(dtype: torch.dtype) -> Iterator[None]:
    """pyhessian draws its vectors with the default dtype; match the Objective's."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


@contextlib.contextmanager
def _torch_eig_shim() -> Iterator[None]:
    """Provide the removed ``torch.eig(T, eigenvectors=True)`` for symmetric T during one call."""
    had = hasattr(torch, "eig")
    old = getattr(torch, "eig", None)

    def eig(T: torch.Tensor, eigenvectors: bool = False) -> Tuple[torch.Tensor, torch.Tensor]:
        w, V = torch.linalg.eigh(0.5 * (T + T.T))
        return torch.stack([w, torch.zeros_like(w)], dim=1), V

    torch.eig = eig  # type: ignore[attr-defined]
    try:
        yield
    finally:
        if had:
            torch.eig = old  # type: ignore[attr-defined]
        else:
            del torch.eig  # type: ignore[attr-defined]


def pyhessian_top(objective: Objective, *, k: int = 1, tol: float = _DEFAULT_TOL,
                  max_iter: int = _DEFAULT_ITERS, seed: int = 0,
                  theta: Optional[torch.Tensor] = None, residuals: bool = True) -> EigenResult:
    """pyhessian's top-k eigenvalues (power iteration) with true residuals computed afterwards.

    ``matvecs`` counts pyhessian's own products only; the ``k`` residual products are extra."""
    run = PyHessianRunner(objective, theta)
    with torch.random.fork_rng(devices=[]), _default_dtype(objective.dtype):
        torch.manual_seed(int(seed))
        vals, vecs = run.h.eigenvalues(maxIter=max_iter, tol=tol, top_n=k)
    V = torch.stack([run.flat(v) for v in vecs])
    V = V / V.norm(dim=1, keepdim=True)
    res: Tuple[float, ...] = tuple(float("nan") for _ in vals)
    if residuals:
        op = HessianOperator(objective, theta)
        HV = op.matmat(V)
        lam = torch.tensor(vals, dtype=V.dtype, device=V.device)
        res = tuple(float(r) for r in (HV - lam[:, None] * V).norm(dim=1).tolist())
    scale = max(abs(v) for v in vals) or 1.0
    converged = all(r <= 1e-4 * scale for r in res) if residuals else False
    return EigenResult(tuple(float(v) for v in vals), V, res, bool(converged), run.hvps, "LM", float(tol),
                       "pyhessian-power")


def pyhessian_trace(objective: Objective, *, tol: float = _DEFAULT_TOL, max_iter: int = _DEFAULT_ITERS,
                    seed: int = 0, theta: Optional[torch.Tensor] = None) -> Tuple[float, float, int]:
    """pyhessian's Hutchinson trace: (mean, standard error of its samples, products)."""
    run = PyHessianRunner(objective, theta)
    with torch.random.fork_rng(devices=[]), _default_dtype(objective.dtype):
        torch.manual_seed(int(seed))
        samples = run.h.trace(maxIter=max_iter, tol=tol)
    t = torch.tensor(samples, dtype=torch.float64)
    err = float(t.std(unbiased=True)) / math.sqrt(len(t)) if len(t) > 1 else float("nan")
    return float(t.mean()), err, run.hvps


def pyhessian_density(objective: Objective, *, steps: int = 64, runs: int = 1, seed: int = 0,
                      theta: Optional[torch.Tensor] = None) -> Tuple[list, list, int]:
    """pyhessian's SLQ nodes and weights (``density(iter=steps, n_v=runs)``)."""
    run = PyHessianRunner(objective, theta)
    with torch.random.fork_rng(devices=[]), _torch_eig_shim(), _default_dtype(objective.dtype):
        torch.manual_seed(int(seed))
        nodes, weights = run.h.density(iter=steps, n_v=runs)
    return nodes, weights, run.hvps
