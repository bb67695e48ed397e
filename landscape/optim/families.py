"""Every optimizer family, defined once: how to recognise it, its preconditioner, its frozen-P update,
its stability threshold, its first step, and how ``landscape train`` builds it.

Everything else (the Hessian engine's preconditioned operator and stability verdict, the frozen-P
models, the first-step probe, the reports) reads the :class:`Family` records in :data:`FAMILIES`.

**The model.** Every family takes steps θ_{t+1} = θ_t − η P_t⁻¹ u_t with P_t a positive diagonal
(the identity for SGD) and u_t a *momentum term* built from gradients by one of four recursions:

    none        u_t = g_t
    heavy_ball  u_t = β u_{t−1} + (1 − d) g_t          (torch SGD momentum, dampening d)
    ema         u_t = β u_{t−1} + (1 − β) g_t          (Adam's m_t)
    nesterov    u_t = g_t + β(β u_{t−1} + g_t)         (torch SGD nesterov=True)

Freeze P at its value at the checkpoint and take a quadratic L = ½θᵀHθ (g = Hθ). With z = P^{1/2}θ
the recursion acts on z through A = P^{−1/2} H P^{−1/2}, whose eigenvalues are those of P⁻¹H; on
an eigenvector with eigenvalue λ a step multiplies the state by the roots of

    none        z − (1 − ηλ)                                  → stable iff ηλ < 2
    heavy_ball  z² − (1 + β − (1 − d)ηλ) z + β                → iff (1 − d)ηλ < 2 + 2β
    ema         z² − (1 + β − (1 − β)ηλ) z + β                → iff ηλ < (2 + 2β)/(1 − β)
    nesterov    z² − (1 + β − (1 + β)ηλ) z + β(1 − ηλ)        → iff ηλ < (2 + 2β)/(1 + 2β)

(for 0 ≤ β < 1 the first root to leave the unit circle does so at z = −1; substituting z = −1
gives the thresholds). So each family diverges along the top eigenvector of P⁻¹H exactly when
λ₁(P⁻¹H) > c/η: **threshold = c/η on λ₁(P⁻¹H)** (on λ_max(H) for SGD). Sources: Cohen et al. 2021
(2/η, heavy ball (2+2β)/η) and 2022 (adaptive methods, 38/η at β₁ = 0.9).

**Weight decay.** Coupled L2 (torch ``weight_decay`` of every family but AdamW, and of Adam/RAdam/
NAdam unless ``decoupled_weight_decay``) adds wd·θ to the gradient: the operator is H + wd·I
(:func:`coupled_weight_decay`). Decoupled decay θ ← (1 − η·wd)θ acts outside P and the EMA: the
ema recursion becomes z² − (1 + β − η·wd − (1 − β)ηλ)z + β(1 − η·wd), whose z = −1 root gives
c = (1 + β)(2 − η·wd)/(1 − β) (``none``: c = 2 − η·wd). It is exact when P ∝ I; with a
non-uniform P the decay does not share P⁻¹H's eigenvectors and this is the per-mode estimate.
Every family with decoupled decay (AdamW, RAdam or Adam with ``decoupled_weight_decay``) uses it.

**P per family** (torch.optim update rules; t = the state's step, buffers as stored *after* step t,
so P reproduces the step that produced the checkpoint exactly):

- adam / adamw / amsgrad / swats (Adam phase): P = (1 − β₁ᵗ)(√(v/(1 − β₂ᵗ)) + ε),
  v = ``exp_avg_sq`` (AMSGrad: ``max_exp_avg_sq``); u = m (ema, β₁).
- adamax: P = (1 − β₁ᵗ)·``exp_inf`` (torch already adds ε inside ``exp_inf``); u = m (ema, β₁).
- radam: rectified phase (ρ_t > 5): P = (1 − β₁ᵗ)(√v + ε)/(r_t √(1 − β₂ᵗ)) with r_t the
  rectification term; before it P = (1 − β₁ᵗ) (SGD with bias-corrected EMA momentum); u = m.
- rmsprop: P = √v + ε, centred √(v − ḡ²) + ε; with momentum torch keeps b = βb + g/P, i.e.
  b = P⁻¹u for the heavy-ball u = βu + g when P is frozen (recursion heavy_ball, d = 0).
- adagrad: P = √(Σg²) + ε; η = lr/(1 + (t − 1)·lr_decay), the rate of step t.
- adadelta: P = √(s + ε)/√(a + ε) (``square_avg``, ``acc_delta``). torch uses the *previous*
  step's ``acc_delta``; a checkpoint holds the current one (an O(1 − ρ) approximation, noted).
- adabound / amsbound: P = η/η̂_t with η̂_t the clipped per-coordinate rate
  (:func:`landscape.optim.adabound.clipped_rate`); u = m (ema, β₁).
- nadam: recognised, adaptive, but no frozen-P model (its momentum schedule μ_t changes the
  recursion every step): analyses say so instead of giving a threshold.

Parameter groups: hyper-parameters are read per group; a group whose learning rate differs from
the first group's η is folded into P (P_i·η/η_i), so one η and one P describe the step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, Mapping, Optional, Tuple, Union

import torch

from ..errors import LandscapeError, SpecError
from .adabound import AdaBound, bounds, clipped_rate
from .switching import SWATS

if TYPE_CHECKING:  # pragma: no cover - types only (checkpoint imports this module)
    from ..checkpoint import OptimizerState
    from ..params import ParamSpace

RECURSIONS = ("none", "heavy_ball", "ema", "nesterov")
Group = Mapping[str, Any]
Buffers = Mapping[str, torch.Tensor]


# ============================================================================ the record
@dataclass(frozen=True)
class Dynamics:
    """The frozen-P recursion of a param group: its kind, momentum β and dampening d."""

    recursion: str
    momentum: float = 0.0
    dampening: float = 0.0


@dataclass(frozen=True)
class FirstStep:
    """Δθ₁ from a fresh state; ``clipped``: AdaBound/AMSBound's fraction capped by η_u(1)."""

    delta: torch.Tensor
    clipped: Optional[float] = None


