"""Hessian operators: H(θ) (optionally shifted by a diagonal) and P^{-1/2} H P^{-1/2}.

Every product goes through the :class:`~landscape.objective.Objective`, i.e. over the whole
evaluation set with the exact 1/N weighting across unequal batches. Products are
forward-over-reverse (``jvp`` of ``grad``) by default, double backward with ``method="rev"``.
Each operator counts the Hessian-vector products it made in ``hvps`` (a ``matmat`` of ``k``
vectors counts ``k``).

The preconditioned operator is the symmetric form of P⁻¹H used for adaptive optimizers
(Cohen et al. 2022, "Adaptive Gradient Methods at the Edge of Stability"): P⁻¹H and
P^{-1/2} H P^{-1/2} are similar matrices, so they have the same eigenvalues, and the latter is
symmetric so Lanczos applies.
"""

from __future__ import annotations

from typing import Optional, Union

import torch

from ..objective import Objective


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
        method: ``"fwd"`` (forward-over-reverse, default) or ``"rev"`` (double backward).
        shift: a scalar or a flat vector added on the diagonal, e.g. coupled L2 weight decay
            (the gradient of ``wd/2·‖θ‖²`` adds ``wd·I`` to the curvature). Default none.
    """

    def __init__(self, objective: Objective, theta: Optional[torch.Tensor] = None, *,
                 method: str = "fwd", shift: Union[None, float, torch.Tensor] = None) -> None:
        if method not in ("fwd", "rev"):
            raise ValueError("method must be 'fwd' or 'rev'")
        self.objective = objective
        self.theta = (objective.theta0 if theta is None else theta).detach().to(
            device=objective.device, dtype=objective.dtype)
        self.method = method
        self.dim = objective.dim
        self.dtype = objective.dtype
        self.device = objective.device
        if isinstance(shift, torch.Tensor):
            shift = shift.to(device=self.device, dtype=self.dtype)
            if shift.shape != (self.dim,):
                raise ValueError(f"shift must be a scalar or a vector of length {self.dim}")
        self.shift = shift
        self._count = 0

    @property
    def hvps(self) -> int:
        return self._count

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        v = v.to(device=self.device, dtype=self.dtype)
        out = self.objective.hvp(v, self.theta, method=self.method)
        self._count += 1
        if self.shift is not None:
            out = out + self.shift * v
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
