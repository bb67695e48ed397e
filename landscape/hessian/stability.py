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

The rules are defined once, per family, in :mod:`landscape.optim.families`.

Sources: Cohen et al. 2021 ("Gradient Descent on Neural Networks Typically Occurs at the Edge of
Stability", 2/η and (2+2β)/η for heavy ball); Cohen et al. 2022 ("Adaptive Gradient Methods at
the Edge of Stability", (2+2β₁)/((1−β₁)η) on λ₁(P⁻¹H), 38/η at β₁ = 0.9); the Nesterov and
dampening forms follow from the same z = −1 substitution (derived in the docstring above and
checked by simulation in the tests).

Weight decay: coupled L2 (``weight_decay`` of SGD/Adam/RMSprop/Adagrad) turns the operator into
H + wd·I — the caller passes λ_max of that operator. AdamW's decoupled decay θ ← (1 − η·wd)θ
acts outside P and the EMA; the z = −1 condition then gives the threshold
(1 + β₁)(2 − η·wd)/((1 − β₁)η) on λ₁(P⁻¹H), which is what is used here — for every optimizer with
decoupled decay (AdamW, and RAdam/Adam/NAdam with ``decoupled_weight_decay``).
"""

from __future__ import annotations

import math
from typing import Optional, Tuple

from ..checkpoint import OptimizerState
from ..optim.families import is_adaptive, threshold
from ..results import result


@result()
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


def threshold_for(opt: Optional[OptimizerState], lr: float) -> Tuple[float, str, str, Tuple[str, ...]]:
    """``(threshold, rule, on, notes)`` for the optimizer at learning rate ``lr``
    (:func:`landscape.optim.families.threshold`, the one definition)."""
    t = threshold(opt, lr)
    return t.value, t.rule, t.on, t.notes


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


def synthetic_state(kind: str, *, lr: float, momentum: float = 0.0,
                    betas: Tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> OptimizerState:
    """An optimizer state with hyper-parameters only (no buffers), to ask for a threshold (e.g. of
    a run not taken, as the first-step probe does for SGD and Adam at each learning rate)."""
    hyper = {"lr": lr, "momentum": momentum, "dampening": 0.0, "nesterov": False} if kind == "sgd" else \
        {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": 0.0, "amsgrad": False}
    return OptimizerState(kind, hyper, {})
