"""AdaBound and AMSBound (Luo, Xiong, Liu & Sun, "Adaptive Gradient Methods with Dynamic Bound of
Learning Rate", ICLR 2019), written for current torch.

The paper's Algorithm 2 (AdaBound) and 3 (AMSBound), for coordinate i at step t (t = 1, 2, ...):

    m_t = β₁ m_{t−1} + (1 − β₁) g_t
    v_t = β₂ v_{t−1} + (1 − β₂) g_t²              (AMSBound: v̂_t = max(v̂_{t−1}, v_t), used below)
    η̂_t = Clip(α / √v_t, η_l(t), η_u(t)),   η_t = η̂_t / √t
    θ_{t+1} = θ_t − η_t ⊙ m_t

with bounds that start at [0, ∞) and close in on a final SGD-like rate α*:

    η_l(t) = α* (1 − 1/(γ t + 1)),   η_u(t) = α* (1 + 1/(γ t)).

The authors' released code (the ``adabound`` package, whose tensor-method calls current torch
rejects) differs from Algorithm 2 in three ways, and the studies that used AdaBound ran that code:
Adam's bias corrections enter the unclipped rate, α √(1 − β₂ᵗ)/(1 − β₁ᵗ) / (√v_t + ε); there is
no 1/√t factor; and α* is rescaled by the current over the initial learning rate (so schedules
move the bounds too). Those are our defaults; ``bias_correction=False, sqrt_t=True`` gives the
paper's Algorithm 2 (with ε added to √v_t). Weight decay is coupled (g ← g + wd·θ), as in both.

At t = 1 (default rule) m₁ = (1 − β₁)g and the unclipped rate is ≈ α/((1 − β₁)|g|), so the step
is Adam's −α·sign(g). The upper bound U = α*(1 + 1/γ) (100.1 for α* = 0.1, γ = 10⁻³) clips it only
where |g| < α/((1 − β₁)U): there the step is −U(1 − β₁)g ≈ −10·g, an SGD step with learning rate
≈ 10. With α = 10⁻³ that protects coordinates with |g| < 10⁻⁴; with α = 0.1 those with |g| < 0.01.
Every larger gradient gets Adam's full sign step.
"""

from __future__ import annotations

import math
from typing import Iterable, Optional, Tuple

import torch


class AdaBound(torch.optim.Optimizer):
    """AdaBound (``amsbound=False``) / AMSBound (``amsbound=True``).

    Per-parameter state: ``step`` (a float tensor, as torch's Adam keeps it), ``exp_avg`` (m),
    ``exp_avg_sq`` (v) and, for AMSBound, ``max_exp_avg_sq``. Each param group records
    ``final_lr``, ``gamma``, ``amsbound``, ``bias_correction``, ``sqrt_t`` and ``base_lr`` (the
    learning rate at construction), so a saved state dict holds everything needed to recompute
    the clipped per-coordinate rate at the checkpoint's step (see :func:`clipped_rate`).
    """

    def __init__(self, params: Iterable, lr: float = 1e-3, betas: Tuple[float, float] = (0.9, 0.999),
                 final_lr: float = 0.1, gamma: float = 1e-3, eps: float = 1e-8,
                 weight_decay: float = 0.0, amsbound: bool = False, *, bias_correction: bool = True,
                 sqrt_t: bool = False) -> None:
        if lr <= 0:
            raise ValueError(f"invalid learning rate {lr}")
        if not (0.0 <= betas[0] < 1.0 and 0.0 <= betas[1] < 1.0):
            raise ValueError(f"invalid betas {betas}")
        if final_lr <= 0 or not 0.0 < gamma < 1.0:
            raise ValueError(f"invalid final_lr {final_lr} / gamma {gamma}")
        defaults = dict(lr=lr, betas=tuple(betas), final_lr=final_lr, gamma=gamma, eps=eps,
                        weight_decay=weight_decay, amsbound=amsbound, bias_correction=bias_correction,
                        sqrt_t=sqrt_t)
        super().__init__(params, defaults)
        for group in self.param_groups:
            group.setdefault("base_lr", group["lr"])

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                if grad.is_sparse:
                    raise RuntimeError("AdaBound does not support sparse gradients")
                if group["weight_decay"]:
                    grad = grad.add(p, alpha=group["weight_decay"])
                state = self.state[p]
                if not state:
                    state["step"] = torch.zeros((), dtype=torch.float32)
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    if group["amsbound"]:
                        state["max_exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step"] += 1
                exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
                exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                if group["amsbound"]:
                    torch.maximum(state["max_exp_avg_sq"], exp_avg_sq, out=state["max_exp_avg_sq"])
                rate = clipped_rate(group, state)
                p.sub_(rate * exp_avg)
        return loss


def bounds(group: dict, t: int) -> Tuple[float, float]:
    """(η_l(t), η_u(t)) for a param group at step t ≥ 1 (α* rescaled by lr/base_lr)."""
    final = group["final_lr"] * group["lr"] / group.get("base_lr", group["lr"])
    gamma = group["gamma"]
    return final * (1.0 - 1.0 / (gamma * t + 1.0)), final * (1.0 + 1.0 / (gamma * t))


def clipped_rate(group: dict, state: dict, *, step: Optional[int] = None) -> torch.Tensor:
    """The per-coordinate rate η_t with which AdaBound multiplies m_t at step t (after its update).

    ``state`` holds ``exp_avg_sq`` (and ``max_exp_avg_sq`` for AMSBound) *after* step t's update;
    ``step`` overrides ``state["step"]``. θ_t − θ_{t−1} = −η_t ⊙ m_t exactly.
    """
    beta1, beta2 = group["betas"]
    t = int(step if step is not None else float(state["step"]))
    v = state["max_exp_avg_sq"] if group.get("amsbound") else state["exp_avg_sq"]
    alpha = group["lr"]
    if group.get("bias_correction", True):
        alpha = alpha * math.sqrt(1 - beta2 ** t) / (1 - beta1 ** t)
    lower, upper = bounds(group, t)
    rate = (alpha / (v.sqrt() + group["eps"])).clamp_(lower, upper)
    if group.get("sqrt_t", False):
        rate = rate / math.sqrt(t)
    return rate
