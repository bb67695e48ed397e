"""Probe: what Adam's first update does at a high learning rate, next to SGD's, from the same start.

With PyTorch's bias correction, after one step m̂₁ = g and v̂₁ = g², so Adam's first update is

    Δθᵢ = −η · gᵢ / (|gᵢ| + ε) ≈ −η · sign(gᵢ)

for every coordinate whose gradient is ≫ ε: coordinates with a tiny gradient move as far as the
largest ones, and ‖Δ‖₂ ≤ η√d (≈ η√d_eff), while SGD (with or without heavy-ball momentum, whose
buffer starts at g) moves by η·g. First-order decrease: Adam η‖g‖₁, SGD η‖g‖₂². Per layer the
relative update is ≈ η / rms(W), which at η = 0.1 can exceed the weights themselves. Warm-up and
rectification address exactly this (Liu et al. 2019, "On the Variance of the Adaptive Learning
Rate and Beyond" (RAdam); Ma & Yarats 2019; Kalra & Barkeshli 2024).

:func:`adam_first_step` takes the same initial weights and the same first mini-batch that
``landscape train --seed S`` would use (same seeded permutation), runs real ``torch.optim.Adam``
and ``torch.optim.SGD`` on private copies of the model in train mode (exactly as the trainer does),
and measures, per learning rate: update norms against η√d and against the closed form above,
per-layer ‖ΔW‖/‖W‖, the "amplified" coordinates (|g| < 1e-3·max|g| yet |Δ| > η/2), the
evaluation-set loss before and after, dead ReLUs and BatchNorm input shifts
(:mod:`~landscape.probes.activations`), the loss along each update direction (α ∈ [0, 1.5] of the
step, with its first- and second-order model), the next ``steps`` steps of each optimizer, and
η·λ_max at the initialisation (with the Adam step-1 preconditioned sharpness λ₁(P₁⁻¹H), P₁ =
(1−β₁)(|g|+ε), read from the optimizer's real state through :mod:`landscape.optim.families`).

Mechanisms: for Adam and SGD, right after step 1 and at the end of the ``steps``, the softmax
saturation, the full-set gradient norm, the logit scale, the between-sample share of the logits'
variance (:func:`~landscape.probes.activations.output_stats`), dead units with BatchNorm in eval
mode, and for Adam the first step re-applied to only the small-gradient coordinates and to only
the large ones (:func:`amplified_experiment`). :mod:`~landscape.probes.first_step_causes` turns
them into ``causes`` with verdicts and a one-sentence ``mechanism`` per run. With several
``losses`` (``--compare-losses``) every measurement is repeated per loss convention, so the
study's Adam/SGD × CE/MSE comparison is one call; ``runs`` then holds one entry per (loss, lr).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

import torch
from torch import nn

from ..errors import LandscapeError, OptionError
from ..hessian.stability import stability, synthetic_state
from ..hessian.verdict import TopEigen, describe_objective, training_objective
from ..hessian.verdict import top_eigenpair as top_eigen
from ..losses import get_loss
from ..objective import Evaluation, Objective
from ..progress import progress
from ..results import result
from ..session import Session
from .activations import ActivationStats, OutputStats, activation_stats, bn_shift, output_stats
from .first_step_causes import adam_causes, mechanism

AMPLIFY_GRAD = 1e-3  # |g| below this fraction of max|g| counts as a "tiny" gradient
AMPLIFY_MOVE = 0.5  # ... and a move above this fraction of η counts as "amplified"
SMALL_GRAD = 1e-2  # amplified-coordinates experiment: the "small-gradient" coordinates


@dataclass(frozen=True)
class FirstStepConfig:
    """Hyper-parameters of the probe (defaults: PyTorch's Adam, batch 128, 20 follow-up steps)."""

    lrs: Tuple[float, ...] = (0.1,)
    batch_size: int = 128
    steps: int = 20
    betas: Tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    momentum: float = 0.0
    seed: int = 0
    alphas: Tuple[float, ...] = tuple(round(0.1 * i, 10) for i in range(16))
    hessian: bool = True
    tol: float = 1e-3
    others: Tuple[str, ...] = ()  # further families (landscape.optim) measured like Adam and SGD
    losses: Tuple[str, ...] = ()  # loss conventions to probe (empty: the session's loss)
    small_grad: float = SMALL_GRAD  # amplified-coordinates experiment: "small" is |g| < this · max|g|

    def to_json(self) -> dict:
        return {"lrs": list(self.lrs), "batch_size": self.batch_size, "steps": self.steps,
                "betas": list(self.betas), "eps": self.eps, "momentum": self.momentum,
                "seed": self.seed, "alphas": list(self.alphas), "hessian": self.hessian, "tol": self.tol,
                "others": list(self.others), "losses": list(self.losses), "small_grad": self.small_grad}


@result()
@dataclass(frozen=True)
class StepReport:
    """One optimizer's first update from the shared start, and its next steps."""

    optimizer: str
    lr: float
    update_norm: float
    bound: Optional[float]
    closed_form_error: float
    loss_before: float
    loss_after: float
    acc_before: float
    acc_after: float
    per_layer: Tuple[dict, ...]
    amplified_fraction: float
    dead_relu_fraction: float
    bn_shift: Tuple[dict, ...]
    first_order_decrease: float
    slice: dict
    curve: dict
    recovered: bool
    clipped_fraction: Optional[float] = None  # AdaBound/AMSBound: coordinates capped by the step-1 bound
    saturation: Optional[dict] = None       # {after_step, end}: share of samples with max softmax p > 1 − 1e-4
    grad_norm: Optional[dict] = None        # {before, after, end}: full evaluation-set gradient norm
    logit_scale: Optional[dict] = None      # {before, after, end}: {max, rms} of |logit|
    output_collapse: Optional[dict] = None  # {after_step, end}: between-sample share of the logits' variance
    dead_units: Optional[dict] = None       # {after_step, end}: {overall, layers}, BatchNorm in eval mode
    amplified_experiment: Optional[dict] = None  # Adam only: the first step on small / large coordinates


@result()
@dataclass(frozen=True)
class FirstStepRun:
    lr: float
    adam: StepReport
    sgd: StepReport
    norm_ratio: float
    eta_lambda_max: Optional[float]
    sgd_stability: Optional[dict]
    adam_step1_preconditioned: Optional[dict]
    verdict: str
    others: Tuple[StepReport, ...] = ()  # the --optimizer families other than adam and sgd
    loss: str = ""                       # the loss convention of this run
    causes: Tuple[dict, ...] = ()        # [{name, supported, evidence, numbers}] (first_step_causes)
    mechanism: str = ""                  # one sentence naming the supported causes


@result(kind="adam_first_step")
@dataclass(frozen=True)
class AdamFirstStepResult:
    """Everything the probe measured (``runs``: one entry per learning rate)."""

    n_params: int
    config: FirstStepConfig
    gradient: dict
    dead_relu_fraction_init: float
    relu_sites: int
    bn_sites: int
    lambda_max: Optional[dict]
    adam_step1_preconditioned_sharpness: Optional[dict]
    runs: Tuple[FirstStepRun, ...]
    provenance: dict = field(default_factory=dict)
    by_loss: dict = field(default_factory=dict)  # per loss: gradient, λ_max, λ₁(P₁⁻¹H), start, dead units

    def summary(self) -> str:
        lines = [f"adam-first-step: {self.n_params:,} parameters, batch {self.config.batch_size}, "
                 f"{self.config.steps} follow-up steps"]
        b1 = self.config.betas[0]
        for loss, d in (self.by_loss or {"": {"gradient": self.gradient, "lambda_max": self.lambda_max,
                                                "adam_step1_preconditioned_sharpness":
                                                    self.adam_step1_preconditioned_sharpness}}).items():
            g = d["gradient"]
            head = f"{loss}: " if loss else ""
            lines.append(f"{head}first-batch ‖g‖ = {g['norm']:.3g}, max|g| = {g['max_abs']:.3g}, "
                         f"{g['tiny_fraction']:.1%} of |g| < 1e-3·max|g|")
            lam, pre = d.get("lambda_max"), d.get("adam_step1_preconditioned_sharpness")
            if lam is not None:
                lines.append(f"{head}λ_max at init = {lam['value']:.4g} (residual {lam['residual']:.2g})")
            if pre is not None:
                lines.append(f"{head}Adam's step-1 preconditioned sharpness λ₁(P₁⁻¹H) = {pre['value']:.4g} "
                             f"(residual {pre['residual']:.2g}); threshold (2+2β₁)/((1−β₁)η) = "
                             + ", ".join(f"{(2 + 2 * b1) / ((1 - b1) * lr):.4g} at lr {lr:g}" for lr in self.config.lrs))
        for r in self.runs:
            lines.append(f"lr {r.lr:g}, {r.loss}: {r.mechanism}")
            lines.append(f"  details: {r.verdict}")
            for c in r.causes:
                lines.append(f"  {c['name']}: {'supported' if c['supported'] else 'not supported'} — {c['evidence']}")
        return "\n".join(lines)


# ---------------------------------------------------------------- mini-batches
def first_batches(n: int, *, batch_size: int, steps: int, seed: int) -> List[torch.Tensor]:
    """The index sets of the first ``steps`` mini-batches that ``landscape train --seed`` draws:
    one ``torch.randperm`` per epoch from ``torch.Generator().manual_seed(seed)``."""
    gen = torch.Generator().manual_seed(seed)
    out: List[torch.Tensor] = []
    while len(out) < steps:
        perm = torch.randperm(n, generator=gen)
        out.extend(perm[a:a + batch_size] for a in range(0, n, batch_size))
    return out[:steps]


# ------------------------------------------------------------ model helpers
def _flat(obj: Objective, model: nn.Module, *, grads: bool = False) -> torch.Tensor:
    named = dict(model.named_parameters())
    if grads:
        tensors = {n: named[n].grad for n in obj.space.names if named[n].grad is not None}
        if not tensors:
            return torch.zeros(obj.dim, dtype=obj.dtype, device=obj.device)
    else:
        tensors = {n: named[n].detach() for n in obj.space.names}
    return obj.space.flatten(tensors).to(device=obj.device, dtype=obj.dtype)


def _has_bn_buffers(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None
               for m in model.modules())


def _with_loss(obj: Objective, model: nn.Module, loss: str) -> Objective:
    """``obj``'s evaluation set, batches and BatchNorm mode under another loss convention."""
    if loss == obj.loss_name:
        return obj
    return Objective(model, obj.x, obj.y, loss=loss, output_fn=obj.output_fn, batch_size=obj.batch_size,
                     bn_mode=obj.bn_mode, device=obj.device, dtype=obj.dtype, shard=obj.shard)


def _objective_for(obj: Objective, model: nn.Module) -> Objective:
    """An Objective over ``obj``'s set for a trained copy: itself when BN buffers play no part,
    else a new one that holds the copy's running statistics (``bn_mode="eval"``)."""
    if obj.bn_mode == "train" or not _has_bn_buffers(model):
        return obj
    return Objective(model, obj.x, obj.y, loss=obj.loss_fn, output_fn=obj.output_fn, batch_size=obj.batch_size,
                     bn_mode="eval", device=obj.device, dtype=obj.dtype, shard=obj.shard)


def _eval_mode(obj: Objective, model: nn.Module) -> Tuple[Objective, torch.Tensor]:
    """``model`` over ``obj``'s set with BatchNorm in eval mode (its running statistics), and its θ."""
    if not _has_bn_buffers(model) or obj.bn_mode == "eval":
        ev = _objective_for(obj, model)
        return ev, _flat(obj, model)
    ev = Objective(model, obj.x, obj.y, loss=obj.loss_fn, output_fn=obj.output_fn, batch_size=obj.batch_size,
                   bn_mode="eval", device=obj.device, dtype=obj.dtype, shard=obj.shard)
    return ev, ev.theta0


def _dead_units(obj: Objective, model: nn.Module) -> dict:
    """Units never active on the whole evaluation set, per ReLU site and overall (BatchNorm eval)."""
    ev, theta = _eval_mode(obj, model)
    return {**activation_stats(ev, theta).dead_units(), "bn_mode": "eval"}


def _evaluate(obj: Objective, model: nn.Module) -> Evaluation:
    return _objective_for(obj, model).evaluate(_flat(obj, model))


def _make_optimizer(name: str, params: Sequence[nn.Parameter], lr: float, cfg: FirstStepConfig) -> torch.optim.Optimizer:
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, betas=cfg.betas, eps=cfg.eps)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=cfg.momentum)
    from ..optim import OptimizerConfig, make_optimizer

    return make_optimizer(params, OptimizerConfig(name=name, lr=lr, betas=cfg.betas, eps=cfg.eps,
                                                  momentum=cfg.momentum))