@dataclass(frozen=True)
class Family:
    """One optimizer family (see the module docstring for the formulas).

    ``classes``: torch class names of live optimizers; ``marks``: saved-state buffer names and
    ``group_marks``: param-group keys (all present) that identify it in a checkpoint;
    ``p_param(group, buffers, name)``: its diagonal P for one parameter (None: identity for a
    non-adaptive family, *unsupported* for an adaptive one); ``momentum_key``: the buffer holding
    u (None: u = g); ``dynamics(group)``: the frozen-P recursion; ``rate(group, t)``: the
    effective η at step t when it is not ``lr``; ``first_step(cfg, g, θ₀)``: Δθ₁ with coupled decay
    already in g; ``build(params, cfg)``: the optimizer ``landscape train`` uses.
    """

    name: str
    adaptive: bool
    dynamics: Callable[[Group], Dynamics]
    classes: Tuple[str, ...] = ()
    marks: Tuple[str, ...] = ()
    group_marks: Tuple[str, ...] = ()
    p_param: Optional[Callable[[Group, Buffers, str], torch.Tensor]] = None
    momentum_key: Optional[str] = None
    decoupled: bool = False
    momentum_symbol: str = "β"
    rate: Optional[Callable[[Group, int, float], float]] = None
    first_step: Optional[Callable[[Any, torch.Tensor, Optional[torch.Tensor]], FirstStep]] = None
    build: Optional[Callable[[list, Any], torch.optim.Optimizer]] = None
    describe: Optional[Callable[[OptimizerState], Tuple[str, ...]]] = None

    @property
    def supported(self) -> bool:
        """Whether a frozen-P model (P and threshold) exists for this family."""
        return not self.adaptive or self.p_param is not None


# ============================================================================ helpers
def _eps(group: Group, default: float) -> float:
    value = group.get("eps")
    return float(value) if value is not None else default


def _betas(group: Group) -> Tuple[float, float]:
    b = group.get("betas", (0.9, 0.999))
    return float(b[0]), float(b[1])


