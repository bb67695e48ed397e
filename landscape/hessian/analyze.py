"""The Hessian analysis of one checkpoint: what ``landscape hessian`` computes, as a Python API.

:func:`analyze_hessian` runs, on one Objective and the checkpoint's optimizer state: the top-k
eigenvalues (Lanczos, 'LA'), optionally the smallest eigenvalue ('SA'), the trace (Hutch++), the
spectral density (SLQ), per-layer top eigenvalues, the preconditioned eigenvalues
λ(P^{-1/2}(H + wd)P^{-1/2}) for adaptive optimizers, and the stability verdict; it returns a
:class:`HessianReport` whose ``to_json()`` has the keys documented in the README.
"""

from __future__ import annotations

import math
import time
from dataclasses import field
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import torch

from ..checkpoint import OptimizerState
from ..errors import OptionError
from ..objective import Objective
from ..results import internal, result
from .batch_sharpness import BatchSharpness, batch_sharpness, batch_stability
from .density import DensityResult, slq
from .lanczos import Budget, EigenProgress, EigenResult, eigsh
from .operator import BlockOperator, HessianOperator, LinearOperator, PreconditionedOperator
from .preconditioner import coupled_weight_decay, is_adaptive, preconditioner_diag
from .stability import Stability
from .trace import TraceResult, hutchpp
from .verdict import CurvatureVerdict, curvature_verdict, describe_objective


def top_eigen(objective: Objective, *, k: int = 1, tol: float = 1e-4, seed: int = 0,
              v0: Optional[torch.Tensor] = None, theta: Optional[torch.Tensor] = None,
              which: str = "LA", method: str = "auto", max_iter: Optional[int] = None,
              converge: str = "values", budget: Optional[Budget] = None,
              first_pass_subset: Optional[int] = None) -> EigenResult:
    """Top-k ('LA') or bottom-k ('SA') eigenpairs of the Objective's Hessian at ``theta``
    (``converge``: stop on eigenvalue error bounds, or on eigenvector residuals: "vectors";
    ``budget``: products/deadline shared with other runs; ``first_pass_subset``: start from the
    Ritz vectors of a cheap pass on the first N samples, :func:`first_pass`, unless ``v0`` is given)."""
    if first_pass_subset is not None and v0 is None:
        fp = first_pass(objective, subset=first_pass_subset, k=k, which=which, seed=seed, theta=theta,
                        method=method, budget=budget)
        v0 = fp.start if fp is not None else None
    op = HessianOperator(objective, theta, method=method)
    return eigsh(op, k=k, which=which, tol=tol, seed=seed, v0=v0, max_iter=max_iter, converge=converge,
                 budget=budget)


FIRST_PASS_TOL = 1e-2


@result()
class FirstPass:
    """The cheap first pass of ``--first-pass-subset``: top-k of the Hessian of the first
    ``samples`` of the ``n`` evaluation samples, whose Ritz vectors start the full-data run.
    ``full_data_units`` = ``matvecs`` × samples/n: its products in the currency of full-data
    products (a product costs one pass over its data)."""

    samples: int
    n: int
    matvecs: int
    full_data_units: float
    eigenvalues: Tuple[float, ...]
    converged: bool
    stopped: str
    start: Optional[torch.Tensor] = internal(default=None)


def first_pass(objective: Objective, *, subset: int, k: int, which: str = "LA", seed: int = 0,
               theta: Optional[torch.Tensor] = None, method: str = "auto", budget: Optional[Budget] = None,
               tol: float = FIRST_PASS_TOL, callback: Optional[Callable[[EigenProgress], None]] = None
               ) -> Optional[FirstPass]:
    """Top-k eigenvectors of the Hessian on the first ``subset`` samples, to a loose residual
    tolerance (``tol`` relative: the subset's Hessian differs from the full one by far more than
    that, so more accuracy would not give a better start). None when ``subset`` covers the data."""
    if subset < 1:
        raise OptionError("{subset} must be at least 1")
    if subset >= objective.n:
        return None
    sub = objective.with_data(objective.x[:subset], objective.y[:subset])
    res = eigsh(HessianOperator(sub, theta, method=method), k=k, which=which, tol=tol, seed=seed,
                converge="vectors", budget=budget, callback=callback)
    usable = res.matvecs > 0 and all(math.isfinite(v) for v in res.eigenvalues)
    return FirstPass(subset, objective.n, res.matvecs, res.matvecs * subset / objective.n, res.eigenvalues,
                     res.converged, res.stopped, res.eigenvectors.detach() if usable else None)


