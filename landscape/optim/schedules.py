"""Epoch-level learning-rate schedules for ``landscape train --scheduler``.

- ``plateau``: ``torch.optim.lr_scheduler.ReduceLROnPlateau`` on a logged metric; the studies we
  serve used mode ``max`` on test accuracy, factor 0.9, patience 10 (our defaults).
- ``step``: multiply the learning rate by ``step_gamma`` every ``step_size`` epochs.
- ``cosine``: cosine annealing from the initial rate to ``eta_min`` over the run's epochs.
- ``none``: constant.

Schedules step once per epoch, after the epoch's row of ``log.csv`` is written (so that row's
``lr`` is the rate the epoch was trained with).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Mapping, Optional

import torch

from ..errors import SpecError, SpecOptionError

SCHEDULERS = ("none", "plateau", "step", "cosine")
METRICS = ("test_acc", "test_loss", "train_acc", "train_loss")


@dataclass(frozen=True)
class ScheduleConfig:
    name: str = "none"
    metric: str = "test_acc"        # plateau: which log.csv column it watches
    mode: str = "max"               # plateau
    factor: float = 0.9             # plateau
    patience: int = 10              # plateau
    step_size: int = 30             # step
    step_gamma: float = 0.1         # step
    eta_min: float = 0.0            # cosine
    epochs: int = 10                # cosine: the run's length

    def to_json(self) -> dict:
        return asdict(self)


class EpochScheduler:
    """Wraps a torch scheduler; :meth:`epoch_end` takes the epoch's log row."""

    def __init__(self, optimizer: torch.optim.Optimizer, cfg: ScheduleConfig) -> None:
        self.cfg = cfg
        self.inner = _make(optimizer, cfg)

    def epoch_end(self, row: Mapping[str, float]) -> None:
        if self.inner is None:
            return
        if self.cfg.name == "plateau":
            self.inner.step(float(row[self.cfg.metric]))
        else:
            self.inner.step()


def _make(opt: torch.optim.Optimizer, cfg: ScheduleConfig) -> Optional[object]:
    sched = torch.optim.lr_scheduler
    if cfg.name == "none":
        return None
    if cfg.name == "plateau":
        if cfg.metric not in METRICS:
            raise SpecOptionError("{plateau_metric} {value!r}: choose {choices}", value=cfg.metric, choices=", ".join(METRICS))
        if cfg.mode not in ("min", "max"):
            raise SpecOptionError("{plateau_mode} {value!r}: choose min or max", value=cfg.mode)
        return sched.ReduceLROnPlateau(opt, mode=cfg.mode, factor=cfg.factor, patience=cfg.patience)
    if cfg.name == "step":
        if cfg.step_size < 1:
            raise SpecOptionError("{step_size} must be at least 1 epoch")
        return sched.StepLR(opt, step_size=cfg.step_size, gamma=cfg.step_gamma)
    if cfg.name == "cosine":
        return sched.CosineAnnealingLR(opt, T_max=max(1, cfg.epochs), eta_min=cfg.eta_min)
    raise SpecError(f"unknown scheduler {cfg.name!r}; choose {', '.join(SCHEDULERS)}")