def _step_of(bufs: Buffers, name: str) -> int:
    if "step" not in bufs:
        raise LandscapeError(f"optimizer state for {name} records no step count")
    t = int(float(bufs["step"]))
    if t < 1:
        raise LandscapeError(f"optimizer state for {name} has step {t}; no step taken yet")
    return t


def _need(bufs: Buffers, key: str, name: str) -> torch.Tensor:
    if key not in bufs:
        raise LandscapeError(f"optimizer state for {name} lacks {key!r}")
    return bufs[key].detach().double()


# ============================================================================ P per family
def _adam_p(group: Group, bufs: Buffers, name: str, *, amsgrad: bool = False) -> torch.Tensor:
    b1, b2 = _betas(group)
    t = _step_of(bufs, name)
    key = "max_exp_avg_sq" if (amsgrad or group.get("amsgrad")) else "exp_avg_sq"
    return (1 - b1 ** t) * ((_need(bufs, key, name) / (1 - b2 ** t)).sqrt() + _eps(group, 1e-8))


def _adamax_p(group: Group, bufs: Buffers, name: str) -> torch.Tensor:
    b1, _ = _betas(group)
    return (1 - b1 ** _step_of(bufs, name)) * _need(bufs, "exp_inf", name)


def radam_rectification(t: int, beta2: float) -> Optional[float]:
    """RAdam's r_t (Liu et al. 2020) at step t, or None before the rectified phase (ρ_t ≤ 5)."""
    rho_inf = 2 / (1 - beta2) - 1
    rho_t = rho_inf - 2 * t * beta2 ** t / (1 - beta2 ** t)
    if rho_t <= 5.0:
        return None
    return math.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t))


def _radam_p(group: Group, bufs: Buffers, name: str) -> torch.Tensor:
    b1, b2 = _betas(group)
    t = _step_of(bufs, name)
    v = _need(bufs, "exp_avg_sq", name)
    r = radam_rectification(t, b2)
    if r is None:
        return torch.full_like(v, 1 - b1 ** t)
    return (1 - b1 ** t) * (v.sqrt() + _eps(group, 1e-8)) / (r * math.sqrt(1 - b2 ** t))


def _rmsprop_p(group: Group, bufs: Buffers, name: str) -> torch.Tensor:
    v = _need(bufs, "square_avg", name)
    if group.get("centered"):
        g = _need(bufs, "grad_avg", name)
        v = v - g * g
    return v.clamp_min(0).sqrt() + _eps(group, 1e-8)


def _adagrad_p(group: Group, bufs: Buffers, name: str) -> torch.Tensor:
    return _need(bufs, "sum", name).sqrt() + _eps(group, 1e-10)


def _adadelta_p(group: Group, bufs: Buffers, name: str) -> torch.Tensor:
    eps = _eps(group, 1e-6)
    return (_need(bufs, "square_avg", name) + eps).sqrt() / (_need(bufs, "acc_delta", name) + eps).sqrt()


def _adabound_p(group: Group, bufs: Buffers, name: str) -> torch.Tensor:
    t = _step_of(bufs, name)
    state = {k: v.detach().double() for k, v in bufs.items() if k != "step"}
    g = dict(group, betas=_betas(group))
    return float(g["lr"]) / clipped_rate(g, state, step=t)


def _adagrad_rate(group: Group, t: int, lr: float) -> float:
    return lr / (1 + (t - 1) * float(group.get("lr_decay", 0.0) or 0.0))


# ============================================================================ recursions
def _sgd_dynamics(group: Group) -> Dynamics:
    b = float(group.get("momentum", 0.0) or 0.0)
    if b == 0:
        return Dynamics("none")
    if group.get("nesterov"):
        return Dynamics("nesterov", b)
    return Dynamics("heavy_ball", b, float(group.get("dampening", 0.0) or 0.0))


def _ema_dynamics(group: Group) -> Dynamics:
    return Dynamics("ema", _betas(group)[0])


def _rmsprop_dynamics(group: Group) -> Dynamics:
    b = float(group.get("momentum", 0.0) or 0.0)
    return Dynamics("heavy_ball", b) if b > 0 else Dynamics("none")


def _plain(group: Group) -> Dynamics:
    return Dynamics("none")