@dataclass
class _Trajectory:
    grad: torch.Tensor
    theta1: torch.Tensor
    obj1: Objective
    losses: List[float]
    accs: List[float]
    batch_losses: List[float]
    model1: Optional[nn.Module] = None     # the copy right after step 1
    model_end: Optional[nn.Module] = None  # ... and after the last step
    theta_end: Optional[torch.Tensor] = None
    obj_end: Optional[Objective] = None
    state1: Optional[dict] = None          # the optimizer's state_dict right after step 1


def _run_optimizer(session: Session, name: str, lr: float, batches: List[torch.Tensor],
                   cfg: FirstStepConfig, start: Evaluation, *, obj: Optional[Objective] = None) -> _Trajectory:
    """Real torch.optim steps on a private copy in train mode, as ``landscape train`` takes them
    (on ``obj``'s data and loss; default the session's training objective)."""
    obj = obj or session.train
    model = copy.deepcopy(session.model).to(device=obj.device, dtype=obj.dtype)
    model.train()
    opt = _make_optimizer(name, [p for p in model.parameters() if p.requires_grad], lr, cfg)
    losses, accs, batch_losses = [start.loss], [start.acc], []
    grad = theta1 = obj1 = model1 = state1 = None
    for t, idx in enumerate(batches):
        xb, yb = obj.x[idx.to(obj.device)], obj.y[idx.to(obj.device)]
        opt.zero_grad(set_to_none=True)
        loss = obj.loss_fn.mean(obj.output_fn(model(xb)), yb)
        loss.backward()
        if t == 0:
            grad = _flat(obj, model, grads=True).clone()
        opt.step()
        batch_losses.append(loss.detach())
        if t == 0:
            theta1 = _flat(obj, model).clone()
            model1 = copy.deepcopy(model)
            obj1 = _objective_for(obj, model1)
            state1 = copy.deepcopy(opt.state_dict())
        ev = _evaluate(obj, model)
        losses.append(ev.loss)
        accs.append(ev.acc)
    return _Trajectory(grad, theta1, obj1, losses, accs, [float(b) for b in batch_losses], model1=model1,
                       model_end=model, theta_end=_flat(obj, model).clone(), obj_end=_objective_for(obj, model),
                       state1=state1)


