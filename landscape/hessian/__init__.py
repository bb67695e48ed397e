"""The Hessian engine: operators, Lanczos, power iteration, trace, spectral density,
adaptive preconditioners and stability thresholds (see each module for its method and sources)."""

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
from .power import power_iteration
from .preconditioner import coupled_weight_decay, preconditioner_diag
from .stability import Stability, stability, threshold_for
from .trace import TraceResult, hutchinson, hutchpp

__all__ = [
    "BlockOperator", "DenseOperator", "DensityResult", "EigenResult", "HessianConfig", "HessianOperator",
    "HessianReport", "LayerEigen", "LinearOperator", "PreconditionedOperator", "Stability", "TraceResult",
    "analyze_hessian", "coupled_weight_decay", "eigsh", "hutchinson", "hutchpp", "per_layer_eigen",
    "power_iteration", "preconditioner_diag", "slq", "stability", "threshold_for", "top_eigen",
]