@result()
class LayerEigen:
    """Top eigenvalue of the diagonal Hessian block of one layer (module)."""

    name: str
    params: int
    lambda_max: float
    residual: float
    converged: bool
    matvecs: int


def layer_blocks(objective: Objective) -> Dict[str, slice]:
    """Contiguous slices of the flat vector per module (a layer's weight and bias together)."""
    out: Dict[str, slice] = {}
    for name, (a, b) in zip(objective.space.names, objective.space.offsets()):
        layer = name.rsplit(".", 1)[0] if "." in name else name
        if layer in out and out[layer].stop == a:
            out[layer] = slice(out[layer].start, b)
        else:
            out[layer if layer not in out else name] = slice(a, b)
    return out


def per_layer_eigen(op: LinearOperator, blocks: Dict[str, slice], *, tol: float = 1e-4,
                    seed: int = 0, budget: Optional[Budget] = None) -> Tuple[LayerEigen, ...]:
    """Top eigenvalue of each diagonal block H_BB (Lanczos on the restricted operator)."""
    out = []
    for name, sl in blocks.items():
        sub = BlockOperator(op, sl)
        before = op.hvps
        r = eigsh(sub, k=1, which="LA", tol=tol, seed=seed, max_iter=min(sub.dim, 300), budget=budget)
        out.append(LayerEigen(name, sub.dim, r.eigenvalues[0], r.residuals[0], r.converged, op.hvps - before))
    return tuple(out)


@result()
class HessianConfig:
    """What to compute (the ``landscape hessian`` options)."""

    top_k: int = 5
    smallest: bool = False
    trace: bool = False
    density: bool = False
    per_layer: bool = False
    preconditioned: bool = False
    lr: Optional[float] = None
    tol: float = 1e-4
    seed: int = 0
    trace_matvecs: int = 99
    density_steps: int = 64
    density_runs: int = 2
    method: str = "auto"
    batch_sharpness: bool = False
    train_batch_size: Optional[int] = None
    batches: int = 20
    converge: str = "values"
    max_hvps: Optional[int] = None
    time_budget: Optional[float] = None
    block: Union[int, str] = 1
    first_pass_subset: Optional[int] = None