# ------------------------------------------------------------- measurements
def per_layer_updates(obj: Objective, theta0: torch.Tensor, delta: torch.Tensor) -> Tuple[dict, ...]:
    """‖ΔW‖, ‖W‖ and ‖ΔW‖/‖W‖ per parameter tensor (inf where ‖W‖ = 0, e.g. zero-init biases)."""
    rows = []
    for (name, sl), kind in zip(obj.space.blocks().items(), obj.space.kinds):
        w, d = float(theta0[sl].norm()), float(delta[sl].norm())
        rows.append({"name": name, "kind": kind, "numel": sl.stop - sl.start, "weight_norm": w,
                     "update_norm": d, "relative": d / w if w > 0 else (0.0 if d == 0 else math.inf),
                     "rms_weight": w / math.sqrt(max(1, sl.stop - sl.start))})
    return tuple(rows)


def amplified_fraction(grad: torch.Tensor, delta: torch.Tensor, lr: float) -> float:
    """Fraction of coordinates with |g| < 1e-3·max|g| that nonetheless moved by more than η/2."""
    tiny = grad.abs() < AMPLIFY_GRAD * grad.abs().max()
    moved = delta.abs() > AMPLIFY_MOVE * lr
    return float((tiny & moved).double().mean())


def _along(obj: Objective, theta0: torch.Tensor, delta: torch.Tensor, alphas: Sequence[float],
           full_grad: torch.Tensor) -> dict:
    """Train loss at θ₀ + αΔ, and the second-order model L₀ + α gᵀΔ + ½α² ΔᵀHΔ."""
    losses = [obj.loss(theta0 + a * delta) for a in alphas]
    slope = float(full_grad @ delta)
    curv = float(delta @ obj.hvp(delta, theta0))
    nrm2 = float(delta @ delta)
    return {"alpha": list(alphas), "loss": losses, "slope": slope, "curvature": curv,
            "directional_curvature": curv / nrm2 if nrm2 > 0 else float("nan"),
            "predicted_change": slope + 0.5 * curv, "actual_change": obj.loss(theta0 + delta) - losses[0]}