def threshold_coefficient(recursion: str, momentum: float = 0.0, dampening: float = 0.0) -> float:
    """c such that the frozen-P recursion diverges iff η·λ₁(P⁻¹H) > c (module docstring)."""
    b = float(momentum)
    if recursion == "none":
        return 2.0
    if recursion == "heavy_ball":
        return (2.0 + 2.0 * b) / (1.0 - dampening)
    if recursion == "ema":
        return (2.0 + 2.0 * b) / (1.0 - b)
    if recursion == "nesterov":
        return (2.0 + 2.0 * b) / (1.0 + 2.0 * b)
    raise ValueError(f"unknown recursion {recursion!r}")


# ============================================================================ first steps
def _fs_sgd(cfg: Any, g: torch.Tensor, theta0: Optional[torch.Tensor]) -> FirstStep:
    return FirstStep(-cfg.lr * (1 + cfg.momentum) * g if cfg.nesterov else -cfg.lr * g)


def _fs_adam(cfg: Any, g: torch.Tensor, theta0: Optional[torch.Tensor]) -> FirstStep:
    return FirstStep(-cfg.lr * g / (g.abs() + cfg.eps))


def _fs_adamw(cfg: Any, g: torch.Tensor, theta0: Optional[torch.Tensor]) -> FirstStep:
    decay = -cfg.lr * cfg.weight_decay * theta0 if (cfg.weight_decay and theta0 is not None) else 0.0
    return FirstStep(-cfg.lr * g / (g.abs() + cfg.eps) + decay)


def _fs_radam(cfg: Any, g: torch.Tensor, theta0: Optional[torch.Tensor]) -> FirstStep:
    return FirstStep(-cfg.lr * g)


def _fs_adagrad(cfg: Any, g: torch.Tensor, theta0: Optional[torch.Tensor]) -> FirstStep:
    return FirstStep(-cfg.lr * g / ((cfg.initial_accumulator_value + g * g).sqrt() + cfg.eps))


def _fs_rmsprop(cfg: Any, g: torch.Tensor, theta0: Optional[torch.Tensor]) -> FirstStep:
    scale = math.sqrt(cfg.alpha * (1 - cfg.alpha)) if cfg.centered else math.sqrt(1 - cfg.alpha)
    return FirstStep(-cfg.lr * g / (scale * g.abs() + cfg.eps))


def _fs_adadelta(cfg: Any, g: torch.Tensor, theta0: Optional[torch.Tensor]) -> FirstStep:
    return FirstStep(-cfg.lr * math.sqrt(cfg.eps) * g / ((1 - cfg.rho) * g * g + cfg.eps).sqrt())


def _fs_adabound(cfg: Any, g: torch.Tensor, theta0: Optional[torch.Tensor]) -> FirstStep:
    b1, b2 = cfg.betas
    lr = cfg.lr
    lo, hi = bounds({"final_lr": cfg.final_lr, "gamma": cfg.gamma, "lr": lr, "base_lr": lr}, 1)
    raw = lr * math.sqrt(1 - b2) / (1 - b1) / (math.sqrt(1 - b2) * g.abs() + cfg.eps)
    return FirstStep(-raw.clamp(lo, hi) * (1 - b1) * g, float((raw > hi).double().mean()))


# ============================================================================ builders (train)
def _betas_of(cfg: Any) -> Tuple[float, float]:
    return float(cfg.betas[0]), float(cfg.betas[1])


def _build_sgd(params: list, cfg: Any) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, dampening=cfg.dampening,
                           nesterov=cfg.nesterov, weight_decay=cfg.weight_decay)


def _build_adam(params: list, cfg: Any) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=cfg.lr, betas=_betas_of(cfg), eps=cfg.eps,
                            weight_decay=cfg.weight_decay, amsgrad=(cfg.name.lower() == "amsgrad"))


def _build_adamw(params: list, cfg: Any) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=cfg.lr, betas=_betas_of(cfg), eps=cfg.eps, weight_decay=cfg.weight_decay)


def _build_radam(params: list, cfg: Any) -> torch.optim.Optimizer:
    return torch.optim.RAdam(params, lr=cfg.lr, betas=_betas_of(cfg), eps=cfg.eps, weight_decay=cfg.weight_decay)


