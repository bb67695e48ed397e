"""landscape — loss-landscape geometry for deep-learning checkpoints.

Python API (what a notebook imports)::

    from landscape import open_session
    s = open_session("run/epoch_010.pt")          # model, data, loss recorded by `landscape train`
    s.train.evaluate()                              # Evaluation(loss=..., acc=..., n=...)
    s.train.hvp(v)                                  # Hessian-vector product over the train set
"""

__version__ = "0.1.0"

from .checkpoint import Checkpoint, OptimizerState, load_checkpoint, map_optimizer_state  # noqa: E402
from .data import Dataset, load_data  # noqa: E402
from .errors import LandscapeError  # noqa: E402
from .models import ModelSpec, build_model  # noqa: E402
from .monitor import Monitor  # noqa: E402
from .objective import Evaluation, Objective  # noqa: E402
from .params import ParamSpace  # noqa: E402
from .session import Session, open_session  # noqa: E402

__all__ = [
    "Checkpoint", "Dataset", "Evaluation", "LandscapeError", "ModelSpec", "Monitor", "Objective",
    "OptimizerState", "ParamSpace", "Session", "build_model", "load_checkpoint", "load_data",
    "map_optimizer_state", "open_session",
]