@result(kind="hessian")
class HessianReport:
    """Everything ``landscape hessian`` reports (``to_json`` gives the documented keys)."""

    eigenvalues: Tuple[float, ...]
    residuals: Tuple[float, ...]
    converged: bool
    stability: Stability
    hvps: int
    seconds: float
    config: HessianConfig
    eigenvectors: Optional[torch.Tensor] = None
    smallest: Optional[EigenResult] = None
    trace: Optional[TraceResult] = None
    density: Optional[DensityResult] = None
    per_layer: Optional[Tuple[LayerEigen, ...]] = None
    preconditioned: Optional[EigenResult] = None
    dim: int = 0
    n: int = 0
    notes: Tuple[str, ...] = ()
    provenance: Dict[str, Any] = field(default_factory=dict)
    batch_sharpness: Optional[BatchSharpness] = None
    batch_stability: Optional[Stability] = None
    top: Optional[EigenResult] = None
    verdict: Optional[CurvatureVerdict] = None
    objective: Dict[str, Any] = field(default_factory=dict)
    budget: Dict[str, Any] = field(default_factory=dict)
    first_pass: Optional[FirstPass] = None

    def to_json(self) -> dict:
        d: Dict[str, Any] = {
            "eigenvalues": list(self.eigenvalues),
            "residuals": list(self.residuals),
            "converged": self.converged,
        }
        if self.top is not None:
            d["error_bounds"] = list(self.top.error_bounds)
            d["criterion"] = self.top.criterion
            d["stopped"] = self.top.stopped
            d["top_hvps"] = self.top.matvecs
        if self.first_pass is not None:
            d["first_pass"] = self.first_pass.to_json()
        if self.smallest is not None:
            d["smallest_eigenvalue"] = self.smallest.eigenvalues[0]
            d["smallest_residual"] = self.smallest.residuals[0]
            d["smallest_converged"] = self.smallest.converged
            d["smallest_error_bound"] = self.smallest.error_bounds[0]
            d["smallest_stopped"] = self.smallest.stopped
        if self.trace is not None:
            d["trace"] = self.trace.trace
            d["trace_stderr"] = self.trace.stderr
            d["trace_method"] = self.trace.method
        if self.density is not None:
            d["density"] = self.density.to_json()
        if self.per_layer is not None:
            d["per_layer"] = [p.to_json() for p in self.per_layer]
        if self.preconditioned is not None:
            d["preconditioned_eigenvalues"] = list(self.preconditioned.eigenvalues)
            d["preconditioned_residuals"] = list(self.preconditioned.residuals)
            d["preconditioned_converged"] = self.preconditioned.converged
            d["preconditioned_error_bounds"] = list(self.preconditioned.error_bounds)
            d["preconditioned_stopped"] = self.preconditioned.stopped
        d["stability"] = self.verdict.to_json() if self.verdict is not None else self.stability.to_json()
        d["objectives"] = self._objectives()
        if self.batch_sharpness is not None:
            d["batch_sharpness"] = self.batch_sharpness.to_json()
            d["batch_stability"] = self.batch_stability.to_json() if self.batch_stability is not None else None
        d["hvps"] = self.hvps
        if self.budget:
            d["budget"] = dict(self.budget)
        d["seconds"] = self.seconds
        d["n_params"] = self.dim
        d["n_samples"] = self.n
        d["settings"] = self.config.to_json()
        d["notes"] = list(self.notes)
        d["provenance"] = dict(self.provenance)
        return d

    def _objectives(self) -> Dict[str, Any]:
        """Which objective each reported number is on (the verdict's is the training objective)."""
        evaluated = self.objective.get("description")
        out: Dict[str, Any] = {"eigenvalues": evaluated}
        if self.verdict is not None:
            out["stability"] = self.verdict.objective.get("description")
            if self.preconditioned is not None:
                same = self.verdict.same_objective or self.config.preconditioned
                out["preconditioned_eigenvalues"] = evaluated if same else out["stability"]
        if self.batch_sharpness is not None and self.verdict is not None:
            out["batch_sharpness"] = out["stability"]
        return out

    def summary(self) -> str:
        lines = [f"top-{len(self.eigenvalues)} Hessian eigenvalues: "
                 + ", ".join(f"{v:.6g}" for v in self.eigenvalues)
                 + (f"  (max error bound {max(self.top.error_bounds, default=float('nan')):.2g}, "
                    if self.top is not None else "")
                 + f"{'' if self.top is not None else '  ('}max residual "
                 f"{max(self.residuals, default=float('nan')):.2g}, converged: {self.converged})"]
        if self.first_pass is not None:
            f = self.first_pass
            lines.insert(0, f"first pass on {f.samples} of {f.n} samples: {f.matvecs} products "
                            f"(= {f.full_data_units:.3g} full-data products)")
        if self.smallest is not None:
            lines.append(f"smallest eigenvalue: {self.smallest.eigenvalues[0]:.6g} "
                         f"(residual {self.smallest.residuals[0]:.2g}, converged: {self.smallest.converged})")
        if self.trace is not None:
            lines.append(f"trace: {self.trace.trace:.6g} ± {self.trace.stderr:.2g} ({self.trace.method})")
        if self.density is not None:
            lines.append(f"spectral density: {len(self.density.grid)} grid points, "
                         f"{self.density.runs}×{self.density.steps} Lanczos steps")
        if self.per_layer is not None:
            for p in self.per_layer:
                lines.append(f"  {p.name:<30} {p.params:>9} params  λ_max {p.lambda_max:.6g}")
        if self.preconditioned is not None:
            lines.append("preconditioned λ(P⁻¹H): " + ", ".join(f"{v:.6g}" for v in self.preconditioned.eigenvalues))
        s = self.stability
        if s.stable is None:
            verdict = "unknown"
        else:
            verdict = "stable" if s.stable else "UNSTABLE (above the threshold)"
        lines.append(f"stability ({s.optimizer}, lr {s.lr}): sharpness {s.sharpness:.6g} vs threshold "
                     f"{s.threshold:.6g} [{s.rule} on {s.on}] → ratio {s.ratio:.3g}: {verdict}")
        b = self.batch_sharpness
        if b is not None:
            line = (f"batch sharpness (batch {b.batch_size}, {b.batches} batches): {b.value:.6g} ± {b.stderr:.2g}")
            bs = self.batch_stability
            if bs is not None and bs.stable is not None:
                line += f" vs threshold {bs.threshold:.6g} → ratio {bs.ratio:.3g}"
            lines.append(line)
        for note in self.notes + s.notes:
            lines.append(f"note: {note}")
        lines.append(f"{self.hvps} Hessian-vector products in {self.seconds:.1f} s")
        return "\n".join(lines)


