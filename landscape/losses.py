"""Losses with exactly PyTorch's default scale, written as per-sample sums.

Instruments need the mean over the *whole* evaluation set, computed batch by batch with batches
of unequal size; so each loss returns the **sum over the batch** of the per-sample loss, and the
Objective divides by the total number of samples once. Per-sample definitions:

- ``ce``: ``nn.CrossEntropyLoss()`` (mean over samples of -log softmax at the label).
- ``mse``: ``nn.MSELoss()`` on logits vs one-hot targets (mean over samples *and* classes, no ½).
- ``mse-sum``: ½‖f(x) − y‖² summed over classes, mean over samples (the edge-of-stability papers'
  convention); its Hessian is C/2 times that of ``mse`` for C classes.
- ``mse-softmax``: ``nn.MSELoss()`` on softmax outputs vs one-hot (Li et al.'s loss-landscape code).

Besides these names, a loss may be the user's own: an ``nn.Module`` criterion (e.g.
``nn.CrossEntropyLoss(label_smoothing=0.1)``) or any callable ``loss(output, y)`` returning the
*mean* over the batch. :func:`resolve_loss` turns each into the same per-batch sum, batch mean ×
batch size, which is exact for every loss that averages per-sample terms (all of PyTorch's
``reduction="mean"`` losses without class weights), so the 1/N weighting stays exact with unequal
batches.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, Union

import torch
import torch.nn.functional as F
from torch import nn

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

_CLASS_CRITERIA = (nn.CrossEntropyLoss, nn.NLLLoss, nn.MultiMarginLoss)


@dataclass(frozen=True)
class LossFn:
    """A loss resolved from a name, a criterion or a callable.

    ``sum(output, y)`` is the batch's sum of per-sample losses; ``targets`` says what the labels
    must be: ``"class"`` (integer class indices in [0, C)), ``"class-or-soft"`` (class indices or
    class probabilities shaped like the output, as ``nn.CrossEntropyLoss`` accepts) or ``"any"``.
    ``custom`` is True for a user criterion or callable (checked once to be a batch mean);
    ``ignore_index`` is the label a PyTorch criterion would silently skip (refused in the data).
    """

    name: str
    sum: SumLoss
    targets: str = "class"
    custom: bool = False
    ignore_index: int = -100

    def mean(self, output: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The batch-mean loss, as a training loop uses it."""
        return self.sum(output, y) / output.shape[0]


LossSpec = Union[str, LossFn, nn.Module, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]


def _describe(loss: Any) -> str:
    if isinstance(loss, nn.Module):
        text = repr(loss).replace("\n", " ")
        return text if len(text) <= 80 else type(loss).__name__
    name = getattr(loss, "__qualname__", None) or getattr(loss, "__name__", None) or type(loss).__name__
    module = getattr(loss, "__module__", None)
    return f"{module}.{name}" if module and module not in ("builtins", "__main__") else str(name)