@dataclass(frozen=True)
class _Start:
    """What every run of one loss shares: the start's evaluation, gradient and activation numbers."""

    obj: Objective
    eval: Evaluation
    stats: ActivationStats
    full_grad: torch.Tensor
    outputs: OutputStats
    dead: dict


def _start(session: Session, obj: Objective) -> _Start:
    theta0 = obj.theta0
    return _Start(obj, obj.evaluate(theta0), activation_stats(obj, theta0), obj.grad(theta0),
                  output_stats(obj, theta0), _dead_units(obj, session.model))


def _scale(o: OutputStats) -> dict:
    return {"max": o.max_abs_logit, "rms": o.rms_logit}


def amplified_experiment(obj: Objective, theta0: torch.Tensor, grad: torch.Tensor, delta: torch.Tensor,
                         *, threshold: float, loss_before: float) -> dict:
    """The first step Δ re-applied to only the coordinates with |g| < threshold·max|g| ("small"),
    and to only the others ("large"), on the objective right after the step (so BatchNorm running
    statistics, if used, are those the step produced): the loss change of each, deterministic."""
    small = grad.abs() < threshold * grad.abs().max()
    d_small = torch.where(small, delta, torch.zeros_like(delta))
    d_large = delta - d_small
    losses = [obj.loss(theta0 + d) for d in (delta, d_small, d_large)]
    return {"threshold": threshold, "small_fraction": float(small.double().mean()),
            "norm_small_only": float(d_small.norm()), "norm_large_only": float(d_large.norm()),
            "loss_before": loss_before, "loss_full": losses[0], "loss_small_only": losses[1],
            "loss_large_only": losses[2], "rise_full": losses[0] - loss_before,
            "rise_small_only": losses[1] - loss_before, "rise_large_only": losses[2] - loss_before}


