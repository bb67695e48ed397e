"""Extreme eigenpairs of a symmetric operator: Lanczos with full reorthogonalisation.

The basis ``Q`` (orthonormal rows) and the products ``W = H Q`` are kept; every iteration solves
the small projected problem ``G = Q Wᵀ`` (Rayleigh–Ritz, in float64) and computes the *true*
residuals ``r_i = H y_i − θ_i y_i`` of the wanted Ritz pairs from ``W`` (no extra products).

Error bounds (what the user reads is the eigenvalue): for a unit vector y with Rayleigh quotient
θ and residual ‖r‖ there is an eigenvalue within ‖r‖ of θ, and within ‖r‖²/δ when δ is the
distance from θ to every *other* eigenvalue (Kato–Temple; Parlett, *The Symmetric Eigenvalue
Problem*, §11.7). δ is estimated from the Ritz values conservatively: Ritz values from any
subspace interlace (θ_i ≤ λ_i for the i-th largest, Cauchy), so the eigenvalues above λ_i lie at
or above θ_{i−1}; the ones below are taken to lie at or below θ_{i+1} + ‖r_{i+1}‖ (the Ritz value
one past the k-th is computed for this). For a run of close Ritz values (a cluster) the same
holds with the run's residual matrix and its gap to the rest of the spectrum (quadratic residual
bounds; :func:`gap_bounds`). Each eigenvalue's ``error_bound`` is the smallest of these plus a
rounding floor for the products' own rounding (256 ulps of the operator's dtype times max|θ|;
:func:`rounding_floor`); ``‖r‖`` when no estimated gap is positive. All sums over the parameters
(projections, norms) are accumulated in float64 (:func:`gram64`). Like every Krylov method this assumes no eigenvalue of the wanted range was missed
entirely by the subspace.

Stopping (``converge``): ``"values"`` (default) stops when every requested eigenvalue's bound is
at most ``tol · max|θ|``; ``"vectors"`` when every residual is (what eigenvectors used as
directions or in preconditioned verdicts need). ``converged`` in the result means exactly that
the chosen criterion holds. Limits (``max_iter`` products, ``time_budget`` seconds) end the run
with its bounds and ``converged=False``, never with an exception; so does a tolerance below what
the dtype allows, once the bounds sit at their rounding floor. Several runs of one call share
one :class:`Budget` (products and a deadline), so a command's limits hold for all its runs
together. When ``3k ≥ dim`` the
operator is applied to the identity (``dim`` products) and the problem is solved densely.

Expansion: from one start vector the next basis vector is the residual of a Ritz pair (all
residuals of a Krylov subspace are parallel, so this *is* the Lanczos vector q_{m+1}); it is
orthogonalised against the whole basis twice (classical Gram–Schmidt, "twice is enough"). With
``block=b`` the residuals of the ``b`` least-converged wanted pairs are added per iteration and
their products are computed together (``op.matmat``, one pass over the data when the operator
batches them); a block at least as large as a cluster of eigenvalues resolves it at the rate set
by the gap below the cluster instead of the tiny gaps inside it. When the basis is full it is
thick-restarted (Wu & Simon 2000; Stewart's Krylov–Schur): the wanted Ritz vectors and the next
ones in line are kept together with their products, so no product is recomputed.

``which="LA"`` gives the largest *algebraic* eigenvalues (descending); ``"SA"`` the smallest
(ascending). Largest-magnitude selection (power iteration, ARPACK's default 'LM') would return a
dominant negative eigenvalue as the "top" one.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import torch

from .operator import LinearOperator

CRITERIA = ("values", "vectors")


@dataclass(frozen=True)
class EigenResult:
    """Eigenpairs of a symmetric operator (``eigenvectors``: (k, d)) with their residuals
    ‖Hv − λv‖, per-eigenvalue ``error_bounds`` on |λ − θ|, and whether ``criterion`` held.

    ``stopped`` says why the run ended: ``"converged"``, ``"max_hvps"``, ``"time_budget"``,
    ``"precision"`` (the bounds reached the rounding floor of the operator's dtype, which is above
    the tolerance: more products cannot help) or ``"basis"`` (the basis spans the whole space and
    rounding keeps the criterion from holding).
    """

    eigenvalues: Tuple[float, ...]
    eigenvectors: torch.Tensor
    residuals: Tuple[float, ...]
    converged: bool
    matvecs: int
    which: str = "LA"
    tol: float = 0.0
    method: str = "lanczos"
    error_bounds: Tuple[float, ...] = ()
    criterion: str = "vectors"
    stopped: str = ""
    seconds: float = 0.0
    block: int = 1

    def __post_init__(self) -> None:
        if not self.error_bounds:   # without a gap estimate the residual itself bounds |λ − θ|
            object.__setattr__(self, "error_bounds", tuple(self.residuals))

    @property
    def relative_residuals(self) -> Tuple[float, ...]:
        scale = max((abs(x) for x in self.eigenvalues), default=0.0) or 1.0
        return tuple(r / scale for r in self.residuals)

    def to_json(self) -> dict:
        return {
            "eigenvalues": list(self.eigenvalues),
            "residuals": list(self.residuals),
            "error_bounds": list(self.error_bounds),
            "converged": self.converged,
            "criterion": self.criterion,
            "stopped": self.stopped,
            "matvecs": self.matvecs,
            "which": self.which,
            "tol": self.tol,
            "method": self.method,
            "block": self.block,
        }


@dataclass(frozen=True)
class EigenProgress:
    """One solver report for a progress display: products so far, the worst relative error
    measure of the chosen criterion (bound or residual over max|θ|) and its target ``tol``, the
    current Ritz values with their bounds and residuals, and the block size of the next step."""

    matvecs: int
    worst: float
    tol: float
    criterion: str
    seconds: float
    eigenvalues: Tuple[float, ...] = ()
    error_bounds: Tuple[float, ...] = ()
    residuals: Tuple[float, ...] = ()
    block: int = 1
    scale: float = 1.0


Callback = Callable[[EigenProgress], None]


class Budget:
    """Hessian-vector products and seconds shared by every Lanczos run of one call.

    One command runs several Lanczos runs (``landscape hessian``: the top-k, the stability
    λ_max on the training objective, λ_max(H + wd), the preconditioned eigenvalues, the smallest
    eigenvalue, per-layer blocks); ``--max-hvps`` and ``--time-budget`` limit them *together*, so
    each run is given what the earlier ones left (:meth:`limits`) and reports what it spent
    (:meth:`spend`). ``max_hvps`` counts products of every run (a first pass on a data subset
    included); ``seconds`` is a deadline measured from the budget's creation. A run that finds
    the budget spent does not start: it returns :func:`unstarted` (NaN values, infinite bounds,
    ``converged=False``, ``stopped`` naming the limit) rather than raising.
    """

    def __init__(self, *, max_hvps: Optional[int] = None, seconds: Optional[float] = None,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        if max_hvps is not None and int(max_hvps) < 1:
            raise ValueError("max_hvps must be at least 1")
        if seconds is not None and not (seconds > 0 and math.isfinite(seconds)):
            raise ValueError("seconds must be a positive number")
        self.max_hvps = None if max_hvps is None else int(max_hvps)
        self.seconds = None if seconds is None else float(seconds)
        self._clock = clock
        self._t0 = clock()
        self.used = 0
        self.runs = 0
        self.skipped = 0

    def hvps_left(self) -> Optional[int]:
        """Products still allowed (None: no cap)."""
        return None if self.max_hvps is None else max(0, self.max_hvps - self.used)

    def seconds_left(self) -> Optional[float]:
        """Seconds until the deadline (None: no deadline)."""
        return None if self.seconds is None else self.seconds - (self._clock() - self._t0)

    def exhausted(self) -> str:
        """``"max_hvps"`` or ``"time_budget"`` when that limit is reached, else ``""``."""
        if self.max_hvps is not None and self.used >= self.max_hvps:
            return "max_hvps"
        left = self.seconds_left()
        if left is not None and left <= 0:
            return "time_budget"
        return ""

    def limits(self, max_iter: Optional[int] = None, time_budget: Optional[float] = None) -> Dict[str, Any]:
        """``max_iter``/``time_budget`` for the next run: its own limits (None: none of its own;
        a run without its own product cap may use everything that is left) within what is left."""
        left = self.hvps_left()
        out: Dict[str, Any] = {"max_iter": max_iter if left is None else min(left, max_iter or left)}
        secs = self.seconds_left()
        if secs is not None:
            time_budget = max(1e-9, secs if time_budget is None else min(secs, time_budget))
        out["time_budget"] = time_budget
        return out

    def spend(self, matvecs: int) -> None:
        """Count one finished run's products (a run that got none counts as skipped)."""
        self.used += int(matvecs)
        self.runs += 1
        self.skipped += int(matvecs) == 0

    def to_json(self) -> dict:
        left = self.seconds_left()
        return {"max_hvps": self.max_hvps, "time_budget": self.seconds, "hvps_used": self.used,
                "seconds_used": (self.seconds - left) if left is not None else self._clock() - self._t0,
                "lanczos_runs": self.runs, "skipped_runs": self.skipped, "exhausted": self.exhausted() or None}


