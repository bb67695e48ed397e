"""Adaptive optimizers' diagonal preconditioners P, read from a checkpoint's optimizer state.

Every adaptive torch.optim step has the form θ_t = θ_{t−1} − η·P_t⁻¹·u_t with a positive diagonal
P_t (u_t: the gradient or a momentum/EMA of it). With t = ``state['step']`` and the buffers as
stored *after* step t (so P reproduces the step that produced the checkpoint exactly):

- Adam / AdamW: P = (1 − β₁ᵗ)·(√(v/(1 − β₂ᵗ)) + ε), v = ``exp_avg_sq``; with ``amsgrad`` v =
  ``max_exp_avg_sq``; u = ``exp_avg`` (torch: step = lr/(1−β₁ᵗ), denom = √v/√(1−β₂ᵗ) + ε).
- Adamax: P = (1 − β₁ᵗ)·``exp_inf``.
- RMSprop: P = √v + ε (``square_avg``), centred: √(v − ḡ²) + ε (``grad_avg``).
- Adagrad: P = √(``sum``) + ε.

For the edge-of-stability analysis of adaptive methods (Cohen et al. 2022) P is frozen at the
checkpoint and the relevant curvature is λ₁(P⁻¹H) = λ₁(P^{-1/2} H P^{-1/2}).

Parameter groups: hyper-parameters are read per group. Groups with a learning rate other than
the first group's η are folded into P (P_i · η/η_i), so that one η and one P describe the step.

Weight decay: torch's ``weight_decay`` for Adam, RMSprop, Adagrad and SGD adds wd·θ to the
gradient ("coupled" L2), so the curvature the optimizer sees is H + wd·I
(:func:`coupled_weight_decay`, per coordinate when groups differ). AdamW's decay is decoupled
(θ ← (1 − η·wd)θ outside P and outside the EMA); it does not change the operator but lowers the
threshold (see :mod:`landscape.hessian.stability`).
"""

from __future__ import annotations

from typing import Optional, Union

import torch

from ..checkpoint import OptimizerState
from ..errors import LandscapeError
from ..params import ParamSpace

ADAM_LIKE = ("adam", "adamw", "amsgrad", "adamax")
ADAPTIVE = ADAM_LIKE + ("rmsprop", "adagrad")
DECOUPLED = ("adamw",)


def is_adaptive(opt: Optional[OptimizerState]) -> bool:
    """Whether the optimizer preconditions its step (then stability is about λ₁(P⁻¹H))."""
    return opt is not None and opt.type in ADAPTIVE + ("radam", "nadam", "adadelta", "adabound", "amsbound")


def preconditioner_diag(opt: Optional[OptimizerState], space: ParamSpace, *,
                        dtype: torch.dtype = torch.float64) -> Optional[torch.Tensor]:
    """The flat diagonal P of the optimizer's step (module docstring), or None for SGD/none.

    Raises :class:`~landscape.errors.LandscapeError` when an adaptive state lacks its buffers.
    Families other than those above use :mod:`landscape.optim.preconditioners` where available.
    """
    if opt is None or opt.type == "sgd":
        return None
    if opt.type not in ADAPTIVE:
        return _other_family(opt, space, dtype)
    parts = []
    lr0 = float(opt.lr) if opt.lr else None
    for name, numel in zip(space.names, space.numels):
        group = _group(opt, name)
        bufs = opt.buffers.get(name)
        if not bufs:
            raise LandscapeError(f"the {opt.type} state has no buffers for {name} "
                                 "(saved before the first step, or the parameter was frozen?)")
        p = _param_p(opt.type, group, bufs, name).to(dtype).reshape(-1)
        if p.numel() != numel:
            raise LandscapeError(f"{opt.type} buffer for {name} has {p.numel()} entries, parameter {numel}")
        lr_i = float(group.get("lr", lr0 or 0.0))
        if lr0 and lr_i and lr_i != lr0:
            p = p * (lr0 / lr_i)
        parts.append(p)
    return torch.cat(parts)


