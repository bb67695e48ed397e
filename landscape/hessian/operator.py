"""Hessian operators: H(θ) (optionally shifted by a diagonal) and P^{-1/2} H P^{-1/2}.

Every product is over the Objective's whole evaluation set (its own batches, its own
``batch_loss``), with the exact 1/N weighting across unequal batches. Product methods:

- ``"fwd"``: forward-over-reverse (``jvp`` of ``grad``) through :meth:`Objective.hvp`;
- ``"rev"``: double backward through :meth:`Objective.hvp`;
- ``"cached"``: the gradient's graph ∇L_b(θ) of every batch is built once (``create_graph``) and
  each product is one backward pass through those graphs (``grad_outputs=v``): no forward and no
  first backward per product, at the price of keeping every batch's graph in memory;
- ``"auto"`` (default): ``"cached"`` when the graphs fit a memory budget (measured on the first
  batch with saved-tensor hooks, extrapolated to all batches; default budget: a quarter of the
  machine's memory, at most 8 GiB, or half of the GPU memory free at that moment as
  ``torch.cuda.mem_get_info`` reports it), otherwise ``"fwd"``; running out of GPU memory while
  building the graphs anyway (memory taken meanwhile) also falls back to ``"fwd"``.

On a GPU the operator turns TF32 off (:func:`exact_float32`): products stay float32-exact.

Measured on 2 CPU cores (24k-parameter BN-CNN, 256 CIFAR-shaped images, batch 128, process CPU
time): one product costs 3.4× a forward+backward with ``fwd``, 2.9× with ``rev`` and 1.9× with
``cached`` (+ 1.9× once to build the graphs). Each operator counts its products in ``hvps``
(a ``matmat`` of ``k`` vectors counts ``k``), and so does the Objective's ``hvp_count``.

Several products at once (``matmat``, used by block Lanczos): with ``batched=True`` the cached
graphs are traversed once for all vectors (``autograd.grad(..., is_grads_batched=True)``, a vmap
over the backward). Measured on 2 CPU cores under load (4 vectors, cached graphs, batch 128):
ResNet-32 on 64 images 4.27 s per product batched vs 3.65 s one at a time; ResNet-18 on 32
images 11.1 vs 7.2 s. Batching is therefore off by default (products one after the other, the
same numbers bit for bit); it is an option for accelerators, where it is not yet measured.

The preconditioned operator is the symmetric form of P⁻¹H used for adaptive optimizers
(Cohen et al. 2022, "Adaptive Gradient Methods at the Edge of Stability"): P⁻¹H and
P^{-1/2} H P^{-1/2} are similar matrices, so they have the same eigenvalues, and the latter is
symmetric so Lanczos applies.
"""

from __future__ import annotations

import os
from typing import List, Optional, Tuple, Union

import torch

from ..objective import Objective

METHODS = ("auto", "fwd", "rev", "cached")


class LinearOperator:
    """A symmetric linear operator on flat vectors of length ``dim`` (torch tensors)."""

    dim: int
    dtype: torch.dtype
    device: torch.device

    def matvec(self, v: torch.Tensor) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def matmat(self, V: torch.Tensor) -> torch.Tensor:
        """Products with the rows of ``V`` (shape ``(k, dim)``), returned as ``(k, dim)``."""
        if V.dim() == 1:
            return self.matvec(V)
        out = torch.empty_like(V)
        for i in range(V.shape[0]):
            out[i] = self.matvec(V[i])
        return out

    @property
    def hvps(self) -> int:  # pragma: no cover - interface
        raise NotImplementedError


