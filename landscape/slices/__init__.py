"""Loss slices: the loss and accuracy on a 1-D line or a 2-D grid through a checkpoint.

At every grid point ``θ(x, y) = θ_c + x·d₀ + y·d₁`` (directions from :mod:`landscape.directions`)
the train loss and accuracy and, optionally, the test loss and accuracy are evaluated in one
inference pass per set through the :class:`~landscape.objective.Objective` (Li et al. 2018,
"Visualizing the Loss Landscape of Neural Nets"; Goodfellow et al. 2015 for 1-D interpolation).

The package, one job per module:

* :mod:`.grid` — coordinates, auto ranges;
* :mod:`.evaluate` — the point evaluator, the loop over points (split across ranks), and how points
  are evaluated (memory layout, a batch size fixed by rule and stored);
* :mod:`.store` — the crash-safe HDF5 file and its journal (resume, refusal of other settings);
* :mod:`.surface` — the :class:`Surface` and :class:`Interpolation` results, :func:`read_surface`;
* :mod:`.api` — :func:`slice_checkpoint` / :class:`SliceConfig`, :func:`interpolate_checkpoints`
  / :class:`InterpolateConfig`, and the driver :func:`compute_surface`.

Storage (HDF5, readable by Li et al.'s ``plot_surface.py``; see docs/commands/slice.md):
``xcoordinates``, ``ycoordinates``, ``train_loss``, ``train_acc``, ``test_loss``, ``test_acc`` of
shape ``(nx,)`` or ``(nx, ny)`` indexed ``[ix, iy]``, a ``computed`` mask (uncomputed points are
NaN), the directions under ``directions/<i>/<name>`` and provenance attributes.
"""

from .api import (
    InterpolateConfig,
    SliceConfig,
    compute_surface,
    interpolate_checkpoints,
    slice_checkpoint,
    source_for,
)
from .evaluate import (
    DEFAULT_EVAL_BATCH,
    EvalConfig,
    PointEvaluator,
    choose_eval_config,
    compute_points,
    prepare_objectives,
    run_points,
    steady_allocator,
)
from .grid import AXIS_ORDER, Grid, Range, resolve_range
from .store import FORMAT, SurfaceStore, journal_path, settings_key
from .surface import Interpolation, Surface, read_surface

__all__ = [
    "AXIS_ORDER", "DEFAULT_EVAL_BATCH", "FORMAT", "EvalConfig", "Grid", "InterpolateConfig", "Interpolation",
    "PointEvaluator", "Range", "SliceConfig", "Surface", "SurfaceStore", "choose_eval_config", "compute_points",
    "compute_surface", "interpolate_checkpoints", "journal_path", "prepare_objectives", "read_surface",
    "resolve_range", "run_points", "settings_key", "slice_checkpoint", "source_for", "steady_allocator",
]