def _step_report(session: Session, name: str, lr: float, traj: _Trajectory, theta0: torch.Tensor,
                 st: _Start, cfg: FirstStepConfig) -> StepReport:
    obj = st.obj
    start, full_grad = st.eval, st.full_grad
    delta = traj.theta1 - theta0
    g = traj.grad
    clipped = None
    if name == "adam":
        expected = -lr * g / (g.abs() + cfg.eps)
        bound: Optional[float] = lr * math.sqrt(obj.dim)
        first_order = lr * float(g.abs().sum())
    elif name == "sgd":
        expected = -lr * g
        bound = None
        first_order = lr * float(g @ g)
    else:  # any other family: its closed-form first step (landscape.optim.first_step)
        from ..optim import OptimizerConfig
        from ..optim.first_step import first_step_closed_form

        fs = first_step_closed_form(OptimizerConfig(name=name, lr=lr, betas=cfg.betas, eps=cfg.eps,
                                                    momentum=cfg.momentum), g, theta0)
        expected, clipped, bound = fs.delta, fs.clipped, None
        first_order = -float(g @ expected)
    stats1 = activation_stats(traj.obj1, traj.theta1)
    out1 = output_stats(traj.obj1, traj.theta1)
    out_end = output_stats(traj.obj_end, traj.theta_end)
    grads = torch.stack([full_grad.norm(), traj.obj1.grad(traj.theta1).norm(),
                         traj.obj_end.grad(traj.theta_end).norm()]).tolist()
    along = _along(obj, theta0, delta, cfg.alphas, full_grad)
    along["eta_lambda_along_step"] = lr * along["directional_curvature"]
    amp = (amplified_experiment(traj.obj1, theta0, g, delta, threshold=cfg.small_grad, loss_before=start.loss)
           if name == "adam" else None)
    return StepReport(
        optimizer=name, lr=lr, update_norm=float(delta.norm()), bound=bound,
        closed_form_error=float((delta - expected).abs().max()) / lr,
        loss_before=start.loss, loss_after=traj.losses[1], acc_before=start.acc, acc_after=traj.accs[1],
        per_layer=per_layer_updates(obj, theta0, delta),
        amplified_fraction=amplified_fraction(g, delta, lr),
        dead_relu_fraction=stats1.dead_relu_fraction,
        bn_shift=tuple(bn_shift(st.stats, stats1)),
        first_order_decrease=first_order,
        slice=along,
        curve={"step": list(range(len(traj.losses))), "loss": traj.losses, "acc": traj.accs,
               "batch_loss": [float("nan")] + traj.batch_losses},
        recovered=_recovered(traj, start, obj),
        clipped_fraction=clipped,
        saturation={"after_step": out1.saturation, "end": out_end.saturation},
        grad_norm={"before": grads[0], "after": grads[1], "end": grads[2]},
        logit_scale={"before": _scale(st.outputs), "after": _scale(out1), "end": _scale(out_end)},
        output_collapse={"after_step": out1.between_sample_share, "end": out_end.between_sample_share},
        dead_units={"after_step": _dead_units(obj, traj.model1), "end": _dead_units(obj, traj.model_end)},
        amplified_experiment=amp,
    )


