"""The Objective: a model, its buffers, an evaluation set and a loss, as a function of the weights.

Every instrument (Hessian, slices, sharpness, probes) evaluates the loss through this one object.
It owns a private copy of the model (so the caller's model is never changed: not its mode, weights,
gradients or BatchNorm buffers) and evaluates it with :func:`torch.func.functional_call` at any
flat parameter vector ``theta``:

    L(θ) = (1/N) Σ_i ℓ(f(x_i; θ), y_i)

over the whole evaluation set, batch by batch, with the exact 1/N weighting even when the last
batch is shorter. Gradients use :func:`torch.func.grad`; Hessian-vector products use
forward-over-reverse differentiation (``jvp`` of ``grad``), or double backward as a fallback.

BatchNorm: ``bn_mode="eval"`` (default) uses the stored running statistics. ``bn_mode="train"``
uses each batch's own statistics with the fixed batch split (the objective that training
minimised, as in the edge-of-stability literature); running statistics are never updated.

Under ``torch.distributed`` (torchrun) the fixed batches are dealt out to the ranks and every sum
is all-reduced, so each rank returns the single-process result (``shard=False`` keeps the whole
set on every rank, for callers that split other work, such as grid points, across ranks).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Dict, Iterator, Optional, Tuple

import torch
from torch import nn
from torch.func import functional_call, grad, grad_and_value, jvp

from . import distributed as dist
from .losses import get_loss
from .params import ParamSpace

_BN_TYPES = (nn.modules.batchnorm._BatchNorm,)


@dataclass(frozen=True)
class Evaluation:
    """Mean loss and accuracy over an evaluation set of ``n`` samples."""

    loss: float
    acc: float
    n: int

    def to_json(self) -> dict:
        return {"loss": self.loss, "acc": self.acc, "n": self.n}


class Objective:
    """Loss, accuracy, gradient and Hessian-vector products of a model over a fixed data set.

    Args:
        model: the network; copied, never modified.
        x, y: the evaluation set (moved to ``device``; ``x`` cast to ``dtype``).
        loss: ``ce``, ``mse``, ``mse-sum`` or ``mse-softmax`` (see :mod:`landscape.losses`).
        batch_size: samples per forward pass (affects speed only, except with ``bn_mode="train"``).
        bn_mode: ``"eval"`` (running statistics) or ``"train"`` (per-batch statistics).
        device, dtype: where and in which precision to compute (default: the model's).
        shard: under torch.distributed, split the batches across ranks and all-reduce.
    """

    def __init__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, loss: str = "ce",
                 batch_size: int = 1024, bn_mode: str = "eval",
                 device: Optional[torch.device | str] = None,
                 dtype: Optional[torch.dtype] = None, shard: bool = True) -> None:
        if bn_mode not in ("eval", "train"):
            raise ValueError("bn_mode must be 'eval' or 'train'")
        ref = next(iter(model.parameters()), None)
        self.device = torch.device(device) if device is not None else (ref.device if ref is not None else torch.device("cpu"))
        self.dtype = dtype or (ref.dtype if ref is not None else torch.float32)
        self.model = _private_copy(model, bn_mode).to(device=self.device, dtype=self.dtype)
        self.space = ParamSpace.from_model(self.model)
        trainable = dict(self.model.named_parameters())
        self.theta0 = self.space.flatten({n: trainable[n].detach() for n in self.space.names}).clone()
        # Constants passed to functional_call: buffers and any frozen parameters.
        self._consts: Dict[str, torch.Tensor] = {n: b for n, b in self.model.named_buffers()}
        self._consts.update({n: p.detach() for n, p in trainable.items() if n not in self.space.names})
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.loss_name = loss
        self._sum_loss = get_loss(loss)
        self.bn_mode = bn_mode
        self.batch_size = int(batch_size)
        self.shard = bool(shard)
        self.hvp_count = 0
        self._set_data(x, y)

    # ------------------------------------------------------------------ data
    def _set_data(self, x: torch.Tensor, y: torch.Tensor) -> None:
        if len(x) != len(y) or len(y) == 0:
            raise ValueError("evaluation set is empty or x and y differ in length")
        self.x = x.to(device=self.device, dtype=self.dtype)
        self.y = y.to(device=self.device)
        self.n = int(len(y))
        bounds = [(a, min(a + self.batch_size, self.n)) for a in range(0, self.n, self.batch_size)]
        self.sharded = self.shard and dist.world_size() > 1
        # Whole batches go to ranks, so per-batch BatchNorm statistics match one process.
        self.bounds = bounds[dist.rank()::dist.world_size()] if self.sharded else bounds

    def with_data(self, x: torch.Tensor, y: torch.Tensor, *, batch_size: Optional[int] = None,
                  shard: Optional[bool] = None) -> Objective:
        """The same model copy and loss over another data set (e.g. the test split)."""
        other = copy.copy(self)
        other.batch_size = int(batch_size or self.batch_size)
        other.shard = self.shard if shard is None else bool(shard)
        other.hvp_count = 0
        other._set_data(x, y)
        return other

    def with_buffers(self, buffers: Dict[str, torch.Tensor]) -> Objective:
        """The same objective with some buffers (e.g. BatchNorm running statistics) replaced by the
        given tensors, which are used as they are (so the caller may update them in place)."""
        unknown = [n for n in buffers if n not in self._consts]
        if unknown:
            raise KeyError(f"not a buffer of the model: {unknown[0]}")
        other = copy.copy(self)
        other._consts = {**self._consts, **buffers}
        return other

    def batches(self) -> Iterator[Tuple[torch.Tensor, torch.Tensor]]:
        """The fixed batches ``(x_b, y_b)`` in order (this rank's share when sharded)."""
        for a, b in self.bounds:
            yield self.x[a:b], self.y[a:b]

    # --------------------------------------------------------------- helpers
    @property
    def dim(self) -> int:
        return self.space.size

    def params(self, theta: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
        """Named views of ``theta`` (default: the checkpoint's weights)."""
        return self.space.unflatten(self.theta0 if theta is None else theta)

    def forward(self, params: Dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """Model outputs at the given named parameters."""
        return functional_call(self.model, (params, self._consts), (x,))

    def batch_loss(self, params: Dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """This batch's contribution Σ_{i∈b} ℓ_i / N to the mean loss (differentiable in params)."""
        return self._sum_loss(self.forward(params, x), y) / self.n

    # ----------------------------------------------------------- evaluation
    @torch.no_grad()
    def evaluate(self, theta: Optional[torch.Tensor] = None) -> Evaluation:
        """Mean loss and accuracy over the whole set (one ``.item()`` sync at the end)."""
        params = self.params(theta)
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        correct = torch.zeros((), dtype=torch.int64, device=self.device)
        for xb, yb in self.batches():
            out = self.forward(params, xb)
            loss_sum += self._sum_loss(out, yb).double()
            correct += (out.argmax(dim=-1) == yb).sum()
        sums = self._reduce(torch.stack([loss_sum, correct.double()]))
        values = (sums / self.n).tolist()
        return Evaluation(float(values[0]), float(values[1]), self.n)

    def loss(self, theta: Optional[torch.Tensor] = None) -> float:
        return self.evaluate(theta).loss

    def value_and_grad(self, theta: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(L(θ), ∇L(θ))`` as a 0-d tensor and a flat vector (no host sync)."""
        params = self.params(theta)
        total = torch.zeros(self.dim, dtype=self.dtype, device=self.device)
        value = torch.zeros((), dtype=self.dtype, device=self.device)
        g_fn = grad_and_value(self.batch_loss)
        for xb, yb in self.batches():
            g, v = g_fn(params, xb, yb)
            total += self.space.flatten(g)
            value += v.detach()
        if self.sharded:
            both = self._reduce(torch.cat([value.reshape(1), total]))
            value, total = both[0], both[1:]
        return value, total

    def grad(self, theta: Optional[torch.Tensor] = None) -> torch.Tensor:
        return self.value_and_grad(theta)[1]

    def hvp(self, v: torch.Tensor, theta: Optional[torch.Tensor] = None, *, method: str = "fwd") -> torch.Tensor:
        """Hessian-vector product H(θ)·v over the whole set, for a flat ``v``.

        ``method="fwd"``: forward-over-reverse (``jvp`` of ``grad``), the default;
        ``method="rev"``: double backward (for models torch.func cannot differentiate forward).
        """
        params = self.params(theta)
        tangent = self.space.unflatten(v.to(device=self.device, dtype=self.dtype))
        out = torch.zeros(self.dim, dtype=self.dtype, device=self.device)
        for xb, yb in self.batches():
            out += self._batch_hvp(params, tangent, xb, yb, method)
        self.hvp_count += 1
        return self._reduce(out)

    def _reduce(self, t: torch.Tensor) -> torch.Tensor:
        """Sum over ranks when sharded (identity on one process)."""
        return dist.all_reduce_sum(t) if self.sharded else t

    def _batch_hvp(self, params: Dict[str, torch.Tensor], tangent: Dict[str, torch.Tensor],
                   xb: torch.Tensor, yb: torch.Tensor, method: str) -> torch.Tensor:
        if method == "fwd":
            def g(p: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
                return grad(self.batch_loss)(p, xb, yb)

            _, hv = jvp(g, (params,), (tangent,))
            return self.space.flatten(hv)
        if method == "rev":
            with torch.enable_grad():
                leaves = {k: t.detach().requires_grad_(True) for k, t in params.items()}
                loss = self.batch_loss(leaves, xb, yb)
                gs = torch.autograd.grad(loss, list(leaves.values()), create_graph=True)
                dot = sum((gi * tangent[k]).sum() for gi, k in zip(gs, leaves))
                hv = torch.autograd.grad(dot, list(leaves.values()))
            return torch.cat([h.reshape(-1) for h in hv])
        raise ValueError("method must be 'fwd' or 'rev'")

    def check_determinism(self, theta: Optional[torch.Tensor] = None, *, rtol: float = 1e-6) -> bool:
        """Two evaluations must agree; catches dropout or augmentation left on in the model."""
        a, b = self.evaluate(theta), self.evaluate(theta)
        same = abs(a.loss - b.loss) <= rtol * max(1.0, abs(a.loss)) or (a.loss != a.loss and b.loss != b.loss)
        return bool(same)


def _private_copy(model: nn.Module, bn_mode: str) -> nn.Module:
    """A deep copy in eval mode; with ``bn_mode="train"`` its BatchNorms use batch statistics only."""
    clone = copy.deepcopy(model)
    clone.eval()
    if bn_mode == "train":
        for m in clone.modules():
            if isinstance(m, _BN_TYPES):
                m.train()
                m.track_running_stats = False
                m.running_mean = None
                m.running_var = None
                m.num_batches_tracked = None
    return clone