class HessianOperator(LinearOperator):
    """v ↦ (H(θ) + diag(shift))·v for an Objective's mean loss at ``theta``.

    Args:
        objective: the loss (whole evaluation set).
        theta: the point (default: the checkpoint's weights ``objective.theta0``).
        method: ``"auto"`` (default), ``"fwd"``, ``"rev"`` or ``"cached"`` (module docstring).
        shift: a scalar or a flat vector added on the diagonal, e.g. coupled L2 weight decay
            (the gradient of ``wd/2·‖θ‖²`` adds ``wd·I`` to the curvature). Default none.
        cache_budget: bytes the cached graphs may take (``"auto"``/``"cached"``).
        batched: ``matmat`` through one batched backward per data batch (cached graphs only;
            module docstring). Default off.
    """

    def __init__(self, objective: Objective, theta: Optional[torch.Tensor] = None, *,
                 method: str = "auto", shift: Union[None, float, torch.Tensor] = None,
                 cache_budget: Optional[int] = None, batched: bool = False) -> None:
        if method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}")
        if objective.device.type == "cuda":
            exact_float32()
        self.objective = objective
        self.theta = (objective.theta0 if theta is None else theta).detach().to(
            device=objective.device, dtype=objective.dtype)
        objective.require_finite(self.theta)
        self._graphs: Optional[_GradientGraphs] = None
        if method in ("auto", "cached"):
            budget = cache_budget if cache_budget is not None else default_cache_budget(objective.device)
            self._graphs = _GradientGraphs.build(objective, self.theta, budget, required=method == "cached")
            method = "cached" if self._graphs is not None else "fwd"
        self.method = method
        self.dim = objective.dim
        self.dtype = objective.dtype
        self.device = objective.device
        if isinstance(shift, torch.Tensor):
            shift = shift.to(device=self.device, dtype=self.dtype)
            if shift.shape != (self.dim,):
                raise ValueError(f"shift must be a scalar or a vector of length {self.dim}")
        self.shift = shift
        self.batched = bool(batched)
        self._count = 0

    @property
    def hvps(self) -> int:
        return self._count

    def matmat(self, V: torch.Tensor) -> torch.Tensor:
        """Products with the rows of ``V``; one batched pass over the cached graphs when
        ``batched`` (else one product after the other)."""
        if V.dim() == 1 or len(V) == 1 or not self.batched or self._graphs is None:
            return super().matmat(V)
        V = V.to(device=self.device, dtype=self.dtype)
        out = self._graphs.hvps(V)
        self.objective.hvp_count += len(V)
        self._count += len(V)
        if self.shift is not None:
            out = out + (self.shift[None] * V if isinstance(self.shift, torch.Tensor) else self.shift * V)
        return out

    def with_shift(self, shift: Union[None, float, torch.Tensor]) -> HessianOperator:
        """The same H (sharing cached graphs) with another diagonal shift; its own product count."""
        other = object.__new__(HessianOperator)
        other.__dict__.update(self.__dict__)
        if isinstance(shift, torch.Tensor):
            shift = shift.to(device=self.device, dtype=self.dtype)
        other.shift = shift
        other._count = 0
        return other

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        v = v.to(device=self.device, dtype=self.dtype)
        if self._graphs is not None:
            out = self._graphs.hvp(v)
            self.objective.hvp_count += 1
        else:
            out = self.objective.hvp(v, self.theta, method=self.method)
        self._count += 1
        if self.shift is not None:
            out = out + self.shift * v
        return out