def _build_adagrad(params: list, cfg: Any) -> torch.optim.Optimizer:
    return torch.optim.Adagrad(params, lr=cfg.lr, lr_decay=cfg.lr_decay, eps=cfg.eps,
                               weight_decay=cfg.weight_decay,
                               initial_accumulator_value=cfg.initial_accumulator_value)


def _build_rmsprop(params: list, cfg: Any) -> torch.optim.Optimizer:
    return torch.optim.RMSprop(params, lr=cfg.lr, alpha=cfg.alpha, eps=cfg.eps, momentum=cfg.momentum,
                               centered=cfg.centered, weight_decay=cfg.weight_decay)


def _build_adadelta(params: list, cfg: Any) -> torch.optim.Optimizer:
    return torch.optim.Adadelta(params, lr=cfg.lr, rho=cfg.rho, eps=cfg.eps, weight_decay=cfg.weight_decay)


def _build_adabound(params: list, cfg: Any) -> torch.optim.Optimizer:
    return AdaBound(params, lr=cfg.lr, betas=_betas_of(cfg), final_lr=cfg.final_lr, gamma=cfg.gamma,
                    eps=cfg.eps, weight_decay=cfg.weight_decay, amsbound=(cfg.name.lower() == "amsbound"))


def _build_swats(params: list, cfg: Any) -> torch.optim.Optimizer:
    return SWATS(params, lr=cfg.lr, betas=_betas_of(cfg), eps=cfg.eps, weight_decay=cfg.weight_decay)


# ============================================================================ descriptions
def _describe_adam(opt: OptimizerState) -> Tuple[str, ...]:
    return ("amsgrad: P uses max_exp_avg_sq",) if (opt.amsgrad or opt.type == "amsgrad") else ()


def _describe_radam(opt: OptimizerState) -> Tuple[str, ...]:
    t, b2 = opt.step, _betas(opt.hyper)[1]
    if t is None:
        return ()
    r = radam_rectification(t, b2)
    if r is None:
        return (f"step {t}: before the rectified phase (ρ_t ≤ 5): SGD with bias-corrected EMA momentum",)
    return (f"rectified phase, r_t = {r:.6g}",)


def _describe_rmsprop(opt: OptimizerState) -> Tuple[str, ...]:
    return ("centred: P = √(v − ḡ²) + ε",) if opt.hyper.get("centered") else ()


def _describe_adadelta(opt: OptimizerState) -> Tuple[str, ...]:
    return ("adadelta: P from the current acc_delta (approximate): torch's next step would use it "
            "with an updated square_avg, exact up to O(1 − ρ) changes in one step",)


def _describe_adabound(opt: OptimizerState) -> Tuple[str, ...]:
    t = opt.step
    if t is None or "final_lr" not in opt.hyper:
        return ()
    lo, hi = bounds(dict(opt.hyper), t)
    return (f"step {t}: per-coordinate rate clipped to [{lo:.6g}, {hi:.6g}]",)


# ============================================================================ the families
def _adam_like(name: str, classes: Tuple[str, ...], **kw: Any) -> Family:
    base: Dict[str, Any] = dict(name=name, adaptive=True, dynamics=_ema_dynamics, classes=classes,
                                p_param=_adam_p, momentum_key="exp_avg", momentum_symbol="β₁",
                                first_step=_fs_adam, describe=_describe_adam)
    base.update(kw)
    return Family(**base)


