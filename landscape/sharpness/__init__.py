"""Sharpness measures of a minimum, side by side (one module per measure).

- :mod:`.eps`: Keskar et al. 2017 ε-sharpness (box, percent of 1 + L);
- :mod:`.worst_case`: SAM worst-case sharpness in the L2 ball (Foret et al. 2021);
- :mod:`.adaptive`: adaptive (|θ|-scaled) worst-case sharpness (Kwon et al. 2021; Andriushchenko et al. 2023);
- :mod:`.average`: expected loss increase under Gaussian noise, with standard error;
- :mod:`.pac_bayes`: Jiang et al. 2020 PAC-Bayes σ (plain and magnitude-aware), bisection with MC error control;
- :mod:`.measure`: all of them plus λ_max, trace and the stability verdict for a checkpoint, several
  checkpoints, or a run folder.

Every loss goes through the :class:`~landscape.objective.Objective` at perturbed weights.
"""

from .adaptive import AdaptiveSharpness, adaptive_sharpness
from .average import AverageSharpness, average_sharpness
from .eps import EpsSharpness, eps_sharpness
from .measure import (
    MEASURES,
    CheckpointSharpness,
    SharpnessComparison,
    SharpnessConfig,
    SharpnessRun,
    compare_checkpoints,
    measure_run,
    measure_session,
    parse_measures,
)
from .pac_bayes import PacBayesSigma, pac_bayes_sigma
from .worst_case import WorstCaseSharpness, worst_case_sharpness

__all__ = [
    "MEASURES", "AdaptiveSharpness", "AverageSharpness", "CheckpointSharpness", "EpsSharpness",
    "PacBayesSigma", "SharpnessComparison", "SharpnessConfig", "SharpnessRun", "WorstCaseSharpness",
    "adaptive_sharpness", "average_sharpness", "compare_checkpoints", "eps_sharpness", "measure_run",
    "measure_session", "pac_bayes_sigma", "parse_measures", "worst_case_sharpness",
]

# landscape.sharpness(...) is also the notebook function (landscape.callable_package).
__import__("landscape.callable_package").callable_package.make_callable(__name__)
