"""Losses with exactly PyTorch's default scale, written as per-sample sums.

Instruments need the mean over the *whole* evaluation set, computed batch by batch with batches
of unequal size; so each loss returns the **sum over the batch** of the per-sample loss, and the
Objective divides by the total number of samples once. Per-sample definitions:

- ``ce``: ``nn.CrossEntropyLoss()`` (mean over samples of -log softmax at the label).
- ``mse``: ``nn.MSELoss()`` on logits vs one-hot targets (mean over samples *and* classes, no ½).
- ``mse-sum``: ½‖f(x) − y‖² summed over classes, mean over samples (the edge-of-stability papers'
  convention); its Hessian is C/2 times that of ``mse`` for C classes.
- ``mse-softmax``: ``nn.MSELoss()`` on softmax outputs vs one-hot (Li et al.'s loss-landscape code).
"""

from __future__ import annotations

from typing import Callable, Dict

import torch
import torch.nn.functional as F

from .errors import SpecError

SumLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _one_hot(y: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    return F.one_hot(y, logits.shape[-1]).to(logits.dtype)


def ce_sum(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, y, reduction="sum")


def mse_sum(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    per_sample = ((logits - _one_hot(y, logits)) ** 2).mean(dim=-1)
    return per_sample.sum()


def half_sq_sum(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return 0.5 * ((logits - _one_hot(y, logits)) ** 2).sum()


def mse_softmax_sum(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    probs = torch.softmax(logits, dim=-1)
    return ((probs - _one_hot(y, logits)) ** 2).mean(dim=-1).sum()


LOSSES: Dict[str, SumLoss] = {
    "ce": ce_sum,
    "mse": mse_sum,
    "mse-sum": half_sq_sum,
    "mse-softmax": mse_softmax_sum,
}


def get_loss(name: str) -> SumLoss:
    """The per-batch *sum* loss for ``name`` (see module docstring for the exact definitions)."""
    try:
        return LOSSES[name]
    except KeyError:
        raise SpecError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}") from None


def mean_loss(name: str, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The batch-mean loss, as a training loop uses it."""
    return get_loss(name)(logits, y) / logits.shape[0]
