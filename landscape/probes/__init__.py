"""Probes for two questions from the studies landscape serves.

- :mod:`~landscape.probes.adam_first_step`: why Adam at a high learning rate degenerates after its
  first update (η·sign(g)-like step of norm ≈ η√d) while SGD trains.
- :mod:`~landscape.probes.spikes`: test-loss spikes and oscillation — detection in a log, and the
  curvature/landscape measurements at the checkpoints around them, with a verdict per hypothesis.
- :mod:`~landscape.probes.activations`: dead ReLUs and BatchNorm input statistics (used by both).
"""

from .activations import ActivationStats, activation_stats, bn_shift
from .adam_first_step import AdamFirstStepResult, FirstStepConfig, adam_first_step

__all__ = ["ActivationStats", "activation_stats", "bn_shift", "AdamFirstStepResult", "FirstStepConfig",
           "adam_first_step"]