def _recovered(traj: _Trajectory, start: Evaluation, obj: Objective) -> bool:
    """Trains again: after the steps the loss is below its starting value and the accuracy is at
    least 5 points above both its starting value and the majority-class rate (a constant output
    can lower an MSE loss without learning anything)."""
    majority = float(torch.bincount(obj.y).max()) / obj.n
    return bool(traj.losses[-1] < start.loss and traj.accs[-1] >= max(start.acc, majority) + 0.05)


def _verdict(adam: StepReport, sgd: StepReport, ratio: float, eta_lam: Optional[float],
             sgd_stab: Optional[dict], steps: int) -> str:
    parts = [f"Adam step is {ratio:.3g}× SGD's (‖Δ‖ {adam.update_norm:.3g} vs {sgd.update_norm:.3g}; "
             f"η√d = {adam.bound:.3g})",
             f"{adam.amplified_fraction:.0%} of coordinates amplified",
             f"loss {adam.loss_before:.3g} → {adam.loss_after:.3g} (SGD → {sgd.loss_after:.3g})"]
    max_rel = max((r["relative"] for r in adam.per_layer if r["kind"] == "weight"), default=float("nan"))
    parts.append(f"largest weight ‖ΔW‖/‖W‖ {max_rel:.3g}")
    if not math.isnan(adam.dead_relu_fraction):
        parts.append(f"dead ReLUs after Adam step {adam.dead_relu_fraction:.0%} (SGD {sgd.dead_relu_fraction:.0%})")
    final_a, final_s = adam.curve["loss"][-1], sgd.curve["loss"][-1]
    acc_a, acc_s = adam.curve["acc"][-1], sgd.curve["acc"][-1]
    parts.append(("Adam recovers" if adam.recovered else "Adam does not recover")
                 + f" in {steps} steps (loss {final_a:.3g}, acc {acc_a:.2f}; "
                 + f"SGD {final_s:.3g}, acc {acc_s:.2f}{'' if sgd.recovered else ', not training either'})")
    if eta_lam is not None and sgd_stab is not None:
        parts.append(f"η·λ_max = {eta_lam:.3g} at init (SGD stable below {sgd_stab['threshold'] * sgd.lr:.3g})")
    return "; ".join(parts)


