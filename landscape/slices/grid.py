"""The coordinates of a slice: a 1-D line or a 2-D grid, and how a range becomes one.

A range is ``(lo, hi, n)`` or ``("auto", n)``; an auto range spans the coordinates that the
directions fix (the plane's three checkpoints, the PCA trajectory) and the origin, padded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Tuple

import numpy as np

from ..errors import Field, OptionError

AXIS_ORDER = "[ix, iy]"  # axis 0 follows xcoordinates, axis 1 ycoordinates
Range = Tuple[Any, ...]  # (lo, hi, n) or ("auto", n)


@dataclass(frozen=True)
class Grid:
    """Coordinates of a 1-D (``y is None``) or 2-D grid; flat index ``i = ix·ny + iy``."""

    x: np.ndarray
    y: Optional[np.ndarray] = None

    @classmethod
    def from_ranges(cls, xrange: Tuple[float, float, int], yrange: Optional[Tuple[float, float, int]] = None) -> Grid:
        """``n`` evenly spaced values from ``lo`` to ``hi`` (both included) per axis."""
        xs = np.linspace(float(xrange[0]), float(xrange[1]), int(xrange[2]))
        ys = None if yrange is None else np.linspace(float(yrange[0]), float(yrange[1]), int(yrange[2]))
        return cls(xs, ys)

    @property
    def k(self) -> int:
        return 1 if self.y is None else 2

    @property
    def shape(self) -> Tuple[int, ...]:
        return (len(self.x),) if self.y is None else (len(self.x), len(self.y))

    @property
    def n_points(self) -> int:
        return int(np.prod(self.shape))

    def coords(self) -> np.ndarray:
        """``(n_points, k)`` coordinates in flat-index order."""
        if self.y is None:
            return self.x.reshape(-1, 1).copy()
        gx, gy = np.meshgrid(self.x, self.y, indexing="ij")
        return np.stack([gx.ravel(), gy.ravel()], axis=1)

    def centre_index(self) -> Optional[int]:
        """Flat index of the grid point at the origin, if the grid has one."""
        ix = np.flatnonzero(self.x == 0.0)
        if self.y is None:
            return int(ix[0]) if len(ix) else None
        iy = np.flatnonzero(self.y == 0.0)
        return int(ix[0] * len(self.y) + iy[0]) if len(ix) and len(iy) else None

    def same_as(self, other: Grid) -> bool:
        """The same axes with bit-identical coordinates (what a resumed file must hold)."""
        if (self.y is None) != (other.y is None):
            return False
        if not np.array_equal(np.asarray(self.x, dtype=np.float64), np.asarray(other.x, dtype=np.float64)):
            return False
        return self.y is None or np.array_equal(np.asarray(self.y, dtype=np.float64),
                                                np.asarray(other.y, dtype=np.float64))


def resolve_range(r: Optional[Range], span: Optional[np.ndarray], *, pad_abs: float = 0.0,
                  pad_rel: float = 0.0, default_n: int = 51, name: str = Field("xrange")) -> Tuple[float, float, int]:
    """An explicit ``(lo, hi, n)``, or ``("auto", n)``: the span of ``span`` and 0, padded by
    ``pad_abs + pad_rel·width`` on each side (rounded to 6 decimals so the range prints cleanly)."""
    if r is not None and r[0] != "auto":
        return float(r[0]), float(r[1]), int(r[2])
    n = int(r[1]) if r is not None else default_n
    if span is None:
        raise OptionError("{name} auto is only for {plane} and {direction} pca", name=name)
    lo, hi = min(0.0, float(np.min(span))), max(0.0, float(np.max(span)))
    pad = pad_abs + pad_rel * max(hi - lo, 1e-12)
    return round(lo - pad, 6), round(hi + pad, 6), n


def range_setting(given: Optional[Range], resolved: Tuple[float, float, int]) -> Any:
    """How a range enters the resume settings: ``["auto", n]`` as given, else the resolved values."""
    if given is not None and given[0] == "auto":
        return ["auto", int(given[1])]
    return [float(resolved[0]), float(resolved[1]), int(resolved[2])]
