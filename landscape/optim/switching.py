"""Switching from an adaptive method to SGD: at a fixed epoch, or by Keskar & Socher's criterion.

**SWATS** (Keskar & Socher 2017, "Improving Generalization Performance by Switching from Adam to
SGD", Algorithm 1). Run Adam; after each Adam step p_k (the actual parameter change) with gradient
g_k, estimate the SGD learning rate whose step along −g_k has p_k as its projection,

    γ_k = p_kᵀp_k / (−p_kᵀg_k)          (when p_kᵀg_k ≠ 0),

track its exponential average λ_k = β₂ λ_{k−1} + (1 − β₂) γ_k and its bias-corrected value
Λ_k = λ_k / (1 − β₂ᵏ), and switch once k > 1 and |Λ_k − γ_k| < ε (ε = 10⁻⁹ in the paper).
Afterwards take SGD steps with momentum β₁:

    v_k = β₁ v_{k−1} + g_k,     w_k = w_{k−1} − (1 − β₁) Λ v_k.

Our choices where the paper leaves room, stated here so nobody has to guess: the criterion is
evaluated per param group over all of its parameters (one group = the whole model, as the
algorithm is written); the Adam phase is torch.optim.Adam's arithmetic (ε added to the
bias-corrected √v̂, which differs from the paper's √v_k + ε by a term of order ε); a switch
also requires Λ_k > 0 (a negative estimate would make SGD ascend). After the switch the group's
``lr`` becomes (1 − β₁)Λ and ``momentum`` β₁ with dampening 0, so the saved state is that of a
heavy-ball SGD (``landscape_type`` "sgd") and every analysis reads it as such; before it,
``landscape_type`` is "adam". The Adam learning rate is kept under ``adam_lr``, the switch step
under ``switch_step``.

**Fixed epoch** (``landscape train --switch-to-sgd EPOCH``): :func:`switch_to_sgd` replaces the
optimizer by ``torch.optim.SGD`` (given lr and momentum) after epoch EPOCH.
"""

from __future__ import annotations

import math
from typing import Iterable, Optional, Tuple

import torch


class SWATS(torch.optim.Optimizer):
    """Adam that switches itself to heavy-ball SGD by Keskar & Socher's criterion (see module doc)."""

    def __init__(self, params: Iterable, lr: float = 1e-3, betas: Tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, switch_eps: float = 1e-9) -> None:
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                        switch_eps=switch_eps, landscape_type="adam", swats_lambda=0.0,
                        switch_step=None, adam_lr=lr, momentum=0.0, dampening=0.0, nesterov=False)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            if group["landscape_type"] == "sgd":
                self._sgd_step(group)
            else:
                self._adam_step(group)
        return loss

    def _grad(self, group: dict, p: torch.Tensor) -> torch.Tensor:
        g = p.grad
        return g.add(p, alpha=group["weight_decay"]) if group["weight_decay"] else g

    def _sgd_step(self, group: dict) -> None:
        for p in group["params"]:
            if p.grad is None:
                continue
            g = self._grad(group, p)
            state = self.state[p]
            buf = state.get("momentum_buffer")
            if buf is None:
                state["momentum_buffer"] = buf = g.clone()
            else:
                buf.mul_(group["momentum"]).add_(g)
            state["step"] += 1
            p.sub_(buf, alpha=group["lr"])

    def _adam_step(self, group: dict) -> None:
        beta1, beta2 = group["betas"]
        dot_pp = dot_pg = None
        k = 0
        for p in group["params"]:
            if p.grad is None:
                continue
            g = self._grad(group, p)
            state = self.state[p]
            if not state:
                state["step"] = torch.zeros((), dtype=torch.float32)
                state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["step"] += 1
            k = int(state["step"])
            m, v = state["exp_avg"], state["exp_avg_sq"]
            m.mul_(beta1).add_(g, alpha=1 - beta1)
            v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
            b1, b2 = 1 - beta1 ** k, 1 - beta2 ** k
            step = -(group["lr"] / b1) * m / (v.sqrt() / math.sqrt(b2) + group["eps"])
            p.add_(step)
            pp, pg = (step * step).sum(), (step * g).sum()
            dot_pp = pp if dot_pp is None else dot_pp + pp
            dot_pg = pg if dot_pg is None else dot_pg + pg
        if dot_pp is None:
            return
        pg = float(dot_pg)  # one sync per optimizer step (the criterion is a scalar decision)
        if pg == 0.0:
            return
        gamma = float(dot_pp) / -pg
        group["swats_lambda"] = beta2 * group["swats_lambda"] + (1 - beta2) * gamma
        big_lambda = group["swats_lambda"] / (1 - beta2 ** k)
        if k > 1 and big_lambda > 0 and abs(big_lambda - gamma) < group["switch_eps"]:
            self._switch(group, big_lambda, k)

    def _switch(self, group: dict, big_lambda: float, k: int) -> None:
        beta1 = group["betas"][0]
        group.update(landscape_type="sgd", adam_lr=group["lr"], lr=(1 - beta1) * big_lambda,
                     momentum=beta1, dampening=0.0, nesterov=False, switch_step=k,
                     sgd_lambda=big_lambda)
        for p in group["params"]:
            self.state[p].pop("momentum_buffer", None)


def switch_to_sgd(optimizer: torch.optim.Optimizer, *, lr: float, momentum: float = 0.0,
                  nesterov: bool = False, weight_decay: Optional[float] = None) -> torch.optim.SGD:
    """A fresh ``torch.optim.SGD`` over the same parameters (momentum buffers start at zero).

    ``weight_decay`` defaults to the old optimizer's first group's value.
    """
    params = [p for g in optimizer.param_groups for p in g["params"]]
    wd = optimizer.param_groups[0].get("weight_decay", 0.0) if weight_decay is None else weight_decay
    return torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=wd)