def _group(opt: OptimizerState, name: str) -> dict:
    if opt.groups:
        return opt.groups[opt.group_of.get(name, 0)]
    return opt.hyper


def _step_of(bufs: dict, name: str) -> int:
    if "step" not in bufs:
        raise LandscapeError(f"optimizer state for {name} records no step count")
    t = int(float(bufs["step"]))
    if t < 1:
        raise LandscapeError(f"optimizer state for {name} has step {t}; no step taken yet")
    return t


def _need(bufs: dict, key: str, name: str) -> torch.Tensor:
    if key not in bufs:
        raise LandscapeError(f"optimizer state for {name} lacks {key!r}")
    return bufs[key].detach().double()


def _param_p(kind: str, group: dict, bufs: dict, name: str) -> torch.Tensor:
    eps = float(group.get("eps", 1e-8) if group.get("eps") is not None else 1e-8)
    if kind in ("adam", "adamw", "amsgrad"):
        b1, b2 = (float(b) for b in group.get("betas", (0.9, 0.999)))
        t = _step_of(bufs, name)
        key = "max_exp_avg_sq" if (group.get("amsgrad") or kind == "amsgrad") else "exp_avg_sq"
        v = _need(bufs, key, name)
        return (1 - b1 ** t) * ((v / (1 - b2 ** t)).sqrt() + eps)
    if kind == "adamax":
        b1 = float(group.get("betas", (0.9, 0.999))[0])
        t = _step_of(bufs, name)
        return (1 - b1 ** t) * _need(bufs, "exp_inf", name)
    if kind == "rmsprop":
        v = _need(bufs, "square_avg", name)
        if group.get("centered"):
            g = _need(bufs, "grad_avg", name)
            v = v - g * g
        return v.clamp_min(0).sqrt() + eps
    if kind == "adagrad":
        eps = float(group.get("eps", 1e-10) if group.get("eps") is not None else 1e-10)
        return _need(bufs, "sum", name).sqrt() + eps
    raise LandscapeError(f"no preconditioner for optimizer {kind!r}")


def _other_family(opt: OptimizerState, space: ParamSpace, dtype: torch.dtype) -> Optional[torch.Tensor]:
    try:
        from ..optim.preconditioners import frozen_model
    except ImportError:
        raise LandscapeError(f"no preconditioner model for optimizer {opt.type!r}; "
                             f"supported: sgd, {', '.join(ADAPTIVE)}") from None
    return frozen_model(opt, space, dtype=dtype).p_diag


def adagrad_lr(opt: OptimizerState) -> float:
    """Adagrad's rate at the checkpoint's step: lr / (1 + (t − 1)·lr_decay)."""
    decay = float(opt.hyper.get("lr_decay", 0.0) or 0.0)
    t = opt.step or 1
    return float(opt.lr) / (1 + (t - 1) * decay)


def coupled_weight_decay(opt: Optional[OptimizerState], space: ParamSpace, *,
                         dtype: torch.dtype = torch.float64) -> Union[None, float, torch.Tensor]:
    """The coupled L2 decay added to the curvature (H + wd·I): a float when every parameter has
    the same wd, a flat vector when groups differ, None when there is none (or it is AdamW's
    decoupled decay)."""
    if opt is None or opt.type in DECOUPLED or opt.hyper.get("decoupled_weight_decay"):
        return None
    values = [float(_group(opt, n).get("weight_decay", 0.0) or 0.0) for n in space.names]
    if not any(values):
        return None
    if len(set(values)) == 1:
        return values[0]
    return torch.cat([torch.full((numel,), v, dtype=dtype) for v, numel in zip(values, space.numels)])


def decoupled_weight_decay(opt: Optional[OptimizerState]) -> float:
    """AdamW's decoupled decay (first group), 0 otherwise."""
    if opt is None or not (opt.type in DECOUPLED or opt.hyper.get("decoupled_weight_decay")):
        return 0.0
    return float(opt.weight_decay)