class _Counting(LinearOperator):
    """Forwards to an operator and reports every product to a callback (progress display)."""

    def __init__(self, base: LinearOperator, tick: Callable[[int], None]) -> None:
        self.base, self.tick = base, tick
        self.dim, self.dtype, self.device = base.dim, base.dtype, base.device

    @property
    def hvps(self) -> int:
        return self.base.hvps

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        out = self.base.matvec(v)
        self.tick(1)
        return out

    def matmat(self, V: torch.Tensor) -> torch.Tensor:
        out = self.base.matmat(V)
        self.tick(V.shape[0] if V.dim() > 1 else 1)
        return out


def analyze_hessian(objective: Objective, optimizer: Optional[OptimizerState] = None,
                    config: HessianConfig = HessianConfig(), *, theta: Optional[torch.Tensor] = None,
                    provenance: Optional[Dict[str, Any]] = None,
                    tick: Optional[Callable[[str, int], None]] = None,
                    status: Optional[Callable[[str, EigenProgress], None]] = None) -> HessianReport:
    """Run the analysis described by ``config`` (module docstring). ``tick(phase, n)`` is called
    after every ``n`` Hessian-vector products and ``status(phase, progress)`` after every Lanczos
    iteration (for a progress display with the worst bound and an ETA). ``config.max_hvps`` and
    ``config.time_budget`` are one :class:`~landscape.hessian.lanczos.Budget` for every Lanczos run
    of the call together (first pass, top-k, the verdict's runs, preconditioned, smallest,
    per-layer), spent in that order; trace and density keep their own fixed product counts."""
    if config.top_k < 1:
        raise OptionError("{top_k} must be at least 1")
    if config.top_k > objective.dim:
        raise OptionError("{top_k} {value} exceeds the {dim} parameters", value=config.top_k, dim=objective.dim)
    if not config.tol > 0:
        raise OptionError("{tol} must be positive")
    if config.converge not in ("values", "vectors"):
        raise OptionError("{converge} must be values or vectors")
    if config.max_hvps is not None and config.max_hvps < 1:
        raise OptionError("{max_hvps} must be at least 1")
    if config.time_budget is not None and not config.time_budget > 0:
        raise OptionError("{time_budget} must be a positive number of seconds")
    if config.block != "auto" and (isinstance(config.block, str) or int(config.block) < 1):
        raise OptionError("{block} must be a positive integer or auto")
    if config.first_pass_subset is not None and config.first_pass_subset < 1:
        raise OptionError("{first_pass_subset} must be at least 1")
    t0 = time.perf_counter()
    budget = Budget(max_hvps=config.max_hvps, seconds=config.time_budget)
    start = objective.hvp_count
    notes: List[str] = []
    base = HessianOperator(objective, theta, method=config.method)
    notes.append(f"Hessian-vector products: {base.method}"
                 + (" (auto: the gradient graphs did not fit the memory budget)"
                    if config.method == "auto" and base.method == "fwd" else ""))

    def wrap(op: LinearOperator, phase: str) -> LinearOperator:
        return _Counting(op, lambda n: tick(phase, n)) if tick is not None else op

    def limits(phase: str) -> Dict[str, Any]:
        """The shared budget and a progress callback for one Lanczos run."""
        return {"callback": (lambda p: status(phase, p)) if status is not None else None, "budget": budget}

    fp = None
    if config.first_pass_subset is not None:
        fp = first_pass(objective, subset=config.first_pass_subset, k=config.top_k, seed=config.seed,
                        theta=theta, method=config.method, **limits("first pass"))
        if fp is None:
            notes.append(f"the first-pass subset ({config.first_pass_subset}) covers all {objective.n} samples: "
                         "no first pass")
    top = eigsh(wrap(base, "top eigenvalues"), k=config.top_k, which="LA", tol=config.tol, seed=config.seed,
                converge=config.converge, block=config.block, v0=fp.start if fp is not None else None,
                **limits("top eigenvalues"))
    if not top.converged:
        what = "error bounds" if top.criterion == "values" else "eigenvector residuals"
        notes.append(f"top-{config.top_k} Lanczos: {what} did not reach tol {config.tol:g} in {top.matvecs} "
                     f"products (stopped: {top.stopped})")
    # the stability verdict before the optional extras, so that a budget goes to it first
    verdict = curvature_verdict(objective, optimizer, lr=config.lr, tol=config.tol, seed=config.seed,
                                theta=theta, train_batch_size=config.train_batch_size, method=config.method,
                                top=top, base=base, wrap=wrap,
                                preconditioned_k=config.top_k if config.preconditioned else 1, budget=budget)
    pre = verdict.preconditioned
    if config.preconditioned:
        pre = _reported_preconditioned(objective, optimizer, base, verdict, config, wrap, notes, budget)
    smallest = None
    if config.smallest:
        smallest = eigsh(wrap(base, "smallest eigenvalue"), k=1, which="SA", tol=config.tol,
                         seed=config.seed + 1, **{"max_iter": 300, **limits("smallest eigenvalue")})
        if not smallest.converged:
            notes.append("smallest eigenvalue not converged (the bottom of a Hessian spectrum is "
                         "crowded; see smallest_residual)")
    trace = hutchpp(wrap(base, "trace"), matvecs=config.trace_matvecs, seed=config.seed) if config.trace else None
    density = (slq(wrap(base, "density"), steps=config.density_steps, runs=config.density_runs,
                   seed=config.seed) if config.density else None)
    per_layer = (per_layer_eigen(wrap(base, "per-layer"), layer_blocks(objective), tol=config.tol,
                                 seed=config.seed, budget=budget) if config.per_layer else None)
    if budget.skipped:
        notes.append(f"budget spent ({budget.exhausted()}: {budget.used} products in {budget.runs} Lanczos runs): "
                     f"{budget.skipped} run(s) got no products and report NaN with converged: false")

    bsharp = bstab = None
    if config.batch_sharpness:
        if not config.train_batch_size:
            raise OptionError("{batch_sharpness} needs the training batch size: pass {train_batch_size} "
                                 "(checkpoints of `landscape train` record it)")
        bsharp = batch_sharpness(verdict.training or objective, batch_size=config.train_batch_size,
                                 batches=config.batches, seed=config.seed, theta=theta)
        bstab = batch_stability(optimizer, bsharp, lr=config.lr)
    hvps = objective.hvp_count - start + (bsharp.hvps if bsharp is not None else 0) + (fp.matvecs if fp else 0)
    if not verdict.same_objective:
        hvps += verdict.hvps
    return HessianReport(top.eigenvalues, top.residuals, top.converged, verdict.stability, hvps,
                         time.perf_counter() - t0, config, top.eigenvectors, smallest, trace, density,
                         per_layer, pre, objective.dim, objective.n, tuple(notes), dict(provenance or {}),
                         bsharp, bstab, top, verdict, describe_objective(objective),
                         budget.to_json() if (config.max_hvps or config.time_budget) else {}, fp)


def _reported_preconditioned(objective: Objective, optimizer: Optional[OptimizerState], base: HessianOperator,
                             verdict: CurvatureVerdict, config: HessianConfig,
                             wrap: Callable[[LinearOperator, str], LinearOperator],
                             notes: List[str], budget: Optional[Budget] = None) -> Optional[EigenResult]:
    """``--preconditioned``: the top-k of P^{-1/2}(H + wd)P^{-1/2} on the evaluated objective
    (the verdict's own when that is the training objective)."""
    if not is_adaptive(optimizer):
        notes.append("--preconditioned: the optimizer is not adaptive (P = I); nothing to precondition")
        return None
    if verdict.same_objective:
        return verdict.preconditioned
    p = preconditioner_diag(optimizer, objective.space, dtype=objective.dtype)
    wd = coupled_weight_decay(optimizer, objective.space, dtype=objective.dtype)
    op = PreconditionedOperator(base.with_shift(wd), p.to(objective.device))
    return eigsh(wrap(op, "preconditioned"), k=config.top_k, which="LA", tol=config.tol, seed=config.seed,
                 budget=budget)
