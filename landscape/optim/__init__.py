"""Optimizer families, schedules and switching for ``landscape train`` (see factory.py)."""

from .adabound import AdaBound, bounds, clipped_rate
from .factory import ADAPTIVE, FAMILIES, OptimizerConfig, make_optimizer, optimizer_type
from .schedules import SCHEDULERS, EpochScheduler, ScheduleConfig
from .switching import SWATS, switch_to_sgd

__all__ = ["ADAPTIVE", "AdaBound", "EpochScheduler", "FAMILIES", "OptimizerConfig", "SCHEDULERS",
           "SWATS", "ScheduleConfig", "bounds", "clipped_rate", "make_optimizer", "optimizer_type",
           "switch_to_sgd"]
