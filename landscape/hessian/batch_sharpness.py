"""Batch sharpness: the curvature that mini-batch SGD actually steps along.

Andreyev & Beneventano 2024 ("Edge of Stochastic Stability: Revisiting the Edge of Stability for
SGD") show that for mini-batch SGD the quantity that rises and then stabilises at 2/η is not the
full-batch λ_max but the *batch sharpness*

    BS = E_B[ g_Bᵀ H_B g_B / ‖g_B‖² ],

the expected directional curvature of the mini-batch loss L_B along its own gradient g_B = ∇L_B,
over mini-batches B of the training batch size (full-batch λ_max generally sits below it). It is
the quantity that decides whether one SGD step on B increases L_B (the quadratic model of
L_B(θ − ηg_B) rises iff g_Bᵀ H_B g_B/‖g_B‖² > 2/η).

Here every mini-batch is a fresh :meth:`~landscape.objective.Objective.with_data` view of the
Objective's evaluation set (the same private model copy, loss and BatchNorm mode: with
``bn_mode="train"`` each batch uses its own statistics, as in training), one gradient and one
Hessian-vector product per batch. Batches are drawn without replacement from seeded random
permutations (successive permutations when more batches are asked for than fit in one pass).
The estimate is the mean over ``batches`` mini-batches with its standard error s/√n.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Optional, Tuple

import torch

from ..checkpoint import OptimizerState
from ..errors import OptionError
from ..objective import Objective
from .preconditioner import is_adaptive
from .stability import Stability, stability


@dataclass(frozen=True)
class BatchSharpness:
    """Mean of g_Bᵀ H_B g_B / ‖g_B‖² over ``batches`` mini-batches of ``batch_size`` samples."""

    value: float
    stderr: float
    batch_size: int
    batches: int
    values: Tuple[float, ...]
    seed: int
    n: int
    hvps: int

    def to_json(self) -> dict:
        return {"batch_sharpness": self.value, "stderr": self.stderr, "batch_size": self.batch_size,
                "batches": self.batches, "values": list(self.values), "seed": self.seed,
                "n_samples": self.n, "hvps": self.hvps,
                "definition": "E_B[g_B^T H_B g_B / |g_B|^2] (Andreyev & Beneventano 2024)"}


def batch_indices(n: int, *, batch_size: int, batches: int, seed: int) -> torch.Tensor:
    """``(batches, batch_size)`` sample indices: disjoint within each seeded permutation of 0..n−1."""
    gen = torch.Generator().manual_seed(int(seed))
    per_pass = n // batch_size
    passes = math.ceil(batches / per_pass)
    perms = torch.stack([torch.randperm(n, generator=gen)[:per_pass * batch_size] for _ in range(passes)])
    return perms.reshape(-1, batch_size)[:batches]


def directional_curvature(objective: Objective, theta: Optional[torch.Tensor] = None) -> torch.Tensor:
    """gᵀHg/‖g‖² of the objective's mean loss along its own gradient (a 0-d tensor, no sync)."""
    _, g = objective.value_and_grad(theta)
    hg = objective.hvp(g, theta)
    return (g @ hg) / (g @ g)


def batch_sharpness(objective: Objective, *, batch_size: int, batches: int = 20, seed: int = 0,
                    theta: Optional[torch.Tensor] = None) -> BatchSharpness:
    """Batch sharpness of ``objective`` at ``theta`` (module docstring) over mini-batches of
    ``batch_size`` samples drawn from its evaluation set."""
    if batch_size < 1 or batches < 1:
        raise OptionError("batch sharpness needs {train_batch_size} >= 1 and {batches} >= 1")  # the configs' names
    if batch_size > objective.n:
        raise OptionError("{train_batch_size} {value} exceeds the {n} evaluation samples", value=batch_size, n=objective.n)
    idx = batch_indices(objective.n, batch_size=batch_size, batches=batches, seed=seed).to(objective.x.device)
    out = torch.empty(len(idx), dtype=torch.float64, device=objective.device)
    hvps = 0
    for i, rows in enumerate(idx):
        sub = objective.with_data(objective.x[rows], objective.y[rows], batch_size=batch_size, shard=False)
        out[i] = directional_curvature(sub, theta).double()
        hvps += sub.hvp_count
    values = tuple(out.tolist())
    m = len(values)
    mean = float(out.mean())
    stderr = float(out.std(unbiased=True) / math.sqrt(m)) if m > 1 else float("nan")
    return BatchSharpness(mean, stderr, int(batch_size), m, values, int(seed), objective.n, hvps)


def train_batch_size(checkpoint_meta: Optional[dict], override: Optional[int] = None) -> Optional[int]:
    """The training batch size: ``override`` (``--train-batch-size``), else what ``landscape train``
    recorded in the checkpoint's ``landscape`` meta (``batch_size``), else None."""
    if override is not None:
        return int(override)
    value = (checkpoint_meta or {}).get("batch_size")
    return int(value) if value else None


def batch_stability(opt: Optional[OptimizerState], result: BatchSharpness, *,
                    lr: Optional[float] = None) -> Optional[Stability]:
    """The SGD stability verdict on the batch sharpness (its threshold is that of λ_max: 2/η, or
    (2 + 2β)/η with momentum); None for adaptive optimizers, whose verdict is on λ₁(P⁻¹H)."""
    if is_adaptive(opt):
        return None
    st = stability(opt, lr=lr, lambda_max=result.value)
    return replace(st, on="batch sharpness E_B[g_B^T H_B g_B/|g_B|^2]",
                   notes=st.notes + (f"batch sharpness over {result.batches} mini-batches of "
                                     f"{result.batch_size} (± {result.stderr:.3g} standard error)",))
