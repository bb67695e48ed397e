"""The Hessian engine: operators, Lanczos, power iteration, trace, spectral density,
adaptive preconditioners, stability thresholds and the one curvature verdict (verdict.py) that
every stability judgement goes through (see each module for its method and sources)."""

from .analyze import (
    HessianConfig,
    HessianReport,
    LayerEigen,
    analyze_hessian,
    per_layer_eigen,
    top_eigen,
)
from .density import DensityResult, slq
from .lanczos import EigenResult, eigsh
from .operator import (
    BlockOperator,
    DenseOperator,
    HessianOperator,
    LinearOperator,
    PreconditionedOperator,
)
from .preconditioner import coupled_weight_decay, preconditioner_diag
from .stability import Stability, stability, threshold_for
from .trace import TraceResult, hutchinson, hutchpp
from .verdict import (
    CurvatureVerdict,
    TopEigen,
    curvature_verdict,
    top_eigenpair,
    training_objective,
)

__all__ = [
    "BlockOperator", "CurvatureVerdict", "DenseOperator", "DensityResult", "EigenResult", "HessianConfig", "HessianOperator",
    "HessianReport", "LayerEigen", "LinearOperator", "PreconditionedOperator", "Stability", "TopEigen", "TraceResult",
    "analyze_hessian", "coupled_weight_decay", "curvature_verdict", "eigsh", "hutchinson", "hutchpp", "per_layer_eigen",
    "preconditioner_diag", "slq", "stability", "threshold_for", "top_eigen",
    "top_eigenpair", "training_objective",
]
