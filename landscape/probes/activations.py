"""Dead ReLUs and BatchNorm input statistics over an evaluation set, at any parameter point.

Models call ReLU in two ways: as ``nn.ReLU`` modules and as ``F.relu``/``torch.relu`` inside a
block's ``forward`` (the CIFAR ResNets and DenseNets here do the latter). Module forward hooks see
only the first, so the recorder is a :class:`torch.overrides.TorchFunctionMode`: every call of
``F.relu``, ``torch.relu``, ``Tensor.relu`` (and their in-place forms) and of ``F.batch_norm`` made
while it is active is seen with its input, whichever way it was written. The k-th such call of a
forward pass is the k-th ReLU (BN) "site"; forward pre-hooks on the Objective's *private* model copy
(removed afterwards) label each site with the innermost module that made it.

Outputs (:func:`output_stats`): over the same set, the share of samples whose largest softmax
probability exceeds 1 − 10⁻⁴ ("saturated": the softmax-MSE gradient through such a sample is
≈ 0), the largest and the RMS |logit|, and the between-sample share of the logits' variance,
Σᵢ꜀(zᵢ꜀ − z̄꜀)² / Σᵢ꜀(zᵢ꜀ − z̄)², which is near 0 when the output no longer depends on the input
(every sample gets the same logits, whatever they are) and near 1 when the class means are equal.

A ReLU channel (dimension 1 of the ReLU's input: a neuron of a linear layer, a filter of a conv) is
*dead* when its input is ≤ 0 for every sample of the set (and every spatial position). The dead
fraction is dead channels / all channels over all ReLU sites.

BatchNorm: per channel, the mean and variance of the BN layer's *input* over the whole set, so
that two parameter points can be compared (``bn_shift``): the mean shift in units of the first
point's standard deviation, and the ratio of standard deviations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from .. import distributed as dist
from ..objective import Objective

_RELU_FUNCS = {F.relu, torch.relu, torch.relu_, torch.Tensor.relu, torch.Tensor.relu_}
if hasattr(F, "relu_"):
    _RELU_FUNCS.add(F.relu_)


SATURATED = 1e-4  # a sample is saturated when its largest softmax probability exceeds 1 − SATURATED


@dataclass(frozen=True)
class ActivationStats:
    """Dead-ReLU and BN-input statistics of one parameter point over an evaluation set."""

    relu_sites: Tuple[str, ...]
    relu_channels: Tuple[int, ...]
    relu_dead: Tuple[int, ...]
    bn_sites: Tuple[str, ...]
    bn_mean: Tuple[torch.Tensor, ...]
    bn_var: Tuple[torch.Tensor, ...]
    n: int

    @property
    def dead_relu_fraction(self) -> float:
        """Dead channels / all ReLU channels (NaN when the model has no ReLU)."""
        total = sum(self.relu_channels)
        return sum(self.relu_dead) / total if total else float("nan")

    def to_json(self) -> dict:
        return {
            "dead_relu_fraction": self.dead_relu_fraction,
            "relu": [{"site": s, "channels": c, "dead": d}
                     for s, c, d in zip(self.relu_sites, self.relu_channels, self.relu_dead)],
            "bn_sites": list(self.bn_sites),
            "n": self.n,
        }

    def dead_units(self) -> dict:
        """Dead units per ReLU site and overall (the ``dead_units`` entries of the first-step probe)."""
        layers = [{"site": s, "units": c, "dead": d, "fraction": d / c if c else float("nan")}
                  for s, c, d in zip(self.relu_sites, self.relu_channels, self.relu_dead)]
        return {"overall": self.dead_relu_fraction, "layers": layers}


@dataclass(frozen=True)
class OutputStats:
    """The model's outputs (logits) over an evaluation set at one parameter point (module docstring)."""

    saturation: float
    max_abs_logit: float
    rms_logit: float
    between_sample_share: float
    n: int

    def to_json(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


class _Recorder(TorchFunctionMode):
    """Accumulates per-site ReLU 'alive' masks and BN input moments over several forwards."""

    def __init__(self) -> None:
        super().__init__()
        self.module_stack: List[str] = []
        self.relu_names: List[str] = []
        self.relu_alive: List[torch.Tensor] = []
        self.bn_names: List[str] = []
        self.bn_moments: List[torch.Tensor] = []  # (3, C): count, sum, sum of squares
        self._relu_k = 0
        self._bn_k = 0

    def enter_hook(self, name: str):  # noqa: ANN201
        def hook(_module, _inputs) -> None:  # noqa: ANN001
            self.module_stack.append(name)
        return hook

    def exit_hook(self, _module, _inputs, _output) -> None:  # noqa: ANN001
        self.module_stack.pop()

    def start_forward(self) -> None:
        self._relu_k = self._bn_k = 0

    def _where(self) -> str:
        return self.module_stack[-1] if self.module_stack else "<model>"

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        kwargs = kwargs or {}
        if func in _RELU_FUNCS and args and isinstance(args[0], torch.Tensor) and args[0].dim() >= 2:
            self._relu(args[0])
        elif func is F.batch_norm and args and isinstance(args[0], torch.Tensor) and args[0].dim() >= 2:
            self._bn(args[0])
        return func(*args, **kwargs)

    def _relu(self, x: torch.Tensor) -> None:
        dims = [d for d in range(x.dim()) if d != 1]
        alive = (x.detach() > 0).any(dim=dims) if dims else (x.detach() > 0)
        k = self._relu_k
        self._relu_k += 1
        if k == len(self.relu_alive):
            self.relu_names.append(f"{self._where()}#relu{k}")
            self.relu_alive.append(alive.clone())
        else:
            self.relu_alive[k] |= alive

    def _bn(self, x: torch.Tensor) -> None:
        xd = x.detach().double()
        dims = [d for d in range(x.dim()) if d != 1]
        count = torch.full((x.shape[1],), float(x.numel() // x.shape[1]), dtype=torch.float64, device=x.device)
        m = torch.stack([count, xd.sum(dim=dims), (xd * xd).sum(dim=dims)])
        k = self._bn_k
        self._bn_k += 1
        if k == len(self.bn_moments):
            self.bn_names.append(f"{self._where()}#bn{k}")
            self.bn_moments.append(m)
        else:
            self.bn_moments[k] += m


@torch.no_grad()
def activation_stats(objective: Objective, theta: Optional[torch.Tensor] = None) -> ActivationStats:
    """Dead-ReLU channels and BN input moments of ``objective``'s model at ``theta`` over its set.

    Goes through the Objective's batches and forward (so BN follows its ``bn_mode``); under
    torch.distributed the per-rank results are combined (alive: any rank; moments: summed).
    """
    params = objective.params(theta)
    rec = _Recorder()
    handles = []
    for name, module in objective.model.named_modules():
        if not name:
            continue
        handles.append(module.register_forward_pre_hook(rec.enter_hook(name)))
        handles.append(module.register_forward_hook(rec.exit_hook))
    try:
        with rec:
            for xb, _ in objective.batches():
                rec.start_forward()
                rec.module_stack.clear()
                objective.forward(params, xb)
    finally:
        for h in handles:
            h.remove()
    alive = [a.to(torch.float64) for a in rec.relu_alive]
    moments = list(rec.bn_moments)
    if objective.sharded and (alive or moments):
        flat = dist.all_reduce_sum(torch.cat([t.reshape(-1) for t in alive + moments]))
        pieces, start = [], 0
        for t in alive + moments:
            pieces.append(flat[start:start + t.numel()].reshape(t.shape))
            start += t.numel()
        alive, moments = pieces[:len(alive)], pieces[len(alive):]
    dead = [int((a <= 0).sum()) for a in alive]
    means, variances = [], []
    for m in moments:
        mean = m[1] / m[0]
        means.append(mean.cpu())
        variances.append((m[2] / m[0] - mean * mean).clamp_min(0).cpu())
    return ActivationStats(tuple(rec.relu_names), tuple(int(a.numel()) for a in alive), tuple(dead),
                           tuple(rec.bn_names), tuple(means), tuple(variances), objective.n)


def bn_shift(before: ActivationStats, after: ActivationStats, *, eps: float = 1e-5) -> List[Dict[str, float]]:
    """Per BN site: mean over channels of |μ_after − μ_before| / σ_before, and the median over
    channels of σ_after / σ_before (BN inputs over the same set at two parameter points)."""
    out = []
    for name, m0, v0, m1, v1 in zip(before.bn_sites, before.bn_mean, before.bn_var, after.bn_mean, after.bn_var):
        s0, s1 = (v0 + eps).sqrt(), (v1 + eps).sqrt()
        out.append({
            "site": name,
            "channels": int(m0.numel()),
            "mean_shift": float(((m1 - m0).abs() / s0).mean()),
            "std_ratio": float((s1 / s0).median()),
        })
    return out


@torch.no_grad()
def output_stats(objective: Objective, theta: Optional[torch.Tensor] = None, *,
                 saturated: float = SATURATED) -> OutputStats:
    """Saturation, logit scale and the between-sample share of the logits' variance of
    ``objective``'s model at ``theta`` over its set (module docstring), from running sums in
    float64 (one host sync at the end; combined over ranks under torch.distributed)."""
    params = objective.params(theta)
    sums: Optional[torch.Tensor] = None  # [saturated count, Σz², Σ_i z_ic (C), Σ_i z_ic² (C)]
    top = torch.zeros((), dtype=torch.float64, device=objective.device)
    for xb, _ in objective.batches():
        z = objective.forward(params, xb).double().reshape(len(xb), -1)
        sat = (torch.softmax(z, dim=-1).amax(dim=-1) > 1 - saturated).sum().double()
        part = torch.cat([sat.reshape(1), (z * z).sum().reshape(1), z.sum(dim=0), (z * z).sum(dim=0)])
        sums = part if sums is None else sums + part
        top = torch.maximum(top, z.abs().max())
    if objective.sharded:
        sums = dist.all_reduce_sum(sums)
        slot = torch.zeros(dist.world_size(), dtype=torch.float64, device=objective.device)
        slot[dist.rank()] = top
        top = dist.all_reduce_sum(slot).max()
    n = objective.n
    c = (sums.numel() - 2) // 2
    s_c, q_c = sums[2:2 + c], sums[2 + c:]
    between = (q_c - s_c * s_c / n).sum()
    total = sums[1] - s_c.sum() ** 2 / (n * c)
    share = torch.where(total > 0, (between / total.clamp_min(1e-300)).clamp(0, 1), torch.zeros_like(total))
    values = torch.stack([sums[0] / n, top, (sums[1] / (n * c)).sqrt(), share]).tolist()
    return OutputStats(float(values[0]), float(values[1]), float(values[2]), float(values[3]), n)