def _other_verdict(o: StepReport, sgd: StepReport, steps: int) -> str:
    ratio = o.update_norm / sgd.update_norm if sgd.update_norm > 0 else math.inf
    capped = (f", {o.clipped_fraction:.0%} of coordinates capped by its step-1 upper bound"
              if o.clipped_fraction is not None else "")
    return (f"; {o.optimizer}: step {ratio:.3g}× SGD's (‖Δ‖ {o.update_norm:.3g}){capped}, "
            f"loss → {o.loss_after:.3g}, {'recovers' if o.recovered else 'does not recover'} in {steps} steps "
            f"(loss {o.curve['loss'][-1]:.3g}, acc {o.curve['acc'][-1]:.2f})")


# ------------------------------------------------------------------- probe
def _step1_preconditioner(obj: Objective, state1: dict) -> torch.Tensor:
    """Adam's P right after step 1, from the optimizer's real state through the one definition
    (:func:`landscape.optim.families.preconditioner_diag`): (1 − β₁)(|g| + ε)."""
    from ..checkpoint import map_optimizer_state
    from ..optim.families import preconditioner_diag

    return preconditioner_diag(map_optimizer_state(state1, obj.space, "adam"), obj.space)


def _majority(obj: Objective) -> float:
    return float(torch.bincount(obj.y).max()) / obj.n


def _gradient_summary(g: torch.Tensor, full_grad: torch.Tensor, eps: float) -> dict:
    gmax = float(g.abs().max())
    return {"norm": float(g.norm()), "max_abs": gmax, "l1": float(g.abs().sum()),
            "tiny_fraction": float((g.abs() < AMPLIFY_GRAD * gmax).double().mean()),
            "below_eps_fraction": float((g.abs() < eps).double().mean()),
            "full_set_norm": float(full_grad.norm())}


