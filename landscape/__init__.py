"""landscape — loss-landscape geometry for deep-learning checkpoints and training runs.

Python API (what a notebook imports; see docs/python-api.md)::

    import landscape
    obj = landscape.Objective(model, loader, loss=criterion)      # your model, DataLoader, loss
    landscape.top_eigenvalues(obj, k=5)                            # Hessian eigenvalues (Lanczos)
    landscape.trace(obj); landscape.density(obj)                   # Hutch++ trace, SLQ density
    landscape.slice_surface(obj, x=(-1, 1, 21), y=(-1, 1, 21))     # 2-D slice (Li et al.)
    landscape.sharpness(obj, measure="worst-case")                 # SAM / ASAM / average / eps / PAC-Bayes
    landscape.stability(obj, optimizer)                            # λ_max or λ₁(P⁻¹H) vs the threshold
    landscape.report([result, ...], "report.html")                 # one offline page

    mon = landscape.Monitor(model, optimizer, train=loader, loss=criterion, out="runs/r1")
    ...; optimizer.step(); mon.step(loss=loss.item())             # in your own training loop
    mon.epoch(epoch, test_loss=tl); mon.close()

    s = landscape.open_session("run/epoch_010.pt")                 # a checkpoint written by landscape

Names are imported on first use, so ``import landscape`` stays light (no Hessian, slice, report
or plotting modules until they are needed).
"""

from __future__ import annotations

import importlib
from typing import Any, Dict, Optional, Tuple

from .errors import LandscapeError  # noqa: F401 (public)
from .version import __version__  # noqa: E402,F401 (public; its own module, see version.py)

# public name -> (module, attribute; None: the module itself)
_LAZY: Dict[str, Tuple[str, Optional[str]]] = {
    "Objective": (".objective", "Objective"),
    "Evaluation": (".objective", "Evaluation"),
    "Monitor": (".monitor", "Monitor"),
    "top_eigenvalues": (".notebook", "top_eigenvalues"),
    "trace": (".notebook", "trace"),
    "density": (".notebook", "density"),
    "slice_surface": (".notebook", "slice_surface"),
    "sharpness": (".sharpness", None),        # the package, callable: landscape.sharpness(obj, ...)
    "stability": (".notebook", "stability"),
    "adam_first_step": (".notebook", "adam_first_step"),
    "probe_spikes": (".notebook", "probe_spikes"),
    "report": (".report", None),              # the package, callable: landscape.report(items, out)
    "Checkpoint": (".checkpoint", "Checkpoint"),
    "OptimizerState": (".checkpoint", "OptimizerState"),
    "load_checkpoint": (".checkpoint", "load_checkpoint"),
    "map_optimizer_state": (".checkpoint", "map_optimizer_state"),
    "Dataset": (".data", "Dataset"),
    "load_data": (".data", "load_data"),
    "ModelSpec": (".models", "ModelSpec"),
    "build_model": (".models", "build_model"),
    "ParamSpace": (".params", "ParamSpace"),
    "Session": (".session", "Session"),
    "open_session": (".session", "open_session"),
}

__all__ = sorted([*_LAZY, "LandscapeError"])


def __getattr__(name: str) -> Any:
    """Import a public name on first use (PEP 562) and cache it in the package namespace."""
    try:
        module, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'landscape' has no attribute {name!r}") from None
    imported = importlib.import_module(module, __name__)
    value = imported if attr is None else getattr(imported, attr)
    globals()[name] = value
    return value


def __dir__() -> list:
    return sorted(set(globals()) | set(_LAZY))
