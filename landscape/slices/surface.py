"""The results of a slice: :class:`Surface` (a 1-D or 2-D slice) and :class:`Interpolation`
(the line between two checkpoints), and reading a surface file back (journal included)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np

from ..errors import LandscapeError
from .grid import AXIS_ORDER, Grid
from .store import FORMAT, SurfaceStore

_NOT_PROVENANCE = ("settings", "settings_key", "directions_info", "metrics", "format")


@dataclass(frozen=True)
class Surface:
    """A computed (possibly partly) slice: coordinates, metric arrays ``[ix, iy]``, the mask."""

    xcoordinates: np.ndarray
    ycoordinates: Optional[np.ndarray]
    values: Dict[str, np.ndarray]
    computed: np.ndarray
    directions: Dict[str, Any] = field(default_factory=dict)
    provenance: Dict[str, Any] = field(default_factory=dict)
    path: Optional[str] = None
    stats: Dict[str, Any] = field(default_factory=dict)

    @property
    def dirs(self) -> int:
        return 1 if self.ycoordinates is None else 2

    def centre(self) -> Dict[str, float]:
        """Each metric at the origin, if the grid has it (the checkpoint's own values)."""
        grid = Grid(self.xcoordinates, self.ycoordinates)
        i = grid.centre_index()
        if i is None:
            return {}
        return {m: float(v.reshape(-1)[i]) for m, v in self.values.items()}

    def to_json(self) -> dict:
        out: Dict[str, Any] = {"out": self.path, "dirs": self.dirs, "axis_order": AXIS_ORDER,
                               "xcoordinates": self.xcoordinates.tolist()}
        if self.ycoordinates is not None:
            out["ycoordinates"] = self.ycoordinates.tolist()
        for m in ("train_loss", "train_acc", "test_loss", "test_acc"):
            out[m] = self.values[m].tolist() if m in self.values else None
        out["computed"] = self.computed.tolist()
        out.update({"n_points": int(self.computed.size), "n_computed": int(self.computed.sum()),
                    "n_nonfinite": int(self.n_nonfinite()), "centre": self.centre(),
                    "directions": self.directions, "provenance": self.provenance, "stats": self.stats})
        return out

    def n_nonfinite(self) -> int:
        """Computed points whose train loss is NaN or infinite."""
        loss = self.values.get("train_loss")
        return 0 if loss is None else int((self.computed & ~np.isfinite(loss)).sum())

    def summary(self) -> str:
        loss = self.values["train_loss"]
        done = self.computed & np.isfinite(loss)
        shape = "×".join(str(s) for s in self.computed.shape)
        lines = [f"{self.dirs}-D slice, {shape} points, {int(self.computed.sum())} computed"
                 + (f" ({self.stats.get('computed_now', 0)} now, {self.stats.get('seconds', 0):.1f} s)"
                    if self.stats else "")]
        if isinstance(self.directions, dict) and self.directions.get("file_format"):
            lines.append(f"directions: {self.directions.get('file')} read as a {self.directions['file_format']}")
        c = self.centre()
        if c:
            lines.append("centre: " + ", ".join(f"{k} {v:.6g}" for k, v in c.items()))
        if done.any():
            lines.append(f"train loss range: {float(loss[done].min()):.6g} .. {float(loss[done].max()):.6g}")
        if self.n_nonfinite():
            lines.append(f"non-finite train loss at {self.n_nonfinite()} point(s) (stored as NaN/inf)")
        if self.path:
            lines.append(f"wrote {self.path}")
        return "\n".join(lines)


@dataclass(frozen=True)
class Interpolation:
    """The loss along ``(1 − α)·θ_A + α·θ_B`` (Goodfellow et al. 2015); α = 0 is A, α = 1 is B."""

    surface: Surface

    def to_json(self) -> dict:
        s = self.surface
        out = {"alphas": s.xcoordinates.tolist()}
        for m in ("train_loss", "train_acc", "test_loss", "test_acc"):
            out[m] = s.values[m].tolist() if m in s.values else None
        out.update({"computed": s.computed.tolist(), "n_nonfinite": s.n_nonfinite(), "out": s.path,
                    "checkpoints": s.directions.get("checkpoints"), "distance": s.directions.get("distance"),
                    "provenance": s.provenance, "stats": s.stats})
        return out

    def summary(self) -> str:
        s = self.surface
        loss = s.values["train_loss"]
        lines = [f"interpolation over {len(s.xcoordinates)} values of alpha, "
                 f"distance ‖θ_B − θ_A‖ = {s.directions.get('distance', float('nan')):.6g}"]
        for a in (0.0, 1.0):
            i = np.flatnonzero(s.xcoordinates == a)
            if len(i):
                parts = [f"{m} {float(v[i[0]]):.6g}" for m, v in s.values.items()]
                lines.append(f"alpha {a:g}: " + ", ".join(parts))
        ok = np.isfinite(loss) & s.computed
        if ok.any():
            j = int(np.argmax(np.where(ok, loss, -np.inf)))
            lines.append(f"max train loss {float(loss[j]):.6g} at alpha {float(s.xcoordinates[j]):.4g}")
        if s.n_nonfinite():
            lines.append(f"non-finite train loss at {s.n_nonfinite()} value(s) of alpha")
        if s.path:
            lines.append(f"wrote {s.path}")
        return "\n".join(lines)


def read_surface(path: str | Path) -> Surface:
    """Read a surface file (merging an unconsolidated journal, e.g. of a running or killed run)."""
    import h5py

    store = SurfaceStore(path)
    try:
        with h5py.File(store.path, "r") as f:
            if f.attrs.get("format") != FORMAT:
                raise LandscapeError(f"{path} is not a landscape surface file")
            grid = store.read_arrays(f)
            info = json.loads(f.attrs["directions_info"])
            prov = {k: _unattr(v) for k, v in f.attrs.items() if k not in _NOT_PROVENANCE}
    except (KeyError, ValueError, TypeError, OSError) as exc:
        raise LandscapeError(f"{path} is not a readable landscape surface file ({type(exc).__name__})") from None
    store.replay()
    return surface_from(store, grid, info, prov, str(path), {})


def _unattr(v: Any) -> Any:
    if isinstance(v, bytes):
        v = v.decode()
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, str) and v[:1] in "[{":
        try:
            return json.loads(v)
        except ValueError:
            return v
    return v


def surface_from(store: SurfaceStore, grid: Grid, info: dict, prov: dict, path: Optional[str],
                 stats: dict) -> Surface:
    """The :class:`Surface` of a store's in-memory values on ``grid``."""
    values = {m: store.values[:, j].reshape(grid.shape).copy() for j, m in enumerate(store.metrics)}
    return Surface(grid.x, grid.y, values, store.computed.reshape(grid.shape).copy(), info, prov, path, stats)
