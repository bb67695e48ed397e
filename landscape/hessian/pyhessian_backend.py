"""Cross-check backend: the same quantities computed by PyPI ``pyhessian`` 0.1 (Yao et al. 2020).

PyHessian runs on a private copy of the Objective's model (never the caller's), over the
Objective's own batches, with the batch-mean loss as its criterion; its full-data products
weight each batch by its size, so the objective is the same exact mean. Its methods are used as
shipped (defaults: power iteration with deflation, stopping when λ changes by < tol = 1e-3
relative; Hutchinson trace with the same rule; SLQ density). The true residuals ‖Hv − λv‖ of
its eigenvectors are computed afterwards with landscape's products (and counted separately).

Compatibility: pyhessian 0.1's ``density()`` calls ``torch.eig``, which current torch removed; it
is given a stand-in for the duration of that call (T is symmetric tridiagonal, so
``torch.linalg.eigh`` returns the same eigenpairs). BatchNorm must be in eval mode
(pyhessian sets ``model.eval()``), so ``--bn-mode train`` is refused.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
import warnings
from typing import Any, Dict, Iterator, List, Optional, Tuple

import torch

from ..checkpoint import OptimizerState
from ..errors import LandscapeError
from ..objective import Objective
from .lanczos import EigenResult
from .operator import HessianOperator

_DEFAULT_TOL = 1e-3
_DEFAULT_ITERS = 100


def _load() -> Any:
    try:
        from pyhessian import hessian
    except ImportError:
        raise LandscapeError("--backend pyhessian needs the pyhessian package (pip install pyhessian)") from None
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
            raise LandscapeError("--backend pyhessian supports only --bn-mode eval")
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


def analyze_with_pyhessian(objective: Objective, optimizer: Optional[OptimizerState], config: Any, *,
                           theta: Optional[torch.Tensor] = None,
                           provenance: Optional[Dict[str, Any]] = None) -> Any:
    """``landscape hessian --backend pyhessian``: top-k, trace and density from pyhessian, with the
    stability verdict computed by landscape from pyhessian's λ_max (adaptive optimizers: the
    preconditioned λ_max needs landscape's operator and is not computed here)."""
    from .analyze import HessianReport
    from .density import DensityResult, _broaden
    from .stability import stability
    from .trace import TraceResult

    unsupported = [n for n, on in (("--smallest", config.smallest), ("--per-layer", config.per_layer),
                                   ("--preconditioned", config.preconditioned)) if on]
    if unsupported:
        raise LandscapeError(f"--backend pyhessian does not provide {', '.join(unsupported)}")
    t0 = time.perf_counter()
    top = pyhessian_top(objective, k=config.top_k, seed=config.seed, theta=theta)
    hvps = top.matvecs
    trace = None
    if config.trace:
        tr, err, n = pyhessian_trace(objective, seed=config.seed, theta=theta)
        trace = TraceResult(tr, err, n, "pyhessian-hutchinson")
        hvps += n
    density = None
    if config.density:
        nodes, weights, n = pyhessian_density(objective, steps=config.density_steps,
                                              runs=config.density_runs, seed=config.seed, theta=theta)
        hvps += n
        th = [torch.tensor(x, dtype=torch.float64) for x in nodes]
        tw = [torch.tensor(w, dtype=torch.float64) for w in weights]
        lo, hi = min(float(t.min()) for t in th), max(float(t.max()) for t in th)
        sigma = 0.01 * max(hi - lo, 1e-12)
        grid = torch.linspace(lo - 5 * sigma, hi + 5 * sigma, 512, dtype=torch.float64)
        vals = torch.stack([_broaden(grid, t, w, sigma) for t, w in zip(th, tw)]).mean(0)
        traces = [objective.dim * float((t * w).sum()) for t, w in zip(th, tw)]
        nan = float("nan")
        density = DensityResult(tuple(grid.tolist()), tuple(vals.tolist()), tuple(nan for _ in grid),
                                sigma, tuple(tuple(t.tolist()) for t in th), tuple(tuple(w.tolist()) for w in tw),
                                sum(traces) / len(traces), nan, config.density_steps, config.density_runs, n)
    notes = ["pyhessian backend: power iteration (largest |λ|, stops when λ changes by < 1e-3); "
             "residuals computed afterwards with landscape's products (not counted in hvps)"]
    stab = stability(optimizer, lr=config.lr, lambda_max=top.eigenvalues[0])
    return HessianReport(top.eigenvalues, top.residuals, top.converged, stab, hvps,
                         time.perf_counter() - t0, config, top.eigenvectors, None, trace, density, None,
                         None, objective.dim, objective.n, tuple(notes), dict(provenance or {}))