def _scaled_mean(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> SumLoss:
    def batch_sum(output: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return fn(output, y) * output.shape[0]

    return batch_sum


def resolve_loss(loss: LossSpec) -> LossFn:
    """A :class:`LossFn` for a loss name, an ``nn.Module`` criterion or a callable ``loss(output, y)``.

    A criterion must average over the batch (``reduction="mean"``, PyTorch's default); class
    weights are refused because their weighted mean does not split into per-batch sums.
    """
    if isinstance(loss, LossFn):
        return loss
    if isinstance(loss, str):
        try:
            return LossFn(loss, LOSSES[loss])
        except KeyError:
            raise SpecError(f"unknown loss {loss!r}; choose one of {', '.join(LOSSES)}, "
                            "or pass a criterion (nn.Module) or a callable loss(output, y)") from None
    if isinstance(loss, nn.Module):
        reduction = getattr(loss, "reduction", "mean")
        if reduction not in ("mean", "batchmean"):
            raise SpecError(f"loss {type(loss).__name__} has reduction={reduction!r}; landscape needs the "
                            "mean over the batch (reduction='mean', PyTorch's default)")
        if isinstance(loss, _CLASS_CRITERIA) and getattr(loss, "weight", None) is not None:
            raise SpecError(f"loss {type(loss).__name__} has class weights: its mean is weighted and does not "
                            "split over batches; pass a callable loss(output, y) averaging per-sample terms")
        targets = "class-or-soft" if isinstance(loss, nn.CrossEntropyLoss) else (
            "class" if isinstance(loss, _CLASS_CRITERIA) else "any")
        return LossFn(_describe(loss), _scaled_mean(loss), targets, True,
                      int(getattr(loss, "ignore_index", -100)))
    if callable(loss):
        return LossFn(_describe(loss), _scaled_mean(loss), "any", True)
    raise SpecError(f"loss must be a name ({', '.join(LOSSES)}), an nn.Module criterion or a callable; "
                    f"got {type(loss).__name__}")


def get_loss(loss: LossSpec) -> SumLoss:
    """The per-batch *sum* loss for ``loss`` (see module docstring for the exact definitions)."""
    return resolve_loss(loss).sum


def mean_loss(loss: LossSpec, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The batch-mean loss, as a training loop uses it."""
    return get_loss(loss)(logits, y) / logits.shape[0]


def check_mean_reduction(loss: LossFn, output: torch.Tensor, y: torch.Tensor) -> None:
    """Refuse a custom loss that is not a mean over the batch (e.g. a sum), on a probe batch.

    For a per-sample mean, L(all) = (1·L(first) + (B−1)·L(rest))/B; a sum or a batch-coupled loss
    breaks this, and with it the exact 1/N weighting over batches."""
    b = int(output.shape[0])
    if not loss.custom or b < 2:
        return
    whole = loss.sum(output, y) / b
    split = (loss.sum(output[:1], y[:1]) + loss.sum(output[1:], y[1:])) / b
    whole, split = float(whole), float(split)
    tol = 1e-4 * max(1.0, abs(whole)) if output.dtype != torch.float64 else 1e-9 * max(1.0, abs(whole))
    if abs(whole - split) > tol and whole == whole:
        raise SpecError(f"loss {loss.name} is not a mean over the batch (on {b} samples it gives {whole:.6g}, "
                        f"the mean of its per-sample parts {split:.6g}); use reduction='mean'")


def check_targets(loss: LossFn, output: torch.Tensor, y: torch.Tensor, *, what: str = "labels") -> None:
    """Refuse labels the loss would misread: floats where class indices are needed (they would be
    truncated), negative labels such as -100 (PyTorch's cross-entropy silently skips them) and
    labels outside the model's C outputs. ``output`` is the model's output on a probe batch."""
    if loss.targets == "any":
        return
    classes = int(output.shape[1]) if output.dim() >= 2 else 1
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        if loss.targets == "class-or-soft" and y.is_floating_point() and y.dim() == output.dim() \
                and y.shape[1:] == output.shape[1:]:
            return
        raise SpecError(f"{what} are {str(y.dtype).replace('torch.', '')}; loss {loss.name} needs integer class "
                        f"indices (floats would be truncated)")
    if y.numel() == 0:
        return
    lo, hi = (int(v) for v in torch.stack([y.min(), y.max()]).tolist())
    if lo < 0:
        extra = " (PyTorch's cross-entropy would silently ignore them)" if lo == loss.ignore_index else ""
        raise SpecError(f"{what} include {lo}{extra}; loss {loss.name} needs class indices in 0..{classes - 1}")
    if hi >= classes:
        raise SpecError(f"{what} include {hi} but the model has {classes} outputs; loss {loss.name} needs "
                        f"class indices in 0..{classes - 1}")
    if loss.ignore_index >= 0 and bool((y == loss.ignore_index).any()):
        raise SpecError(f"{what} include {loss.ignore_index}, the criterion's ignore_index: those samples would "
                        "be silently skipped")