def exact_float32() -> None:
    """TF32 off for CUDA matmuls and cuDNN convolutions (cuDNN's default is on): float32 Hessian
    products on Ampere and later GPUs then carry float32's rounding, not TF32's 10-bit mantissa."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False


def default_cache_budget(device: torch.device) -> int:
    """Bytes the cached gradient graphs may take: half the free GPU memory, or a quarter of the
    machine's memory (at most 8 GiB) on the CPU."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free // 2)
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = 8 << 30
    return int(min(total // 4, 8 << 30))


class _GradientGraphs:
    """Per-batch gradients ∇L_b(θ) with their graphs kept, for products by one backward each."""

    def __init__(self, objective: Objective, leaves: List[torch.Tensor],
                 graphs: List[Tuple[List[torch.Tensor], List[int]]]) -> None:
        self.objective = objective
        self.leaves = leaves
        self.graphs = graphs
        self.shapes = objective.space.shapes

    @classmethod
    def build(cls, objective: Objective, theta: torch.Tensor, budget: int, *,
              required: bool) -> Optional[_GradientGraphs]:
        space = objective.space
        leaves = [t.detach().clone().requires_grad_(True) for t in space.unflatten(theta).values()]
        named = dict(zip(space.names, leaves))
        try:
            return cls._build(objective, leaves, named, budget, required=required)
        except torch.cuda.OutOfMemoryError:
            # the free memory the budget was taken from went to someone else: fall back to
            # products that keep no graphs (or say so, when cached products were required)
            if objective.device.type == "cuda":
                torch.cuda.empty_cache()
            if required:
                raise MemoryError("cached Hessian products ran out of GPU memory while building "
                                  "the gradient graphs") from None
            return None

    @classmethod
    def _build(cls, objective: Objective, leaves: List[torch.Tensor], named: dict, budget: int, *,
               required: bool) -> Optional[_GradientGraphs]:
        batches = list(objective.batches())
        graphs: List[Tuple[List[torch.Tensor], List[int]]] = []
        for i, (xb, yb) in enumerate(batches):
            saved = [0]

            def pack(t: torch.Tensor, saved: List[int] = saved) -> torch.Tensor:
                saved[0] += t.numel() * t.element_size()
                return t

            with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
                loss = objective.batch_loss(named, xb, yb)
                gs = torch.autograd.grad(loss, leaves, create_graph=True, allow_unused=True)
            if i == 0 and saved[0] * len(batches) > budget:
                if required:
                    raise MemoryError(f"cached Hessian products need about {saved[0] * len(batches) / 2**30:.1f} "
                                      f"GiB, over the budget of {budget / 2**30:.1f} GiB")
                return None
            keep = [j for j, g in enumerate(gs) if g is not None and g.requires_grad]
            graphs.append(([gs[j] for j in keep], keep))
        return cls(objective, leaves, graphs)

    def hvp(self, v: torch.Tensor) -> torch.Tensor:
        tangent = list(self.objective.space.unflatten(v).values())
        out = torch.zeros_like(v)
        for gs, keep in self.graphs:
            if not gs:
                continue
            hv = torch.autograd.grad(gs, self.leaves, grad_outputs=[tangent[j] for j in keep],
                                     retain_graph=True, allow_unused=True)
            out += torch.cat([(h if h is not None else torch.zeros_like(p)).reshape(-1)
                              for h, p in zip(hv, self.leaves)])
        if getattr(self.objective, "sharded", False):
            from .. import distributed

            out = distributed.all_reduce_sum(out)
        return out

    def hvps(self, V: torch.Tensor) -> torch.Tensor:
        """Products with every row of ``V`` by one batched backward per data batch."""
        b = len(V)
        space = self.objective.space
        tangent = [V[:, a:e].reshape(b, *shape) for (a, e), shape in zip(space.offsets(), self.shapes)]
        out = torch.zeros_like(V)
        for gs, keep in self.graphs:
            if not gs:
                continue
            hv = torch.autograd.grad(gs, self.leaves, grad_outputs=[tangent[j] for j in keep],
                                     retain_graph=True, allow_unused=True, is_grads_batched=True)
            out += torch.cat([(h if h is not None else V.new_zeros(b, *p.shape)).reshape(b, -1)
                              for h, p in zip(hv, self.leaves)], dim=1)
        if getattr(self.objective, "sharded", False):
            from .. import distributed

            out = distributed.all_reduce_sum(out)
        return out


class PreconditionedOperator(LinearOperator):
    """v ↦ P^{-1/2} A P^{-1/2} v for a base operator A and a positive diagonal P (flat vector)."""

    def __init__(self, base: LinearOperator, p_diag: torch.Tensor) -> None:
        if p_diag.shape != (base.dim,):
            raise ValueError(f"p_diag must have length {base.dim}, got {tuple(p_diag.shape)}")
        if not bool((p_diag > 0).all()):
            raise ValueError("the preconditioner must be positive")
        self.base = base
        self.dim = base.dim
        self.dtype = base.dtype
        self.device = base.device
        self.scale = p_diag.to(device=self.device, dtype=self.dtype).rsqrt()

    @property
    def hvps(self) -> int:
        return self.base.hvps

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        return self.scale * self.base.matvec(self.scale * v.to(device=self.device, dtype=self.dtype))

    def matmat(self, V: torch.Tensor) -> torch.Tensor:
        return self.scale * self.base.matmat(self.scale * V.to(device=self.device, dtype=self.dtype))


class BlockOperator(LinearOperator):
    """The diagonal block H_BB of a base operator for one slice B of the flat vector.

    Used for per-layer curvature: the top eigenvalue of H restricted to one layer's parameters.
    Each product costs one full product with the base operator.
    """

    def __init__(self, base: LinearOperator, block: slice) -> None:
        self.base = base
        self.block = block
        start, stop, _ = block.indices(base.dim)
        self.dim = stop - start
        self.dtype = base.dtype
        self.device = base.device

    @property
    def hvps(self) -> int:
        return self.base.hvps

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        full = torch.zeros(self.base.dim, dtype=self.dtype, device=self.device)
        full[self.block] = v.to(device=self.device, dtype=self.dtype)
        return self.base.matvec(full)[self.block]


class DenseOperator(LinearOperator):
    """A symmetric matrix as an operator (tests, closed-form checks, small problems)."""

    def __init__(self, matrix: torch.Tensor) -> None:
        if matrix.dim() != 2 or matrix.shape[0] != matrix.shape[1]:
            raise ValueError("need a square matrix")
        self.matrix = matrix
        self.dim = int(matrix.shape[0])
        self.dtype = matrix.dtype
        self.device = matrix.device
        self._count = 0

    @property
    def hvps(self) -> int:
        return self._count

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        self._count += 1
        return self.matrix @ v.to(dtype=self.dtype, device=self.device)

    def matmat(self, V: torch.Tensor) -> torch.Tensor:
        self._count += V.shape[0]
        return V.to(dtype=self.dtype, device=self.device) @ self.matrix.T