_RECORDS: Tuple[Family, ...] = (
    Family("sgd", False, _sgd_dynamics, ("SGD",), ("momentum_buffer",), first_step=_fs_sgd,
           momentum_key="momentum_buffer", build=_build_sgd),
    Family("adagrad", True, _plain, ("Adagrad",), ("sum",), ("lr_decay",), p_param=_adagrad_p,
           rate=_adagrad_rate, first_step=_fs_adagrad, build=_build_adagrad),
    Family("rmsprop", True, _rmsprop_dynamics, ("RMSprop",), ("square_avg",), ("alpha", "centered"),
           p_param=_rmsprop_p, momentum_key="momentum_buffer", momentum_symbol="μ", first_step=_fs_rmsprop,
           build=_build_rmsprop, describe=_describe_rmsprop),
    Family("adadelta", True, _plain, ("Adadelta",), ("acc_delta",), ("rho",), p_param=_adadelta_p,
           first_step=_fs_adadelta, build=_build_adadelta, describe=_describe_adadelta),
    _adam_like("adam", ("Adam",), build=_build_adam),
    _adam_like("amsgrad", (), p_param=lambda g, b, n: _adam_p(g, b, n, amsgrad=True), build=_build_adam),
    _adam_like("adamw", ("AdamW",), decoupled=True, first_step=_fs_adamw, build=_build_adamw),
    _adam_like("radam", ("RAdam",), p_param=_radam_p, first_step=_fs_radam, build=_build_radam,
               describe=_describe_radam),
    _adam_like("adabound", ("AdaBound",), group_marks=("final_lr", "gamma"), p_param=_adabound_p,
               first_step=_fs_adabound, build=_build_adabound, describe=_describe_adabound),
    _adam_like("amsbound", (), group_marks=("final_lr", "gamma"), p_param=_adabound_p,
               first_step=_fs_adabound, build=_build_adabound, describe=_describe_adabound),
    _adam_like("swats", ("SWATS",), build=_build_swats),
    _adam_like("adamax", ("Adamax",), marks=("exp_inf",), p_param=_adamax_p, describe=None),
    _adam_like("nadam", ("NAdam",), marks=("mu_product",), group_marks=("momentum_decay",), p_param=None,
               first_step=None, describe=None),
)

FAMILIES: Dict[str, Family] = {f.name: f for f in _RECORDS}
TRAINABLE: Tuple[str, ...] = tuple(f.name for f in _RECORDS if f.build is not None)
ADAPTIVE: Tuple[str, ...] = tuple(f.name for f in _RECORDS if f.adaptive)


def family(name: Optional[str]) -> Family:
    """The record of family ``name`` (case-insensitive); a LandscapeError names the known ones."""
    fam = FAMILIES.get((name or "unknown").lower())
    if fam is None:
        raise LandscapeError(f"unknown optimizer family {name!r} (known: {', '.join(FAMILIES)})")
    return fam


def is_adaptive(opt: Optional[OptimizerState]) -> bool:
    """Whether the optimizer preconditions its step (then stability is about λ₁(P⁻¹H))."""
    fam = FAMILIES.get((opt.type or "").lower()) if opt is not None else None
    return fam is not None and fam.adaptive


# ============================================================================ recognition
def recognise_optimizer(opt: torch.optim.Optimizer) -> str:
    """The family name of a live optimizer (what analyses key on).

    Adam with ``amsgrad=True`` is ``adam`` (its flag is read from the state), AMSBound is
    ``amsbound``, and SWATS is ``adam`` or ``sgd`` according to its phase (``landscape_type``).
    """
    group = opt.param_groups[0]
    if "landscape_type" in group:
        return str(group["landscape_type"])
    if isinstance(opt, AdaBound):
        return "amsbound" if group.get("amsbound") else "adabound"
    cls = type(opt).__name__
    for fam in _RECORDS:
        if cls in fam.classes:
            return fam.name
    return cls.lower()


def recognise_state(raw: Mapping[str, Any]) -> Tuple[str, Tuple[str, ...]]:
    """``(family, notes)`` of a saved ``optimizer.state_dict()``, from its buffer names and
    param-group keys (each family's ``marks``/``group_marks``; Adam, AdamW and RAdam by their
    group flags)."""
    groups = raw.get("param_groups") or [{}]
    g = groups[0]
    if "landscape_type" in g:
        return str(g["landscape_type"]), ()
    keys: set = set()
    for s in (raw.get("state") or {}).values():
        if isinstance(s, Mapping):
            keys |= set(s)
    for name in ("nadam", "adamax", "adadelta", "rmsprop", "adagrad"):
        fam = FAMILIES[name]
        if keys & set(fam.marks) or (fam.group_marks and all(k in g for k in fam.group_marks)):
            return name, ()
    if all(k in g for k in FAMILIES["adabound"].group_marks):
        return ("amsbound" if g.get("amsbound") else "adabound"), ()
    if "betas" in g or {"exp_avg", "exp_avg_sq"} <= keys:
        if "amsgrad" not in g:
            return "radam", ()
        if g.get("decoupled_weight_decay"):
            return "adamw", ()
        if "decoupled_weight_decay" not in g:
            return "adam", ("torch < 2.6 stores Adam and AdamW alike; read as Adam (coupled decay)",)
        return "adam", ()
    if "momentum" in g or "nesterov" in g or keys & set(FAMILIES["sgd"].marks):
        return "sgd", ()
    return "unknown", ()


