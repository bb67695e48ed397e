"""The one curvature verdict: λ_max → coupled weight decay → P → λ₁(P^{-1/2}(H + wd)P^{-1/2}) →
threshold → ratio → stable or not, on the objective the optimizer saw.

Every command that judges stability (``landscape hessian``, ``sharpness``, ``probe spikes``, the
training tracker, the demo) calls :func:`curvature_verdict`; the formulas per optimizer family are
those of :mod:`landscape.optim.families` and the verdict object is
:class:`~landscape.hessian.stability.Stability`.

**Which objective.** A stability verdict is about the loss the optimizer followed. For a network
with BatchNorm that is the loss with *batch statistics over mini-batches of the run's batch size*
(train mode), whatever objective the caller evaluates (``--bn-mode`` changes what reported
eigenvalues and surfaces are on, never the verdict). With running statistics (eval mode) the
Hessian has curvature in directions training never moves — a bias just before a BatchNorm has
zero gradient with batch statistics, so Adam's v is ~0 there and λ₁(P⁻¹H) blew up from 505 to
5.2·10⁷ on the digits CNN. :func:`training_objective` builds that objective (a private copy; the
caller's objective is not changed); without BatchNorm the caller's objective is the training
objective and is used as it is. Dropout stays off (as in every Objective).

Coupled L2 decay makes the operator H + wd·I (a scalar shift adds wd to λ_max exactly; per-group
decays need their own Lanczos run for non-adaptive optimizers); adaptive optimizers are judged on
λ₁(P^{-1/2}(H + wd)P^{-1/2}) with P from their state.
"""

from __future__ import annotations

from dataclasses import field, replace
from typing import Any, Callable, Dict, Optional, Union

import torch

from ..checkpoint import OptimizerState
from ..errors import LandscapeError
from ..objective import Objective
from ..optim.families import coupled_weight_decay, is_adaptive, preconditioner_diag
from ..results import internal, result
from .lanczos import Budget, EigenResult, eigsh
from .operator import HessianOperator, LinearOperator, PreconditionedOperator
from .stability import Stability, stability

Wrap = Callable[[LinearOperator, str], LinearOperator]


# ============================================================================ top eigenpair
@result()
class TopEigen:
    """λ_max, its unit eigenvector, the residual ‖Hv − λv‖, convergence, the products spent, the
    error bound on λ_max and why the run stopped (``converged``, ``max_hvps``, ``time_budget``, ...)."""

    value: float
    vector: torch.Tensor = internal()
    residual: float = 0.0
    converged: bool = False
    matvecs: int = 0
    error_bound: float = float("nan")
    stopped: str = ""

    @classmethod
    def of(cls, res: EigenResult) -> TopEigen:
        """The first pair of a Lanczos result."""
        return cls(float(res.eigenvalues[0]), res.eigenvectors[0], float(res.residuals[0]),
                   bool(res.converged), int(res.matvecs), float(res.error_bounds[0]), res.stopped)


def top_eigenpair(objective: Objective, theta: Optional[torch.Tensor] = None, *,
                  p_diag: Optional[torch.Tensor] = None, tol: float = 1e-3, seed: int = 0,
                  warm: Optional[torch.Tensor] = None) -> TopEigen:
    """Largest-algebraic eigenpair of H(θ), or of P^{-1/2} H P^{-1/2} when ``p_diag`` is given."""
    op: LinearOperator = HessianOperator(objective, theta)
    if p_diag is not None:
        op = PreconditionedOperator(op, p_diag.to(objective.device))
    return TopEigen.of(eigsh(op, k=1, which="LA", tol=tol, seed=seed, v0=warm))


# ============================================================================ the objective
def has_batchnorm(objective: Objective) -> bool:
    """Whether the objective's model has BatchNorm layers (then train and eval modes differ)."""
    return any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in objective.model.modules())


def describe_objective(objective: Objective) -> Dict[str, Any]:
    """Which loss an objective is: BatchNorm mode and the batch size that sets its statistics."""
    base = {"bn_mode": objective.bn_mode, "batchnorm": has_batchnorm(objective), "n": objective.n}
    if not base["batchnorm"]:
        return {**base, "batch_size": None,
                "description": f"mean loss over {objective.n} samples (no BatchNorm)"}
    if objective.bn_mode == "train":
        bs = _effective_batch(objective, objective.batch_size)
        return {**base, "batch_size": bs,
                "description": f"mean loss over {objective.n} samples, BatchNorm batch statistics "
                               f"over batches of {bs}"}
    return {**base, "batch_size": None,
            "description": f"mean loss over {objective.n} samples, BatchNorm running statistics"}


