"""Li et al.'s own files (2018, "Visualizing the Loss Landscape of Neural Nets", code at
github.com/tomgoldstein/loss-landscape): surface files and direction files.

**Surface files** (their ``plot_surface.py``) hold ``xcoordinates``, ``ycoordinates`` (2-D) and
``train_loss``, ``train_acc``, ``test_loss``, ``test_acc`` allocated with shape
``(len(x), len(y))`` and filled with ``-1`` for "not computed yet". Three things differ from
this package's files, and :func:`read_surface` puts them right:

* **order**: they fill ``values.ravel()[i]`` for the ``i``-th point of ``np.meshgrid(x, y)``
  (shape ``(ny, nx)``, x varying fastest), so the flat buffer is in [iy, ix] order whatever
  shape the dataset declares; on a non-square grid the declared ``(nx, ny)`` array is
  scrambled. We read the flat buffer as ``(ny, nx)`` and transpose to our [ix, iy];
* **accuracy in percent** (``100·correct/total``): divided by 100 (unless every computed value
  is already ≤ 1, which their code never writes; then it is kept and the note says so);
* **-1 sentinel**: points still at exactly -1 in the loss are uncomputed (NaN, ``computed``
  false).

They carry no provenance attributes (``format``, ``settings_key``, ``landscape_version``), which
is how they are told apart from ours.

**Direction files** (their ``net_plotter.py``) hold groups ``xdirection`` and ``ydirection`` of
datasets ``"0"``, ``"1"``, ... one per tensor, in the order of ``model.parameters()``
(``dir_type=weights``) or of ``model.state_dict()`` (``dir_type=states``, BatchNorm statistics
and ``num_batches_tracked`` included). :func:`map_direction_tensors` names them by the model's
order, checking the count and every shape, and tells which of the two layouts it found.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from ..errors import LandscapeError

QUANTITIES = ("train_loss", "train_acc", "test_loss", "test_acc")
OUR_MARKERS = ("format", "settings_key", "landscape_version", "axis_order")
SENTINEL = -1.0
FORMAT = "li2018"


def is_li_surface(names: Sequence[str], attrs: Mapping[str, Any]) -> bool:
    """An HDF5 file with Li et al.'s datasets and none of this package's provenance attributes."""
    return ("xcoordinates" in names and any(q in names for q in QUANTITIES) and "computed" not in names
            and not any(k in attrs for k in OUR_MARKERS))


def meshgrid_to_xy(values: np.ndarray, nx: int, ny: Optional[int], *, name: str, source: str) -> np.ndarray:
    """Their flat buffer (meshgrid order, x fastest) as an array indexed [ix, iy] (or [ix])."""
    flat = np.asarray(values, dtype=np.float64).reshape(-1)
    n = nx * (ny or 1)
    if flat.size != n:
        raise LandscapeError(f"{source}: {name} has {flat.size} values; the coordinates make {n} points")
    return flat.copy() if ny is None else flat.reshape(ny, nx).T.copy()


@dataclass(frozen=True)
class LiSurface:
    """A Li et al. surface in this package's terms: arrays [ix, iy], accuracies as fractions."""

    arrays: Dict[str, np.ndarray]
    notes: Tuple[str, ...]


def read_surface(raw: Mapping[str, Any], *, source: str) -> LiSurface:
    """Convert Li et al.'s datasets (as read from the file) to our layout; see the module doc."""
    x = np.asarray(raw["xcoordinates"], dtype=np.float64).reshape(-1)
    y = np.asarray(raw["ycoordinates"], dtype=np.float64).reshape(-1) if "ycoordinates" in raw else None
    nx, ny = len(x), (len(y) if y is not None else None)
    vals = {q: meshgrid_to_xy(raw[q], nx, ny, name=q, source=source) for q in QUANTITIES if q in raw}
    ref = vals.get("train_loss", next(iter(vals.values())))
    computed = ref != SENTINEL
    for q in vals:
        vals[q] = np.where(computed, vals[q], np.nan)
    notes = [f"{source}: read as a Li et al. (2018) surface file (no landscape provenance); values put in "
             "[ix, iy] order from their meshgrid fill order"]
    pct = []
    for q in ("train_acc", "test_acc"):
        if q in vals:
            fin = vals[q][np.isfinite(vals[q])]
            if fin.size and fin.max() > 1.0:
                vals[q] = vals[q] / 100.0
                pct.append(q)
            elif fin.size:
                notes.append(f"{source}: {q} is already ≤ 1 everywhere; kept as a fraction")
    if pct:
        notes.append(f"{source}: {', '.join(pct)} converted from percent to fractions")
    missing = int((~computed).sum())
    if missing:
        notes.append(f"{source}: {missing} of {computed.size} points still hold their -1 placeholder "
                     "(not computed; shown as gaps)")
    arrays: Dict[str, np.ndarray] = {"xcoordinates": x, **vals, "computed": computed}
    if y is not None:
        arrays["ycoordinates"] = y
    return LiSurface(arrays, tuple(notes))


# ---------------------------------------------------------------------------------------------
# direction files


def is_li_direction_file(names: Sequence[str]) -> bool:
    return "xdirection" in names and "directions" not in names


def read_direction_groups(f: Any) -> List[List[np.ndarray]]:
    """The tensors of ``xdirection`` (and ``ydirection``) of an open h5py file, in index order."""
    rows = []
    for key in ("xdirection", "ydirection"):
        if key in f:
            grp = f[key]
            n = len(grp)
            if sorted(grp.keys(), key=lambda s: int(s) if s.isdigit() else -1) != [str(i) for i in range(n)]:
                raise LandscapeError(f"{key} must hold datasets named 0..{n - 1}")
            rows.append([np.asarray(grp[str(i)][()]) for i in range(n)])
    return rows


Layout = Sequence[Tuple[str, Tuple[int, ...]]]


def map_direction_tensors(tensors: Sequence[np.ndarray], *, params: Layout, states: Optional[Layout] = None,
                          where: str = "direction file") -> Tuple[Dict[str, np.ndarray], str]:
    """Name Li et al.'s tensors by the model's ``parameters()`` order (``weights``) or, when the
    count matches ``state_dict()`` instead, by its order (``states``); every shape must match.

    Returns the named tensors (for ``states``: parameters and floating buffers; integer buffers
    such as ``num_batches_tracked`` are dropped) and the layout found.
    """
    n = len(tensors)
    candidates = [("weights", params)]
    if states is not None:
        candidates.append(("states", states))
    for kind, layout in candidates:
        if n != len(layout):
            continue
        for i, ((name, shape), t) in enumerate(zip(layout, tensors)):
            if tuple(np.shape(t)) != tuple(shape):
                raise LandscapeError(f"{where}: tensor {i} has shape {tuple(np.shape(t))}, but {name} in the model's "
                                     f"{'parameters()' if kind == 'weights' else 'state_dict()'} order has "
                                     f"{tuple(shape)}")
        out = {name: np.asarray(t) for (name, _), t in zip(layout, tensors)
               if kind == "weights" or np.issubdtype(np.asarray(t).dtype, np.floating)}
        return out, kind
    counts = f"{len(params)} parameters" + (f" or {len(states)} state_dict entries" if states is not None else "")
    raise LandscapeError(f"{where}: {n} tensors, the model has {counts}; not a Li et al. direction file "
                         "for this model")