# ============================================================================ P and weight decay
def _group(opt: OptimizerState, name: str) -> Group:
    if opt.groups:
        return opt.groups[opt.group_of.get(name, 0)]
    return opt.hyper


def preconditioner_diag(opt: Optional[OptimizerState], space: ParamSpace, *,
                        dtype: torch.dtype = torch.float64) -> Optional[torch.Tensor]:
    """The flat diagonal P of the optimizer's step (module docstring), None for SGD/no state.

    Raises :class:`~landscape.errors.LandscapeError` for an unknown or unsupported family and when
    an adaptive state lacks its buffers (e.g. saved before the first step).
    """
    if opt is None:
        return None
    fam = FAMILIES.get((opt.type or "").lower())
    if fam is None or (fam.adaptive and fam.p_param is None):
        supported = ", ".join(f.name for f in _RECORDS if f.p_param is not None)
        raise LandscapeError(f"no preconditioner model for optimizer family {opt.type!r} "
                             f"(supported: sgd, {supported})")
    if fam.p_param is None:
        return None
    parts = []
    lr0 = float(opt.lr) if opt.lr else None
    for name, numel in zip(space.names, space.numels):
        group = _group(opt, name)
        bufs = opt.buffers.get(name)
        if not bufs:
            raise LandscapeError(f"the {opt.type} state has no buffers for {name} "
                                 "(saved before the first step, or the parameter was frozen?)")
        p = fam.p_param(group, bufs, name).to(dtype).reshape(-1)
        if p.numel() != numel:
            raise LandscapeError(f"{opt.type} buffer for {name} has {p.numel()} entries, parameter {numel}")
        lr_i = float(group.get("lr", lr0 or 0.0))
        if lr0 and lr_i and lr_i != lr0:
            p = p * (lr0 / lr_i)
        parts.append(p)
    return torch.cat(parts)


def has_decoupled_decay(opt: Optional[OptimizerState]) -> bool:
    """Whether the optimizer's weight decay acts outside P (AdamW; ``decoupled_weight_decay``)."""
    if opt is None:
        return False
    fam = FAMILIES.get((opt.type or "").lower())
    return bool((fam is not None and fam.decoupled) or opt.hyper.get("decoupled_weight_decay"))


def decoupled_weight_decay(opt: Optional[OptimizerState]) -> float:
    """The decoupled decay (first group) of AdamW-style optimizers, 0 otherwise."""
    return float(opt.weight_decay) if has_decoupled_decay(opt) else 0.0


def coupled_weight_decay(opt: Optional[OptimizerState], space: ParamSpace, *,
                         dtype: torch.dtype = torch.float64) -> Union[None, float, torch.Tensor]:
    """The coupled L2 decay added to the curvature (H + wd·I): a float when every parameter has
    the same wd, a flat vector when groups differ, None when there is none (or it is decoupled)."""
    if opt is None or has_decoupled_decay(opt):
        return None
    values = [float(_group(opt, n).get("weight_decay", 0.0) or 0.0) for n in space.names]
    if not any(values):
        return None
    if len(set(values)) == 1:
        return values[0]
    return torch.cat([torch.full((numel,), v, dtype=dtype) for v, numel in zip(values, space.numels)])


# ============================================================================ thresholds
@dataclass(frozen=True)
class Threshold:
    """The linear-stability threshold ``value`` = ``coefficient``/``lr`` on λ of ``on``.

    ``lr`` is the effective rate of the step (Adagrad: η_t), ``rule`` the formula as text.
    """

    value: float
    coefficient: float
    lr: float
    rule: str
    on: str
    notes: Tuple[str, ...] = ()