def training_objective(objective: Objective, *, batch_size: Optional[int] = None) -> Objective:
    """The objective the optimizer followed (module docstring): ``objective`` itself without
    BatchNorm or when it already uses batch statistics over ``batch_size``; otherwise a private
    train-mode copy over the same samples with batches of ``batch_size`` (default: the
    objective's own batch size)."""
    if not has_batchnorm(objective):
        return objective
    bs = int(batch_size or objective.batch_size)
    if objective.bn_mode == "train" and _effective_batch(objective, objective.batch_size) == _effective_batch(objective, bs):
        return objective
    model = _trainable_copy(objective)
    return Objective(model, objective.x, objective.y, loss=objective.loss_fn, output_fn=objective.output_fn,
                     batch_size=bs, bn_mode="train", device=objective.device, dtype=objective.dtype, shard=objective.shard)


def _effective_batch(objective: Objective, batch_size: int) -> int:
    """The batch size BatchNorm sees: a batch size above the sample count is one batch of them all."""
    return min(int(batch_size), objective.n)


def _trainable_copy(objective: Objective) -> torch.nn.Module:
    """The objective's model with exactly its parameter space trainable (the Objective freezes
    its private copy; the new Objective must see the same parameters in the same order)."""
    import copy

    model = copy.deepcopy(objective.model)
    names = set(objective.space.names)
    for name, p in model.named_parameters():
        p.requires_grad_(name in names)
    return model


# ============================================================================ the verdict
@result()
class CurvatureVerdict:
    """Stability of the optimizer at one point, with every number it rests on.

    ``lambda_max`` is λ_max(H) and ``lambda_max_with_decay`` λ_max(H + wd·I) on the training
    objective (``objective``); ``preconditioned`` λ₁(P^{-1/2}(H + wd)P^{-1/2}) for adaptive
    optimizers; ``stability`` the verdict (threshold, ratio, stable); ``warm`` the eigenvectors for
    warm-starting the next call (keys ``"H"`` and ``"P"``); ``training`` the objective judged on.
    """

    stability: Stability
    lambda_max: float
    lambda_max_residual: float
    lambda_max_converged: bool
    lambda_max_with_decay: float
    coupled_weight_decay: Union[None, float, str]
    preconditioned: Optional[EigenResult]
    objective: Dict[str, Any]
    hvps: int
    warm: Dict[str, torch.Tensor] = internal(default_factory=dict)
    same_objective: bool = True
    training: Optional[Objective] = internal(default=None)
    runs: Dict[str, Dict[str, Any]] = field(default_factory=dict)

    @property
    def converged(self) -> bool:
        """Whether every eigenvalue the verdict uses met the Lanczos tolerance."""
        ok = self.lambda_max_converged and all(r.get("converged", True) for r in self.runs.values())
        return bool(ok and (self.preconditioned is None or self.preconditioned.converged))

    @property
    def preconditioned_lambda_max(self) -> Optional[float]:
        return float(self.preconditioned.eigenvalues[0]) if self.preconditioned is not None else None

    @property
    def threshold(self) -> float:
        return self.stability.threshold

    @property
    def ratio(self) -> float:
        return self.stability.ratio

    @property
    def stable(self) -> Optional[bool]:
        return self.stability.stable

    def to_json(self) -> dict:
        """The stability object (optimizer, lr, threshold, sharpness, ratio, eta_lambda_max,
        stable, on, rule, notes) with the numbers it rests on and the objective they are on."""
        d = self.stability.to_json()
        pre = self.preconditioned
        d.update({
            "lambda_max": self.lambda_max,
            "lambda_max_residual": self.lambda_max_residual,
            "coupled_weight_decay": self.coupled_weight_decay if self.coupled_weight_decay is not None else 0.0,
            "lambda_max_with_decay": self.lambda_max_with_decay,
            "preconditioned_lambda_max": self.preconditioned_lambda_max,
            "preconditioned_residual": float(pre.residuals[0]) if pre is not None else None,
            "converged": self.converged,
            "runs": {k: dict(v) for k, v in self.runs.items()},
            "objective": dict(self.objective),
            "bn_mode": self.objective.get("bn_mode"),
            "hvps": self.hvps,
        })
        return d


