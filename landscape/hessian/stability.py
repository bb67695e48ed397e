"""Linear stability thresholds of the checkpoint's optimizer, and the verdict.

On a quadratic with curvature λ (for adaptive methods: an eigenvalue of P⁻¹H with P frozen), the
PyTorch update rules are linear recursions; each diverges once its characteristic polynomial has
a root at z = −1 (the roots leave the unit circle there first for 0 ≤ β < 1):

| optimizer (PyTorch form)                     | diverges when λ exceeds     | characteristic polynomial       |
|----------------------------------------------|-----------------------------|---------------------------------|
| SGD                                          | 2/η                         | z − (1 − ηλ)                    |
| SGD momentum β, dampening δ (heavy ball)     | (2 + 2β)/((1 − δ)η)         | z² − (1 + β − (1−δ)ηλ)z + β     |
| SGD Nesterov β                               | (2 + 2β)/((1 + 2β)η)        | z² − (1+β)(1 − ηλ)z + β(1 − ηλ) |
| Adam/AdamW/Adamax, frozen P (EMA momentum β₁) | (2 + 2β₁)/((1 − β₁)η)      | z² − (1 + β₁ − (1−β₁)ηλ)z + β₁  |
| RMSprop (momentum μ), Adagrad (η_t)          | (2 + 2μ)/η, 2/η_t           |                                 |

Sources: Cohen et al. 2021 ("Gradient Descent on Neural Networks Typically Occurs at the Edge of
Stability", 2/η and (2+2β)/η for heavy ball); Cohen et al. 2022 ("Adaptive Gradient Methods at
the Edge of Stability", (2+2β₁)/((1−β₁)η) on λ₁(P⁻¹H), 38/η at β₁ = 0.9); the Nesterov and
dampening forms follow from the same z = −1 substitution (derived in the docstring above and
checked by simulation in the tests).

Weight decay: coupled L2 (``weight_decay`` of SGD/Adam/RMSprop/Adagrad) turns the operator into
H + wd·I — the caller passes λ_max of that operator. AdamW's decoupled decay θ ← (1 − η·wd)θ
acts outside P and the EMA; the z = −1 condition then gives the threshold
(1 + β₁)(2 − η·wd)/((1 − β₁)η) on λ₁(P⁻¹H), which is what is used here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Tuple

from ..checkpoint import OptimizerState
from .preconditioner import ADAM_LIKE, adagrad_lr, decoupled_weight_decay, is_adaptive


@dataclass(frozen=True)
class Stability:
    """Sharpness (λ_max, or λ₁(P⁻¹H) for adaptive optimizers) against the optimizer's threshold."""

    optimizer: str
    lr: Optional[float]
    threshold: float
    sharpness: float
    ratio: float
    eta_lambda_max: float
    stable: Optional[bool]
    on: str = "H"
    rule: str = ""
    notes: Tuple[str, ...] = ()

    def to_json(self) -> dict:
        return {"optimizer": self.optimizer, "lr": self.lr, "threshold": self.threshold,
                "sharpness": self.sharpness, "ratio": self.ratio, "eta_lambda_max": self.eta_lambda_max,
                "stable": self.stable, "on": self.on, "rule": self.rule, "notes": list(self.notes)}