def unstarted(op: LinearOperator, *, k: int, which: str, tol: float, converge: str, stopped: str) -> EigenResult:
    """The result of a run the budget left no room for: no products, NaN eigenvalues and
    residuals, infinite error bounds, zero vectors, ``converged=False``."""
    nan, inf = float("nan"), float("inf")
    vecs = torch.zeros(k, int(op.dim), dtype=op.dtype, device=op.device)
    return EigenResult((nan,) * k, vecs, (nan,) * k, False, 0, which, float(tol), "lanczos", (inf,) * k,
                       converge, stopped, 0.0, 1)


def eigsh(op: LinearOperator, *, k: int = 1, which: str = "LA", tol: float = 1e-4, seed: int = 0,
          v0: Optional[torch.Tensor] = None, max_iter: Optional[int] = None,
          max_basis: Optional[int] = None, block: Union[int, str] = 1, converge: str = "values",
          time_budget: Optional[float] = None, callback: Optional[Callback] = None,
          budget: Optional[Budget] = None) -> EigenResult:
    """The ``k`` largest ('LA') or smallest ('SA') eigenpairs of the symmetric ``op``.

    Args:
        op: a symmetric operator with ``dim``, ``matvec``/``matmat``.
        k: number of eigenpairs.
        which: ``"LA"`` (largest algebraic, returned descending) or ``"SA"`` (smallest, ascending).
        tol: the target, relative to max|θ| (≈ ‖H‖), of the criterion ``converge``.
        seed: seed of the random start vector(s).
        v0: warm start: one vector ``(d,)`` or several rows ``(j, d)`` (e.g. previous eigenvectors).
        max_iter: the most operator products (default ``max(100, 30k)``); at the limit the result
            is returned with ``converged=False``.
        max_basis: basis size before a thick restart (default ``max(40, 2k + 20)``, at most ``dim``);
            memory is two ``(max_basis, dim)`` buffers.
        block: vectors added per iteration (products are batched through ``op.matmat``), or
            ``"auto"``: start with a block of ``min(k, 8)`` random vectors, then each iteration
            expand by as many vectors as there are unconverged wanted Ritz values in clusters
            (a neighbour within 2 % of the value; :func:`auto_block`), at least one.
        converge: ``"values"`` (every error bound ≤ tol·max|θ|) or ``"vectors"`` (every
            residual ‖Hy − θy‖ ≤ tol·max|θ|).
        time_budget: seconds; no iteration is started that the observed time per product says
            would end past it (the run returns its bounds with ``converged=False``).
        callback: called with an :class:`EigenProgress` after each iteration.
        budget: products and a deadline shared with the other runs of the same call
            (:class:`Budget`): this run gets at most what is left (within ``max_iter`` and
            ``time_budget``), does not start when nothing is (:func:`unstarted`), and its
            products are counted in it.
    """
    _check_arguments(int(op.dim), k=k, which=which, converge=converge, tol=tol, time_budget=time_budget)
    if budget is None:
        return _eigsh(op, k=k, which=which, tol=tol, seed=seed, v0=v0, max_iter=max_iter, max_basis=max_basis,
                      block=block, converge=converge, time_budget=time_budget, callback=callback)
    stop = budget.exhausted()
    if stop:
        res = unstarted(op, k=k, which=which, tol=tol, converge=converge, stopped=stop)
    else:
        lim = budget.limits(max_iter, time_budget)
        res = _eigsh(op, k=k, which=which, tol=tol, seed=seed, v0=v0, max_iter=lim["max_iter"],
                     max_basis=max_basis, block=block, converge=converge, time_budget=lim["time_budget"],
                     callback=callback)
    budget.spend(res.matvecs)
    return res