def curvature_verdict(objective: Objective, optimizer_state: Optional[OptimizerState], *,
                      lr: Optional[float] = None, tol: float = 1e-4, seed: int = 0,
                      warm: Optional[Dict[str, torch.Tensor]] = None, theta: Optional[torch.Tensor] = None,
                      train_batch_size: Optional[int] = None, method: str = "auto",
                      top: Optional[EigenResult] = None, base: Optional[HessianOperator] = None,
                      preconditioned_k: int = 1, wrap: Optional[Wrap] = None,
                      budget: Optional[Budget] = None) -> CurvatureVerdict:
    """The stability verdict of ``optimizer_state`` at ``theta`` (default: the objective's weights).

    Args:
        objective: what the caller evaluates; the verdict is on :func:`training_objective` of it.
        optimizer_state: the checkpoint's (or live) optimizer state; None means plain SGD.
        lr: the learning rate (default: the state's).
        tol, seed: Lanczos relative residual tolerance and start-vector seed.
        warm: eigenvectors of a previous call (``CurvatureVerdict.warm``) to start from.
        train_batch_size: the run's batch size (BatchNorm statistics); None: the objective's.
        top, base: λ_max eigenpairs and the Hessian operator the caller already has for
            ``objective`` at ``theta``, reused when the training objective is ``objective``.
        preconditioned_k: how many preconditioned eigenvalues to compute (the first judges).
        wrap: ``wrap(operator, phase)`` around every operator (progress display).
        budget: products and deadline shared with the caller's other Lanczos runs
            (:class:`~landscape.hessian.lanczos.Budget`); a run it leaves no room for gives NaN
            values and ``converged: false`` (the verdict is then unknown), never an exception.
    """
    warm = dict(warm or {})
    vobj = training_objective(objective, batch_size=train_batch_size)
    same = vobj is objective
    start = vobj.hvp_count
    notes = []
    if has_batchnorm(objective) and train_batch_size is None and vobj.bn_mode == "train":
        notes.append(f"training batch size unknown: BatchNorm batch statistics over batches of "
                     f"{vobj.batch_size} (pass --train-batch-size)")
    if not same:
        notes.append("stability is judged on the training objective (BatchNorm batch statistics over "
                     f"batches of {vobj.batch_size}); the reported eigenvalues are on the evaluated one")

    def wrapped(op: LinearOperator, phase: str) -> LinearOperator:
        return wrap(op, phase) if wrap is not None else op

    h = base if (same and base is not None) else HessianOperator(vobj, theta, method=method)
    if same and top is not None:
        lam_res = top
    else:
        lam_res = eigsh(wrapped(h, "stability λ_max"), k=1, which="LA", tol=tol, seed=seed, v0=warm.get("H"),
                        budget=budget)
    lam = float(lam_res.eigenvalues[0])
    runs = {"lambda_max": _run_json(lam_res, reused=same and top is not None)}
    new_warm = {"H": lam_res.eigenvectors[:1].detach()} if lam_res.matvecs else dict(warm)
    wd = coupled_weight_decay(optimizer_state, vobj.space, dtype=vobj.dtype)
    adaptive = is_adaptive(optimizer_state)
    lam_seen = lam
    if isinstance(wd, float):
        lam_seen = lam + wd
        notes.append(f"coupled weight decay {wd:g}: stability uses λ_max(H + wd·I) = λ_max + wd")
    elif isinstance(wd, torch.Tensor) and not adaptive:
        shifted = eigsh(wrapped(h.with_shift(wd), "H + wd"), k=1, which="LA", tol=tol, seed=seed,
                        v0=lam_res.eigenvectors[:1] if lam_res.matvecs else None, budget=budget)
        lam_seen = float(shifted.eigenvalues[0])
        runs["with_decay"] = _run_json(shifted)
        notes.append("coupled weight decay differs between parameter groups: stability uses "
                     f"λ_max(H + diag(wd)) = {lam_seen:.6g}")
    pre = None
    if adaptive:
        try:
            p = preconditioner_diag(optimizer_state, vobj.space, dtype=vobj.dtype)
        except LandscapeError as exc:   # e.g. a state saved before the first step
            p = None
            notes.append(f"no preconditioner: {exc}")
        if p is not None:
            op = PreconditionedOperator(h.with_shift(wd), p.to(vobj.device))
            pre = eigsh(wrapped(op, "preconditioned"), k=max(1, int(preconditioned_k)), which="LA", tol=tol,
                        seed=seed, v0=warm.get("P"), budget=budget)
            runs["preconditioned"] = _run_json(pre)
            if pre.matvecs:
                new_warm["P"] = pre.eigenvectors[:1].detach()
            if wd is not None:
                notes.append("preconditioned eigenvalues include the coupled weight decay: λ(P^-1/2 (H + wd) P^-1/2)")
    st = stability(optimizer_state, lr=lr, lambda_max=lam_seen,
                   preconditioned_lambda_max=float(pre.eigenvalues[0]) if pre is not None else None)
    st = replace(st, notes=st.notes + tuple(notes))
    shift_json: Union[None, float, str] = (wd if isinstance(wd, float) else
                                           ("per parameter group" if isinstance(wd, torch.Tensor) else None))
    return CurvatureVerdict(st, lam, float(lam_res.residuals[0]), bool(lam_res.converged), lam_seen, shift_json,
                            pre, describe_objective(vobj), vobj.hvp_count - start, new_warm, same, vobj, runs)


def _run_json(res: EigenResult, *, reused: bool = False) -> Dict[str, Any]:
    """What one Lanczos run of the verdict did: products, convergence, why it stopped, and the
    error bound on its first eigenvalue (``reused``: the caller's top-k run, no new products)."""
    return {"matvecs": 0 if reused else int(res.matvecs), "converged": bool(res.converged),
            "stopped": res.stopped, "error_bound": float(res.error_bounds[0]), "reused": reused}