def adam_first_step(session: Session, cfg: FirstStepConfig) -> AdamFirstStepResult:
    """Run the probe (see the module docstring) from ``session``'s weights and training set,
    under each loss of ``cfg.losses`` (default: the session's) and each learning rate."""
    if session.train is None:
        raise OptionError("adam-first-step needs training data ({data})")
    if not cfg.lrs:
        raise OptionError("give at least one {lrs}")
    if cfg.batch_size < 1 or cfg.steps < 1:
        raise OptionError("{batch_size} and {steps} must be positive")
    bad = [lr for lr in cfg.lrs if not lr > 0]
    if bad:
        raise OptionError("{lrs} must be positive (got {value})", value=bad[0])
    if not 0 < cfg.small_grad < 1:
        raise LandscapeError(f"the small-gradient threshold must be in (0, 1) (got {cfg.small_grad})")
    for name in cfg.losses:
        if name != session.train.loss_name:
            get_loss(name)  # a loss convention by name (the session's own loss may be any criterion)
    losses = tuple(dict.fromkeys(cfg.losses)) or (session.train.loss_name,)
    base = session.train
    theta0 = base.theta0
    batches = first_batches(base.n, batch_size=cfg.batch_size, steps=cfg.steps, seed=cfg.seed)
    bar = progress(len(losses) * (2 + 2 * len(cfg.lrs)), desc="adam-first-step")
    runs: List[FirstStepRun] = []
    by_loss, starts = {}, []
    for loss in losses:
        st = _start(session, _with_loss(base, session.model, loss))
        starts.append(st)
        obj = st.obj
        bar.update(1)
        # stability numbers on the objective the optimizer saw: BatchNorm batch statistics over the
        # training batch size, whatever --bn-mode the evaluations use (hessian.verdict)
        tobj = training_objective(obj, batch_size=cfg.batch_size)
        lam: Optional[TopEigen] = top_eigen(tobj, theta0, tol=cfg.tol, seed=cfg.seed) if cfg.hessian else None
        bar.update(1)
        pre: Optional[TopEigen] = None
        first_grad = None
        majority = _majority(obj)
        for lr in cfg.lrs:
            ta = _run_optimizer(session, "adam", lr, batches, cfg, st.eval, obj=obj)
            bar.update(1)
            ts = _run_optimizer(session, "sgd", lr, batches, cfg, st.eval, obj=obj)
            bar.update(1)
            first_grad = ta.grad
            adam = _step_report(session, "adam", lr, ta, theta0, st, cfg)
            sgd = _step_report(session, "sgd", lr, ts, theta0, st, cfg)
            if cfg.hessian and pre is None:  # P after step 1 does not depend on η
                pre = top_eigen(tobj, theta0, p_diag=_step1_preconditioner(obj, ta.state1), tol=cfg.tol,
                                seed=cfg.seed)
            eta_lam = lr * lam.value if lam is not None else None
            sgd_stab = (stability(synthetic_state("sgd", lr=lr, momentum=cfg.momentum), lambda_max=lam.value).to_json()
                        if lam is not None else None)
            adam_pre = None
            if pre is not None:
                stb = stability(synthetic_state("adam", lr=lr, betas=cfg.betas, eps=cfg.eps), lambda_max=lam.value,
                                preconditioned_lambda_max=pre.value)
                adam_pre = {"sharpness": pre.value, "threshold": stb.threshold, "ratio": stb.ratio, "rule": stb.rule}
            ratio = adam.update_norm / sgd.update_norm if sgd.update_norm > 0 else math.inf
            others = tuple(_step_report(session, n, lr, _run_optimizer(session, n, lr, batches, cfg, st.eval, obj=obj),
                                        theta0, st, cfg) for n in cfg.others)
            causes = tuple(adam_causes(adam, sgd, steps=cfg.steps, majority=majority,
                                       collapse_before=st.outputs.between_sample_share, dead_init=st.dead))
            sentence = mechanism(causes, adam, lr=lr, loss=loss, steps=cfg.steps)
            verdict = _verdict(adam, sgd, ratio, eta_lam, sgd_stab, cfg.steps) + "".join(
                _other_verdict(o, sgd, cfg.steps) for o in others)
            runs.append(FirstStepRun(lr, adam, sgd, ratio, eta_lam, sgd_stab, adam_pre, verdict, others,
                                     loss=loss, causes=causes, mechanism=sentence))
        by_loss[loss] = {
            "gradient": _gradient_summary(first_grad, st.full_grad, cfg.eps),
            "loss_before": st.eval.loss, "acc_before": st.eval.acc, "majority": majority,
            "lambda_max": lam.to_json() if lam is not None else None,
            "adam_step1_preconditioned_sharpness": pre.to_json() if pre is not None else None,
            "stability_objective": describe_objective(tobj),
            "saturation": st.outputs.saturation, "logit_scale": _scale(st.outputs),
            "output_collapse": st.outputs.between_sample_share, "dead_units": st.dead,
        }
    bar.close()
    first = by_loss[losses[0]]
    stats0 = starts[0].stats
    return AdamFirstStepResult(
        n_params=base.dim, config=cfg, gradient=first["gradient"],
        dead_relu_fraction_init=stats0.dead_relu_fraction, relu_sites=len(stats0.relu_sites),
        bn_sites=len(stats0.bn_sites), lambda_max=first["lambda_max"],
        adam_step1_preconditioned_sharpness=first["adam_step1_preconditioned_sharpness"],
        runs=tuple(runs), provenance={**session.provenance(), "bn_mode": base.bn_mode}, by_loss=by_loss,
    )