def _rule(fam: Family, dyn: Dynamics, decoupled: bool) -> str:
    s = fam.momentum_symbol
    if dyn.recursion == "none":
        base = "2/η_t" if fam.rate is not None else "2/η"
        return "(2−η·wd)/η" if decoupled else base
    if dyn.recursion == "heavy_ball":
        return f"(2+2{s})/((1−δ)η)" if dyn.dampening else f"(2+2{s})/η"
    if dyn.recursion == "nesterov":
        return f"(2+2{s})/((1+2{s})η)"
    if decoupled:
        return f"(1+{s})(2−η·wd)/((1−{s})η)"
    return f"(2+2{s})/((1−{s})η)"


def threshold(opt: Optional[OptimizerState], lr: float) -> Threshold:
    """The optimizer's threshold at learning rate ``lr`` (module docstring): NaN with a note for a
    family without a frozen-P model."""
    if opt is None:
        return Threshold(2.0 / lr, 2.0, lr, "2/η", "H", ("no optimizer state: plain SGD assumed",))
    fam = FAMILIES.get((opt.type or "").lower())
    if fam is None or not fam.supported:
        return Threshold(float("nan"), float("nan"), lr, "", "H",
                         (f"no stability threshold known for optimizer {opt.type!r}",))
    dyn = fam.dynamics(opt.hyper)
    coefficient = threshold_coefficient(dyn.recursion, dyn.momentum, dyn.dampening)
    notes: Tuple[str, ...] = ()
    wd = decoupled_weight_decay(opt)
    decoupled = bool(wd) and dyn.recursion in ("ema", "none")
    if decoupled:
        coefficient = ((1 + dyn.momentum) * (2 - lr * wd) / (1 - dyn.momentum) if dyn.recursion == "ema"
                       else 2 - lr * wd)
        label = "AdamW" if fam.name == "adamw" else fam.name
        notes += (f"{label} decoupled weight decay {wd:g} lowers the threshold",)
    eta = lr
    if fam.rate is not None:
        eta = fam.rate(opt.hyper, opt.step or 1, lr)
        if eta != lr:
            notes += (f"lr_decay: η_t = {eta:g}",)
    if fam.name == "adadelta":
        notes += ("adadelta: P from the current acc_delta (approximate)",)
    return Threshold(coefficient / eta, coefficient, eta, _rule(fam, dyn, decoupled),
                     "P^-1 H" if fam.adaptive else "H", notes)


def describe(opt: OptimizerState) -> Tuple[str, ...]:
    """The family's notes on how P was formed from this state (phase, clipping, approximations)."""
    fam = FAMILIES.get((opt.type or "").lower())
    return fam.describe(opt) if fam is not None and fam.describe is not None else ()


# ============================================================================ first step, build
def first_step(cfg: Any, grad: torch.Tensor, theta0: Optional[torch.Tensor] = None) -> FirstStep:
    """Δθ₁ of family ``cfg.name`` (an :class:`~landscape.optim.factory.OptimizerConfig`) from a
    fresh state with gradient ``grad`` (coupled weight decay is added here; table in
    :mod:`landscape.optim.first_step`)."""
    fam = FAMILIES.get(cfg.name.lower())
    if fam is None or fam.first_step is None:
        raise SpecError(f"no first-step closed form for optimizer {cfg.name!r}")
    g = grad
    if cfg.weight_decay and not fam.decoupled:
        if theta0 is None:
            raise SpecError("coupled weight decay: pass theta0")
        g = g + cfg.weight_decay * theta0
    return fam.first_step(cfg, g, theta0)


def build(params: Iterable[torch.nn.Parameter], cfg: Any) -> torch.optim.Optimizer:
    """The torch optimizer of family ``cfg.name`` for ``landscape train`` (SpecError otherwise)."""
    fam = FAMILIES.get(cfg.name.lower())
    if fam is None or fam.build is None:
        raise SpecError(f"unknown optimizer {cfg.name!r}; choose {', '.join(TRAINABLE)}")
    return fam.build(list(params), cfg)
