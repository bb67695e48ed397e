"""One place that builds every optimizer family the studies compare, with its hyper-parameters.

Families (``landscape train --optimizer``): sgd (with ``momentum``/``nesterov``/``dampening``),
adagrad, rmsprop (``alpha``, ``momentum``, ``centered``), adadelta (``rho``), adam, amsgrad
(Adam with ``amsgrad=True``), adamw (decoupled decay), radam, adabound / amsbound
(:mod:`landscape.optim.adabound`, ``final_lr``, ``gamma``) and swats (Adam that switches to SGD
by Keskar & Socher's criterion, :mod:`landscape.optim.switching`). All but the last three are
``torch.optim`` classes used as they are.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Iterable, Tuple

import torch

from ..errors import SpecError
from .adabound import AdaBound
from .switching import SWATS

FAMILIES: Tuple[str, ...] = ("sgd", "adagrad", "rmsprop", "adadelta", "adam", "amsgrad", "adamw",
                             "radam", "adabound", "amsbound", "swats")
ADAPTIVE: Tuple[str, ...] = tuple(f for f in FAMILIES if f != "sgd")


@dataclass(frozen=True)
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

    def to_json(self) -> dict:
        d = asdict(self)
        d["betas"] = list(self.betas)
        return d


def make_optimizer(params: Iterable[torch.nn.Parameter], cfg: OptimizerConfig) -> torch.optim.Optimizer:
    """The optimizer of family ``cfg.name`` over ``params`` (a bad name is a SpecError one-liner)."""
    name = cfg.name.lower()
    params = list(params)
    betas = (float(cfg.betas[0]), float(cfg.betas[1]))
    if name == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, dampening=cfg.dampening,
                               nesterov=cfg.nesterov, weight_decay=cfg.weight_decay)
    if name in ("adam", "amsgrad"):
        return torch.optim.Adam(params, lr=cfg.lr, betas=betas, eps=cfg.eps,
                                weight_decay=cfg.weight_decay, amsgrad=(name == "amsgrad"))
    if name == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, betas=betas, eps=cfg.eps, weight_decay=cfg.weight_decay)
    if name == "radam":
        return torch.optim.RAdam(params, lr=cfg.lr, betas=betas, eps=cfg.eps, weight_decay=cfg.weight_decay)
    if name == "adagrad":
        return torch.optim.Adagrad(params, lr=cfg.lr, lr_decay=cfg.lr_decay, eps=cfg.eps,
                                   weight_decay=cfg.weight_decay,
                                   initial_accumulator_value=cfg.initial_accumulator_value)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=cfg.lr, alpha=cfg.alpha, eps=cfg.eps, momentum=cfg.momentum,
                                   centered=cfg.centered, weight_decay=cfg.weight_decay)
    if name == "adadelta":
        return torch.optim.Adadelta(params, lr=cfg.lr, rho=cfg.rho, eps=cfg.eps, weight_decay=cfg.weight_decay)
    if name in ("adabound", "amsbound"):
        return AdaBound(params, lr=cfg.lr, betas=betas, final_lr=cfg.final_lr, gamma=cfg.gamma, eps=cfg.eps,
                        weight_decay=cfg.weight_decay, amsbound=(name == "amsbound"))
    if name == "swats":
        return SWATS(params, lr=cfg.lr, betas=betas, eps=cfg.eps, weight_decay=cfg.weight_decay)
    raise SpecError(f"unknown optimizer {cfg.name!r}; choose {', '.join(FAMILIES)}")


def optimizer_type(opt: torch.optim.Optimizer) -> str:
    """The family name landscape records for a live optimizer (what analyses key on).

    Adam with ``amsgrad=True`` is ``adam`` (its ``amsgrad`` flag is read from the state), AMSBound
    is ``amsbound``, and SWATS is ``adam`` or ``sgd`` according to its phase.
    """
    group = opt.param_groups[0]
    if "landscape_type" in group:
        return str(group["landscape_type"])
    if isinstance(opt, AdaBound):
        return "amsbound" if group.get("amsbound") else "adabound"
    names = {torch.optim.SGD: "sgd", torch.optim.AdamW: "adamw", torch.optim.Adam: "adam",
             torch.optim.RAdam: "radam", torch.optim.NAdam: "nadam", torch.optim.Adamax: "adamax",
             torch.optim.RMSprop: "rmsprop", torch.optim.Adagrad: "adagrad", torch.optim.Adadelta: "adadelta"}
    for cls, label in names.items():
        if type(opt) is cls:
            return label
    return type(opt).__name__.lower()
