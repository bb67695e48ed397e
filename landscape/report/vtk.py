"""VTK PolyData export of a 2-D loss surface, for renderings in ParaView (as Li et al.'s ``h52vtp``).

``landscape export-vtk SURFACE.h5 --out surf.vtp`` writes a VTK XML PolyData file (``.vtp``,
ASCII): one point per grid point at (x, y, z), where z is the chosen quantity (train loss by
default), clipped at ``zmax`` and, with ``log``, replaced by ln(z + 0.1) as Li et al.'s tool does;
one quadrilateral per grid cell whose four corners are all computed and finite (uncomputed
points carry 0 in every array and 0 in the ``computed`` array). Every stored
quantity travels as a point array, the cell-averaged z as a cell array, so ParaView can colour by
any of them. Unlike ``h52vtp`` it handles non-square grids, and its point order is explicit:
point ``ix·ny + iy`` sits at ``(x[ix], y[iy])``. :func:`read_vtp` reads such a file back.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from ..errors import LandscapeError, OptionError

LOG_OFFSET = 0.1  # ln(z + 0.1), the transform of Li et al.'s h52vtp --log


@dataclass(frozen=True)
class VtpResult:
    """What :func:`export_vtp` wrote."""

    out: str
    quantity: str
    n_points: int
    n_polys: int
    log: bool
    zmax: Optional[float]
    notes: Tuple[str, ...] = ()

    def to_json(self) -> dict:
        return {"out": self.out, "quantity": self.quantity, "n_points": self.n_points, "n_polys": self.n_polys,
                "log": self.log, "zmax": self.zmax, "notes": list(self.notes)}


def surface_heights(z: np.ndarray, *, log: bool = False, zmax: Optional[float] = None) -> np.ndarray:
    """The z coordinates written: clipped at ``zmax``, then ln(z + 0.1) with ``log``."""
    out = np.array(z, dtype=np.float64)
    if zmax is not None:
        out = np.minimum(out, zmax)
    if log:
        with np.errstate(invalid="ignore", divide="ignore"):
            out = np.log(out + LOG_OFFSET)
    return out


def _fmt(values: np.ndarray) -> str:
    """Numbers as text that round-trips exactly (repr of float64), six per line."""
    items = [repr(float(v)) for v in values.ravel()]
    return "\n".join(" ".join(items[i:i + 6]) for i in range(0, len(items), 6))


def _array(parent: ET.Element, name: str, dtype: str, values: np.ndarray, components: int = 1) -> None:
    el = ET.SubElement(parent, "DataArray", type=dtype, Name=name, NumberOfComponents=str(components),
                       format="ascii")
    if dtype.startswith(("Int", "UInt")):
        el.text = "\n" + " ".join(str(int(v)) for v in values.ravel()) + "\n"
    else:
        el.text = "\n" + _fmt(values) + "\n"
        fin = values[np.isfinite(values)]
        if fin.size:
            el.set("RangeMin", repr(float(fin.min())))
            el.set("RangeMax", repr(float(fin.max())))


def export_vtp(path: str, out: str, *, quantity: str = "train_loss", log: bool = False,
               zmax: Optional[float] = None) -> VtpResult:
    """Write the 2-D surface of ``path`` (ours or Li et al.'s) as a ``.vtp`` PolyData file."""
    from .slices import read_slice_h5

    p = Path(path)
    if not p.is_file():
        raise LandscapeError(f"{path}: no such file")
    if zmax is not None and not math.isfinite(zmax):
        raise OptionError("{zmax} must be a finite number")
    try:
        data = read_slice_h5(p)
    except OSError as exc:
        raise LandscapeError(f"{path}: unreadable HDF5 file ({exc})") from None
    if data.y is None:
        raise LandscapeError(f"{path}: a 1-D slice; export-vtk needs a 2-D surface")
    if quantity not in data.values:
        raise LandscapeError(f"{path}: no {quantity} (has {', '.join(sorted(data.values))})")
    nx, ny = len(data.x), len(data.y)
    raw = data.values[quantity]
    z = surface_heights(raw, log=log, zmax=zmax)
    ok = np.isfinite(z)
    X, Y = np.meshgrid(data.x, data.y, indexing="ij")
    pts = np.stack([X.ravel(), Y.ravel(), np.where(ok, z, 0.0).ravel()], axis=1)
    idx = np.arange(nx * ny).reshape(nx, ny)
    quads = np.stack([idx[:-1, :-1], idx[1:, :-1], idx[1:, 1:], idx[:-1, 1:]], axis=-1).reshape(-1, 4)
    keep = ok.ravel()[quads].all(axis=1)
    quads = quads[keep]
    cell_z = z.ravel()[quads].mean(axis=1) if len(quads) else np.zeros(0)

    root = ET.Element("VTKFile", type="PolyData", version="1.0", byte_order="LittleEndian", header_type="UInt64")
    piece = ET.SubElement(ET.SubElement(root, "PolyData"), "Piece", NumberOfPoints=str(nx * ny),
                          NumberOfVerts="0", NumberOfLines="0", NumberOfStrips="0", NumberOfPolys=str(len(quads)))
    pd = ET.SubElement(piece, "PointData", Scalars="z")
    # VTK's ASCII readers do not all take "nan": uncomputed points carry 0 and computed = 0
    _array(pd, "z", "Float64", np.where(ok, z, 0.0))
    for name in sorted(data.values):
        v = data.values[name]
        _array(pd, name, "Float64", np.where(np.isfinite(v), v, 0.0))
    _array(pd, "computed", "UInt8", ok.astype(np.uint8))
    cd = ET.SubElement(piece, "CellData", Scalars="averaged z")
    _array(cd, "averaged z", "Float64", cell_z)
    _array(ET.SubElement(piece, "Points"), "Points", "Float64", pts, components=3)
    polys = ET.SubElement(piece, "Polys")
    _array(polys, "connectivity", "Int64", quads)
    _array(polys, "offsets", "Int64", 4 * np.arange(1, len(quads) + 1))
    ET.indent(root, space=" ")
    out_path = Path(out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(out_path.name + ".tmp")
    ET.ElementTree(root).write(tmp, encoding="utf-8", xml_declaration=True)
    tmp.replace(out_path)
    return VtpResult(str(out_path), quantity, nx * ny, int(len(quads)), log, zmax,
                     tuple(str(n) for n in data.attrs.get("read_notes") or ()))


@dataclass(frozen=True)
class VtpData:
    """A PolyData file read back: points (n, 3), polygons as index lists, point and cell arrays."""

    points: np.ndarray
    polys: Tuple[Tuple[int, ...], ...]
    point_data: Dict[str, np.ndarray]
    cell_data: Dict[str, np.ndarray]


def _values(el: ET.Element) -> np.ndarray:
    text = (el.text or "").split()
    if el.get("type", "").startswith(("Int", "UInt")):
        return np.array([int(t) for t in text], dtype=np.int64)
    return np.array([float(t) for t in text], dtype=np.float64)


def read_vtp(path: str) -> VtpData:
    """Parse an ASCII VTK PolyData file (as written by :func:`export_vtp`)."""
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as exc:
        raise LandscapeError(f"{path}: not a readable VTK XML file ({exc})") from None
    if root.tag != "VTKFile" or root.get("type") != "PolyData":
        raise LandscapeError(f"{path}: not a VTK PolyData file")
    piece = root.find("PolyData/Piece")
    if piece is None:
        raise LandscapeError(f"{path}: no Piece")
    n_points = int(piece.get("NumberOfPoints", "0"))
    pts_el = piece.find("Points/DataArray")
    points = _values(pts_el).reshape(n_points, 3) if pts_el is not None else np.zeros((0, 3))

    def arrays(tag: str) -> Dict[str, np.ndarray]:
        node = piece.find(tag)
        return {el.get("Name", ""): _values(el) for el in node.findall("DataArray")} if node is not None else {}

    polys: List[Tuple[int, ...]] = []
    pl = arrays("Polys")
    if pl.get("connectivity") is not None and pl["connectivity"].size:
        conn, offs = pl["connectivity"], pl["offsets"]
        start = 0
        for end in offs:
            polys.append(tuple(int(i) for i in conn[start:end]))
            start = int(end)
    if len(polys) != int(piece.get("NumberOfPolys", "0")):
        raise LandscapeError(f"{path}: NumberOfPolys does not match the polygons stored")
    return VtpData(points, tuple(polys), arrays("PointData"), arrays("CellData"))