def _check_arguments(d: int, *, k: int, which: str, converge: str, tol: float,
                     time_budget: Optional[float]) -> None:
    """The checks of :func:`eigsh`'s arguments, made once before either path (with or without a
    budget) so that a run the budget never starts refuses the same arguments."""
    if which not in ("LA", "SA"):
        raise ValueError("which must be 'LA' or 'SA'")
    if converge not in CRITERIA:
        raise ValueError(f"converge must be one of {', '.join(CRITERIA)}")
    if not 1 <= k <= d:
        raise ValueError(f"k must be between 1 and the dimension {d}")
    if not tol > 0:
        raise ValueError("tol must be positive")
    if time_budget is not None and not time_budget > 0:
        raise ValueError("time_budget must be positive")


def _eigsh(op: LinearOperator, *, k: int, which: str, tol: float, seed: int, v0: Optional[torch.Tensor],
           max_iter: Optional[int], max_basis: Optional[int], block: Union[int, str], converge: str,
           time_budget: Optional[float], callback: Optional[Callback]) -> EigenResult:
    """:func:`eigsh` without a shared budget (arguments checked by :func:`eigsh`)."""
    d = int(op.dim)
    max_iter = int(max_iter if max_iter is not None else max(100, 30 * k))
    if max_iter < 1:
        raise ValueError("max_iter must be at least 1")
    t0 = time.perf_counter()
    if 3 * k >= d and max_iter >= d:
        return _dense_eigsh(op, k=k, which=which, tol=tol, converge=converge, t0=t0, callback=callback)
    max_basis = min(d, int(max_basis if max_basis is not None else max(40, 2 * k + 20)))
    auto = block == "auto"
    if auto:
        block = min(k, AUTO_MAX_BLOCK)
    elif isinstance(block, str) or int(block) < 1:
        raise ValueError("block must be a positive integer or 'auto'")
    block = max(1, min(int(block), max_basis - k)) if max_basis > k else 1
    max_block = block
    if max_basis < min(d, k + block):
        raise ValueError("max_basis must exceed k + block")
    dev, dt = op.device, op.dtype
    gen = torch.Generator().manual_seed(int(seed))

    Q = torch.zeros(max_basis, d, dtype=dt, device=dev)
    W = torch.zeros(max_basis, d, dtype=dt, device=dev)
    G = torch.zeros(0, 0, dtype=torch.float64, device=dev)   # Q[:m] W[:m]ᵀ, grown each step
    m = 0
    pending = _start_block(v0, d, block, gen, dt, dev)
    used = 0
    state = None
    stopped = "max_hvps"
    while True:
        new = _orthonormalize(pending, Q[:m], gen)
        new = new[: min(max_basis - m, max(1, max_iter - used))]
        if len(new) == 0:       # nothing left to add: the basis spans the whole space
            stopped = "basis"
            break
        W[m:m + len(new)] = op.matmat(new)
        Q[m:m + len(new)] = new
        G = _extend_gram(G, Q, W, m, m + len(new))
        m += len(new)
        used += len(new)
        state = _ritz(Q[:m], W[:m], G, k, which, full=m >= d)
        worst = _worst(state, converge)
        elapsed = time.perf_counter() - t0
        if auto:
            block = min(max_block, auto_block(state, k, which, tol, converge))
        if callback is not None:
            callback(EigenProgress(used, worst, float(tol), converge, elapsed, _floats(state.theta),
                                   _floats(state.bounds), _floats(state.res[:len(state.theta)]), block,
                                   state.scale))
        if len(state.theta) == k and worst <= tol:
            stopped = "converged"
            break
        if converge == "values" and len(state.theta) == k and float(state.bounds.max()) <= 2 * state.floor:
            stopped = "precision"   # the bounds are at the dtype's rounding floor, above tol
            break
        if used >= max_iter:
            stopped = "max_hvps"
            break
        if m >= d:
            stopped = "basis"
            break
        if time_budget is not None and elapsed + (elapsed / used) * block > time_budget:
            stopped = "time_budget"
            break
        order = torch.argsort(state.res[:k], descending=True)[:block]
        Y, HY = _ritz_rows(state.S[:, order], Q[:m], W[:m])
        pending = HY - state.theta[order, None].to(Y) * Y
        if m + len(pending) > max_basis:
            pending = _orthonormalize(pending, Q[:m], gen)
            m, G = _thick_restart(Q, W, G, m, k, which, keep_extra=max(1, (max_basis - k - block) // 2))
    if state is None:
        raise ValueError("no start vector could be made orthogonal to an empty basis")
    converged = bool(len(state.theta) == k and _worst(state, converge) <= tol)
    vectors, _ = _ritz_rows(state.S[:, :len(state.theta)], Q[:m], None)
    return EigenResult(_floats(state.theta), vectors, _floats(state.res[:k]), converged, used, which,
                       float(tol), "lanczos", _floats(state.bounds), converge, stopped,
                       time.perf_counter() - t0, max_block)


AUTO_MAX_BLOCK = 8
AUTO_CLUSTER_GAP = 0.02


def auto_block(state: _Ritz, k: int, which: str, tol: float, converge: str) -> int:
    """The block size for the next iteration of ``block="auto"``: the number of wanted Ritz
    values not yet meeting the criterion that have a neighbour (among the k + 1 computed)
    closer than ``AUTO_CLUSTER_GAP`` relative to their own size (at least 0.1 % of max|θ|), or 1
    when there is none.

    Single-vector Lanczos resolves a cluster one member at a time (and can stop before a member
    has appeared at all); a block as large as the unconverged part of the cluster converges at
    the rate of the gap below the cluster. Elsewhere one vector per product is cheapest.
    """
    n = len(state.res)
    theta = torch.cat([state.theta, state.extra]) if len(state.extra) else state.theta
    s = theta.double() * (1.0 if which == "LA" else -1.0)
    measure = state.bounds if converge == "values" else state.res[: len(state.theta)]
    count = 0
    for i in range(min(k, len(state.theta))):
        if float(measure[i]) <= tol * state.scale:
            continue
        size = max(abs(float(s[i])), 1e-3 * state.scale)
        near = [abs(float(s[i] - s[j])) for j in (i - 1, i + 1) if 0 <= j < min(n, len(s))]
        if near and min(near) < AUTO_CLUSTER_GAP * size:
            count += 1
    return max(1, count)


@dataclass(frozen=True)
class _Ritz:
    """The wanted Ritz pairs (``theta``: at most k values, in the order of ``which``), their
    coordinates in the basis, residual norms (one more than k where available, for the gap), error bounds, and
    the scale max|θ| the tolerance is relative to."""

    theta: torch.Tensor
    S: torch.Tensor          # Ritz vectors in the basis: y_i = S[:, i]ᵀ Q (k + 1 columns where available)
    res: torch.Tensor
    bounds: torch.Tensor
    scale: float
    extra: torch.Tensor      # the Ritz value past the k-th (empty when there is none)
    floor: float = 0.0       # the rounding floor included in every bound


def _worst(state: _Ritz, converge: str) -> float:
    """The criterion's worst measure relative to max|θ| (inf when fewer than k pairs exist)."""
    values = state.bounds if converge == "values" else state.res[: len(state.theta)]
    if len(values) == 0:
        return float("inf")
    return float(values.max()) / state.scale


def _floats(t: torch.Tensor) -> Tuple[float, ...]:
    return tuple(float(x) for x in t.tolist())


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
    out: List[torch.Tensor] = []
    for v in V:
        v = v.clone()
        base = torch.cat([Q, *[o[None] for o in out]]) if out else Q
        norm0 = _norm64(v)
        for _ in range(2):
            if len(base):
                v -= gram64(base, v[None])[:, 0].to(v) @ base
        nv = _norm64(v)
        tries = 0
        while (nv <= 1e-8 * max(norm0, 1e-30) or nv == 0.0) and tries < 3 and len(base) < d:
            v = torch.randn(d, generator=gen, dtype=torch.float64).to(V)
            norm0 = _norm64(v)
            for _ in range(2):
                if len(base):
                    v -= gram64(base, v[None])[:, 0].to(v) @ base
            nv = _norm64(v)
            tries += 1
        if nv == 0.0 or len(base) >= d:
            continue
        out.append(v / nv)
    if not out:
        return V[:0]
    return torch.stack(out)


def gram64(A: torch.Tensor, B: torch.Tensor, *, chunk: int = 1 << 16) -> torch.Tensor:
    """``A @ B.T`` as float64: products in the operands' dtype over chunks of ``chunk`` columns,
    the chunks' partial sums accumulated in float64.

    The projected matrix and the Gram–Schmidt coefficients are sums over every parameter; one
    float32 sum of 464k terms was off by 6·10⁻⁵ relative (ResNet-32: Ritz value 373,394 against
    373,373 from the same float32 products accumulated in float64), far above the products' own
    rounding. Summing chunks of 65,536 terms in float32 and the chunks in float64 brought a dot
    product over ResNet-18's 11.2M parameters to 2.5·10⁻⁹ of its exact value (against 8·10⁻⁸ for
    one float32 sum), without the float64 copies of the operands, whose allocation made this the
    slowest step of a Lanczos iteration at that size (8 s for the float64 copy of one 8 × 11.2M
    block on the loaded 2-core machine, against 0.07 s for the chunked float32 products).
    """
    out = torch.zeros(A.shape[0], B.shape[0], dtype=torch.float64, device=A.device)
    for a in range(0, A.shape[1], chunk):
        out += (A[:, a:a + chunk] @ B[:, a:a + chunk].T).double()
    return out


def _norm64(v: torch.Tensor) -> float:
    """‖v‖ accumulated in float64: a float32 norm over 464k entries was off by 3·10⁻⁵, which left
    the basis that far from orthonormal and every Ritz value as far off."""
    return math.sqrt(float(gram64(v[None], v[None])))


def rounding_floor(dtype: torch.dtype, scale: float, m: int) -> float:
    """A floor under every error bound for the rounding of the products themselves: 256 ulps of
    max|θ|, growing like √m past 64 basis vectors. Measured: float32 products along ResNet-32's
    top eigenvector (16 images) gave a Rayleigh quotient 4·10⁻⁶ (≈ 36 ulps) relative away from
    the float64 one; on ResNet-32 with randomised BatchNorm statistics (32 images, loss ≈ 1,300)
    the float32 operator's top eigenvalues were up to 1.3·10⁻⁵·λ_max (≈ 110 ulps) away from the
    float64 operator's, with two float32 implementations agreeing to 10⁻⁸ — beyond the 64 ulps
    used before. The bounds are for the exact operator to this floor; ``float64`` when more is
    needed."""
    return 256.0 * torch.finfo(dtype).eps * scale * max(1.0, math.sqrt(max(m, 1) / 64.0))


def gap_bounds(theta: torch.Tensor, res: torch.Tensor, k: int, which: str, *,
               floor: float, below_known: bool = True) -> torch.Tensor:
    """Error bounds on the first ``min(k, len(theta))`` Ritz values (module docstring).

    ``theta``/``res``: Ritz values in the order of ``which`` (descending for 'LA', ascending for
    'SA') with their residual norms, including the one past the k-th where available.
    ``below_known=False`` means there is no eigenvalue beyond the last Ritz value given (the
    subspace is the whole space), so its gap on that side is infinite.

    For each value the best of: ‖r_i‖; and, for every run of consecutive Ritz values
    ``a..b`` holding it, ‖R_ab‖²/δ_ab, where ‖R_ab‖² = Σ ‖r_j‖² (Frobenius, ≥ the spectral norm)
    and δ_ab the estimated gap between the run and every other eigenvalue (the quadratic residual
    bound for a cluster: Mathias 1998, Li & Li 2005). A tight cluster well separated from the
    rest of the spectrum is thus bounded by its gap to the rest, not by its internal spacing.
    """
    s = theta.double() * (1.0 if which == "LA" else -1.0)   # descending in both cases
    r = res.double()
    n = len(s)
    nk = min(k, n)
    r2 = [float(x) ** 2 for x in r]
    best = [float(r[i]) for i in range(nk)]
    for a in range(nk):
        above = float(s[a - 1] - s[a]) if a > 0 else math.inf
        if above <= 0:
            continue
        acc = 0.0
        for b in range(a, nk):
            acc += r2[b]
            if b + 1 < n:
                below = float(s[b] - (s[b + 1] + r[b + 1]))
            else:
                below = math.inf if not below_known else -math.inf
            gap = min(above, below)
            if gap <= 0:
                continue
            q = acc / gap
            for i in range(a, b + 1):
                best[i] = min(best[i], q)
    return torch.tensor([b + floor for b in best], dtype=torch.float64)


def _extend_gram(G: torch.Tensor, Q: torch.Tensor, W: torch.Tensor, m_old: int, m: int) -> torch.Tensor:
    """``Q[:m] W[:m]ᵀ`` from the previous ``Q[:m_old] W[:m_old]ᵀ``: only the new rows and columns
    are computed (O(m·d) per step instead of O(m²·d) for the whole matrix again)."""
    out = torch.zeros(m, m, dtype=torch.float64, device=G.device)
    out[:m_old, :m_old] = G
    out[:, m_old:m] = gram64(Q[:m], W[m_old:m])
    out[m_old:m, :m_old] = gram64(Q[m_old:m], W[:m_old])
    return out


def _ritz(Q: torch.Tensor, W: torch.Tensor, G: torch.Tensor, k: int, which: str, *, full: bool) -> _Ritz:
    """Wanted Ritz values, their coordinates, true residual norms and error bounds, from the
    projected matrix ``G = Q Wᵀ`` (symmetrised here)."""
    evals, evecs = torch.linalg.eigh(0.5 * (G + G.T))
    scale = float(evals.abs().max()) or 1.0
    m = len(evals)
    n = min(k + 1, m)
    idx = torch.arange(m - 1, m - 1 - n, -1) if which == "LA" else torch.arange(n)
    theta = evals[idx]
    S = evecs[:, idx].to(Q.dtype)
    res = _residual_norms(Q, W, S, theta)
    floor = rounding_floor(Q.dtype, scale, m)
    bounds = gap_bounds(theta.cpu(), res, k, which, floor=floor, below_known=not (full and n == m))
    nk = min(k, m)
    return _Ritz(theta[:nk].cpu(), S, res, bounds, scale, theta[nk:].cpu(), floor)


def _residual_norms(Q: torch.Tensor, W: torch.Tensor, S: torch.Tensor, theta: torch.Tensor,
                    *, chunk: int = 1 << 18) -> torch.Tensor:
    """‖H y_i − θ_i y_i‖ for the Ritz vectors ``y_i = S[:, i]ᵀ Q`` (whose products are
    ``S[:, i]ᵀ W``), chunk by chunk of parameters with squares summed in float64: the true
    residuals, without holding the vectors (at 11.2M parameters, allocating them every step
    cost more than the arithmetic)."""
    St = S.T.contiguous()
    thSt = theta.to(device=Q.device, dtype=Q.dtype)[:, None] * St
    acc = torch.zeros(St.shape[0], dtype=torch.float64, device=Q.device)
    for a in range(0, Q.shape[1], chunk):
        r = torch.addmm(St @ W[:, a:a + chunk], thSt, Q[:, a:a + chunk], alpha=-1.0)
        acc += torch.linalg.vector_norm(r, dim=1, dtype=torch.float64).square()
    return acc.sqrt().cpu()


def _ritz_rows(S: torch.Tensor, Q: torch.Tensor, W: Optional[torch.Tensor]) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """The Ritz vectors ``Sᵀ Q`` for the columns of ``S`` and, given ``W``, their products."""
    St = S.T.contiguous()
    return St @ Q, (St @ W if W is not None else None)


def _thick_restart(Q: torch.Tensor, W: torch.Tensor, G: torch.Tensor, m: int, k: int, which: str, *,
                   keep_extra: int) -> Tuple[int, torch.Tensor]:
    """Compress the basis to the wanted Ritz vectors plus the next ``keep_extra`` in line; returns
    the new size and the projected matrix of the compressed basis (``Sᵀ G S``)."""
    evals, evecs = torch.linalg.eigh(0.5 * (G + G.T))
    keep = min(m - 1, k + keep_extra)
    idx = torch.arange(m - 1, m - 1 - keep, -1) if which == "LA" else torch.arange(keep)
    S64 = evecs[:, idx]
    S = S64.to(Q.dtype)
    Q[:keep] = S.T @ Q[:m]
    W[:keep] = S.T @ W[:m]
    Q[keep:m] = 0
    W[keep:m] = 0
    return keep, S64.T @ G @ S64


def _dense_eigsh(op: LinearOperator, *, k: int, which: str, tol: float, converge: str, t0: float,
                 callback: Optional[Callback]) -> EigenResult:
    """k near the dimension: apply ``op`` to the identity (``dim`` products, in chunks), solve the
    symmetrised matrix densely in float64, and report true residuals against the products.

    The operator's asymmetry ‖H − Hᵀ‖₂/2 (rounding in its dtype) is added to every bound: the
    eigenvalues of the symmetrised matrix are within it of those of any symmetric operator the
    products approximate equally well.
    """
    d = int(op.dim)
    rows = []
    chunk = 64
    for a in range(0, d, chunk):
        E = torch.zeros(min(chunk, d - a), d, dtype=op.dtype, device=op.device)
        E[:, a:a + len(E)] = torch.eye(len(E), dtype=op.dtype, device=op.device)
        rows.append(op.matmat(E).double().cpu())
    Hr = torch.cat(rows)                     # row j = H e_j
    A = 0.5 * (Hr + Hr.T)
    evals, evecs = torch.linalg.eigh(A)
    order = torch.arange(d - 1, -1, -1) if which == "LA" else torch.arange(d)
    evals, evecs = evals[order], evecs[:, order]
    scale = float(evals.abs().max()) or 1.0
    Y = evecs[:, :k].T.contiguous()
    HY = Y @ Hr                              # Σ_j y_j H e_j = H y
    res = (HY - evals[:k, None] * Y).norm(dim=1)
    asym = float(torch.linalg.matrix_norm(Hr - A, ord=2)) if d > 1 else 0.0
    floor = rounding_floor(op.dtype, scale, d) + asym
    # all eigenvalues are known: the gap of each uses its exact neighbours (residual 0 beyond k)
    nb = min(k + 1, d)
    res_n = torch.cat([res, torch.zeros(nb - k, dtype=torch.float64)])
    bounds = gap_bounds(evals[:nb], res_n, k, which, floor=floor, below_known=nb < d)
    worst = float((bounds if converge == "values" else res).max()) / scale
    elapsed = time.perf_counter() - t0
    if callback is not None:
        callback(EigenProgress(d, worst, float(tol), converge, elapsed))
    converged = worst <= tol
    return EigenResult(_floats(evals[:k]), Y.to(dtype=op.dtype, device=op.device), _floats(res), converged,
                       d, which, float(tol), "dense", _floats(bounds), converge,
                       "converged" if converged else "basis", elapsed, 1)