def threshold_for(opt: Optional[OptimizerState], lr: float) -> Tuple[float, str, str, Tuple[str, ...]]:
    """``(threshold, rule, on, notes)`` for the optimizer at learning rate ``lr``."""
    notes: Tuple[str, ...] = ()
    kind = opt.type if opt is not None else "sgd"
    if opt is None:
        return 2.0 / lr, "2/η", "H", ("no optimizer state: plain SGD assumed",)
    if kind == "sgd":
        b, damp = opt.momentum, opt.dampening
        if b == 0:
            return 2.0 / lr, "2/η", "H", notes
        if opt.nesterov:
            return (2 + 2 * b) / ((1 + 2 * b) * lr), "(2+2β)/((1+2β)η)", "H", notes
        if damp:
            return (2 + 2 * b) / ((1 - damp) * lr), "(2+2β)/((1−δ)η)", "H", notes
        return (2 + 2 * b) / lr, "(2+2β)/η", "H", notes
    if kind in ADAM_LIKE or kind in ("radam", "adabound", "amsbound"):
        b1 = (opt.betas or (0.9, 0.999))[0]
        wd = decoupled_weight_decay(opt)
        if wd:
            return ((1 + b1) * (2 - lr * wd) / ((1 - b1) * lr), "(1+β₁)(2−η·wd)/((1−β₁)η)", "P^-1 H",
                    (f"AdamW decoupled weight decay {wd:g} lowers the threshold",))
        return (2 + 2 * b1) / ((1 - b1) * lr), "(2+2β₁)/((1−β₁)η)", "P^-1 H", notes
    if kind == "rmsprop":
        mu = opt.momentum
        if mu:
            return (2 + 2 * mu) / lr, "(2+2μ)/η", "P^-1 H", notes
        return 2.0 / lr, "2/η", "P^-1 H", notes
    if kind == "adagrad":
        lr_t = adagrad_lr(opt)
        return 2.0 / lr_t, "2/η_t", "P^-1 H", ((f"lr_decay: η_t = {lr_t:g}",) if lr_t != lr else ())
    if kind == "adadelta":
        return 2.0 / lr, "2/η", "P^-1 H", ("adadelta: P from the current acc_delta (approximate)",)
    return float("nan"), "", "H", (f"no stability threshold known for optimizer {kind!r}",)


def stability(opt: Optional[OptimizerState], *, lr: Optional[float] = None, lambda_max: float,
              preconditioned_lambda_max: Optional[float] = None) -> Stability:
    """The stability verdict for the checkpoint's optimizer (module docstring).

    ``lr`` overrides the checkpoint's learning rate (e.g. when a schedule changed it).
    ``lambda_max`` is λ_max of the curvature the optimizer sees (H, or H + wd·I with coupled
    decay); adaptive optimizers need ``preconditioned_lambda_max`` = λ₁(P^{-1/2}(H + wd)P^{-1/2}).
    """
    name = opt.type if opt is not None else "sgd"
    eta = lr if lr is not None else (opt.lr if opt is not None else None)
    notes = tuple(opt.notes) if opt is not None else ()
    if eta is None or not eta > 0:
        nan = float("nan")
        return Stability(name, eta, nan, float(lambda_max), nan, nan, None, "H", "",
                         notes + ("no learning rate: pass --lr",))
    thr, rule, on, extra = threshold_for(opt, float(eta))
    notes = notes + extra
    if is_adaptive(opt):
        sharp = float(preconditioned_lambda_max) if preconditioned_lambda_max is not None else float("nan")
        if preconditioned_lambda_max is None:
            notes = notes + ("adaptive optimizer: the verdict needs the preconditioned λ_max",)
    else:
        sharp = float(lambda_max)
    ratio = sharp / thr if thr == thr and thr > 0 else float("nan")
    stable = None if math.isnan(ratio) else bool(ratio <= 1.0)
    return Stability(name, float(eta), float(thr), sharp, ratio, float(eta) * sharp, stable, on, rule, notes)


BN_EVAL_NOTE = ("BatchNorm in eval mode (running statistics): the Hessian then has curvature in "
                "directions training never moves (e.g. a bias just before BatchNorm has zero gradient "
                "with batch statistics, so Adam's v is ~0 there and P^-1 H blows up); for the "
                "training dynamics rerun with --bn-mode train")


def bn_eval_note(objective: object) -> Optional[str]:
    """:data:`BN_EVAL_NOTE` when the Objective evaluates a BatchNorm model with running statistics.

    A stability verdict is about the objective the optimizer followed, which for a BatchNorm
    network is the per-batch-statistics (``bn_mode="train"``) loss.
    """
    import torch

    model = getattr(objective, "model", None)
    if getattr(objective, "bn_mode", "eval") != "eval" or model is None:
        return None
    has_bn = any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules())
    return BN_EVAL_NOTE if has_bn else None
