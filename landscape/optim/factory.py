"""One place that builds every optimizer family the studies compare, with its hyper-parameters.

Families (``landscape train --optimizer``): sgd (with ``momentum``/``nesterov``/``dampening``),
adagrad, rmsprop (``alpha``, ``momentum``, ``centered``), adadelta (``rho``), adam, amsgrad
(Adam with ``amsgrad=True``), adamw (decoupled decay), radam, adabound / amsbound
(:mod:`landscape.optim.adabound`, ``final_lr``, ``gamma``) and swats (Adam that switches to SGD
by Keskar & Socher's criterion, :mod:`landscape.optim.switching`). All but the last three are
``torch.optim`` classes used as they are. Each family's builder is its record in
:mod:`landscape.optim.families`.
"""

from __future__ import annotations

from typing import Iterable, Tuple

import torch

from ..results import result
from .families import ADAPTIVE, TRAINABLE, build, recognise_optimizer

FAMILIES: Tuple[str, ...] = TRAINABLE   # the families `landscape train --optimizer` builds
__all__ = ["ADAPTIVE", "FAMILIES", "OptimizerConfig", "make_optimizer", "optimizer_type"]


@result()
class OptimizerConfig:
    """Hyper-parameters of any family (each family reads the ones it has; torch defaults otherwise)."""

    name: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.0
    dampening: float = 0.0
    nesterov: bool = False
    betas: Tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0
    alpha: float = 0.99                   # RMSprop smoothing constant
    centered: bool = False                # RMSprop: divide by the variance estimate (centred)
    rho: float = 0.9                      # Adadelta
    lr_decay: float = 0.0                 # Adagrad
    initial_accumulator_value: float = 0.0  # Adagrad
    final_lr: float = 0.1                 # AdaBound/AMSBound: the SGD-like rate the bounds close on
    gamma: float = 1e-3                   # AdaBound/AMSBound: convergence speed of the bounds


def make_optimizer(params: Iterable[torch.nn.Parameter], cfg: OptimizerConfig) -> torch.optim.Optimizer:
    """The optimizer of family ``cfg.name`` over ``params`` (a bad name is a SpecError one-liner)."""
    return build(params, cfg)


def optimizer_type(opt: torch.optim.Optimizer) -> str:
    """The family name landscape records for a live optimizer (what analyses key on;
    :func:`landscape.optim.families.recognise_optimizer`)."""
    return recognise_optimizer(opt)
