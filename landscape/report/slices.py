"""Figures for loss slices: 2-D surfaces, 1-D lines, interpolations, PCA trajectories.

Reads the slice HDF5 layout of ``landscape slice`` (Li et al. 2018, "Visualizing the Loss
Landscape of Neural Nets", whose plotting scripts read the same datasets): ``xcoordinates``,
``ycoordinates`` (2-D), ``train_loss``, ``train_acc``, ``test_loss``, ``test_acc`` of shape
(nx,) or (nx, ny) indexed ``[ix, iy]``, a ``computed`` mask, and attributes with provenance.
Interpolations (Goodfellow et al. 2015) are 1-D slices whose coordinate is α (``alphas``).
Uncomputed and non-finite points become gaps in the figures, never zeros.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..errors import LandscapeError
from .common import (
    COLORS,
    FigureBlock,
    Section,
    TextBlock,
    axis_scale_menu,
    base_layout,
    blocks,
    farray,
    finite_range,
    first_key,
    fmt,
    log10_or_none,
    plain,
    plot_text,
    provenance_from,
    short_path,
    toggle_menu,
)

QUANTITIES = ("train_loss", "train_acc", "test_loss", "test_acc")
_TRAJ_NAMES = ("trajectory", "pca_trajectory", "projected_trajectory", "projection", "path")
_INTERP_WORDS = ("interpolat",)


@dataclass(frozen=True)
class Marker:
    """A labelled point on the slice plane (the checkpoint, or the checkpoints of a plane)."""

    label: str
    x: float
    y: float = 0.0


@dataclass(frozen=True)
class SliceData:
    """A slice file's content, arrays indexed ``[ix, iy]`` (or ``[ix]``)."""

    x: np.ndarray
    y: Optional[np.ndarray]
    values: Dict[str, np.ndarray]
    computed: Optional[np.ndarray] = None
    attrs: Dict[str, Any] = field(default_factory=dict)
    interpolation: bool = False
    trajectory: Optional[np.ndarray] = None
    trajectory_labels: Tuple[str, ...] = ()
    explained_variance: Optional[np.ndarray] = None
    markers: Tuple[Marker, ...] = ()

    @property
    def ndim(self) -> int:
        return 2 if self.y is not None else 1


# ---------------------------------------------------------------------------------------------
# reading


def _attr_value(v: Any) -> Any:
    if isinstance(v, bytes):
        v = v.decode("utf-8", "replace")
    if isinstance(v, np.ndarray):
        v = [_attr_value(x) for x in v.tolist()]
    elif isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, str) and v[:1] in "{[":
        try:
            return json.loads(v)
        except ValueError:
            return v
    return v


def _flatten_attrs(raw: Mapping[str, Any]) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for k, v in raw.items():
        val = _attr_value(v)
        if isinstance(val, Mapping) and k in ("provenance", "meta", "landscape"):
            out.update({kk: vv for kk, vv in val.items() if kk not in out})
        out[k] = val
    return out


def _transposed(attrs: Mapping[str, Any]) -> bool:
    """Whether the stored 2-D arrays are indexed [iy, ix] (the documented order is [ix, iy])."""
    for key, val in attrs.items():
        if "order" in key.lower() or key.lower() in ("axes", "index"):
            text = "".join(ch for ch in str(val).lower() if ch.isalpha())
            if "x" in text and "y" in text:
                return text.index("y") < text.index("x")
    return False


def is_interpolation(attrs: Mapping[str, Any], names: Tuple[str, ...] = ()) -> bool:
    if "alphas" in names:
        return True
    for key in ("kind", "type", "direction", "mode", "slice_type"):
        val = attrs.get(key)
        if isinstance(val, str) and any(w in val.lower() for w in _INTERP_WORDS):
            return True
    return False


def read_slice_h5(path: Path) -> SliceData:
    """Read a slice file; missing quantities are left out, a file without a loss is refused."""
    import h5py

    with h5py.File(path, "r") as f:
        names = tuple(f.keys())
        attrs = _flatten_attrs(dict(f.attrs))
        arrays: Dict[str, np.ndarray] = {}
        limit = _size_limit(f, path)
        for name in names:
            obj = f[name]
            if isinstance(obj, h5py.Dataset):
                arrays[name] = _read_bounded(obj, name, limit, path)
            elif isinstance(obj, h5py.Group) and name != "directions":
                for sub, ds in obj.items():
                    if isinstance(ds, h5py.Dataset):
                        arrays[f"{name}/{sub}"] = _read_bounded(ds, f"{name}/{sub}", limit, path)
                attrs.update({f"{name}.{k}": _attr_value(v) for k, v in obj.attrs.items()})
    from ..formats import li2018

    if li2018.is_li_surface(names, attrs):
        li = li2018.read_surface(arrays, source=str(path))
        arrays = li.arrays
        attrs.update({"format": li2018.FORMAT, "read_notes": list(li.notes)})
    return slice_from_mapping(arrays, attrs=attrs, source=str(path))


MAX_COORDINATES = 1_000_000  # grid points along one axis that a slice file may declare


def _size_limit(f: Any, path: Path) -> int:
    """Most elements any one dataset of this slice file may hold: what its grid needs (with room
    for a few per-point fields), judged from the coordinate datasets' *shapes* before any read,
    so that a crafted file declaring a huge dataset is refused instead of filling memory."""
    sizes = {}
    for key in ("alphas", "xcoordinates", "x", "ycoordinates", "y"):
        shape = getattr(f.get(key), "shape", None)
        if shape is None:
            continue
        sizes[key] = int(np.prod(shape))
        if len(shape) > 1 or sizes[key] > MAX_COORDINATES:
            raise LandscapeError(f"{path}: dataset {key!r} has shape {shape}; "
                                 f"coordinates must be 1-D with at most {MAX_COORDINATES:,} values")
    nx = next((sizes[k] for k in ("alphas", "xcoordinates", "x") if k in sizes), 1)
    ny = next((sizes[k] for k in ("ycoordinates", "y") if k in sizes), 1)
    return max(16 * nx * ny, MAX_COORDINATES)


def _read_bounded(ds: Any, name: str, limit: int, path: Path) -> np.ndarray:
    """Read one dataset after checking its declared size against ``limit``."""
    size = int(np.prod(ds.shape)) if ds.shape is not None else 0
    if size > limit:
        raise LandscapeError(f"{path}: dataset {name!r} declares shape {ds.shape} ({size:,} values), "
                             f"far more than a slice of this grid holds; refusing to read it")
    return np.asarray(ds[()])


def slice_from_mapping(d: Mapping[str, Any], *, attrs: Optional[Mapping[str, Any]] = None,
                       source: str = "") -> SliceData:
    """A :class:`SliceData` from h5 datasets or a JSON dict (``alphas`` or ``xcoordinates``)."""
    attrs = dict(attrs or {})
    d = _with_direction_info(d)
    if "attrs" in d and isinstance(d["attrs"], Mapping):
        attrs.update(_flatten_attrs(d["attrs"]))
    if isinstance(d.get("provenance"), Mapping):
        attrs.update({k: v for k, v in d["provenance"].items() if k not in attrs})
    names = tuple(d.keys())
    interp = is_interpolation(attrs, names) or is_interpolation(d, names)
    xs = first_key(d, "alphas", "xcoordinates", "x")
    if xs is None or "train_loss" not in d:
        raise LandscapeError(f"{source or 'slice'}: no coordinates and train_loss; not a slice")
    x = farray(xs).ravel()
    ys = first_key(d, "ycoordinates", "y")
    y = farray(ys).ravel() if ys is not None else None
    values = {q: farray(d[q]) for q in QUANTITIES if q in d and d[q] is not None}
    computed = np.asarray(d["computed"]).astype(bool) if d.get("computed") is not None else None
    if y is not None and _transposed(attrs):
        values = {k: v.T for k, v in values.items()}
        computed = computed.T if computed is not None else None
    shape = (len(x), len(y)) if y is not None else (len(x),)
    for k, v in values.items():
        if v.shape != shape:
            raise LandscapeError(f"{source or 'slice'}: {k} has shape {v.shape}, expected {shape} "
                                 f"from the coordinates")
    if computed is not None:
        if computed.shape != shape:
            raise LandscapeError(f"{source or 'slice'}: computed mask has shape {computed.shape}, expected {shape}")
        values = {k: np.where(computed, v, np.nan) for k, v in values.items()}
    traj, labels, ev = _trajectory(d, attrs)
    return SliceData(x=x, y=y, values=values, computed=computed, attrs=attrs, interpolation=interp,
                     trajectory=traj, trajectory_labels=labels, explained_variance=ev,
                     markers=_markers(d, attrs, x, y, interp))


def _with_direction_info(d: Mapping[str, Any]) -> Mapping[str, Any]:
    """Lift the PCA trajectory, explained variance and plane/interpolation checkpoints out of the
    ``directions`` (or ``directions_info``) dict of a slice JSON into the flat h5-like names."""
    info = d.get("directions") if isinstance(d.get("directions"), Mapping) else d.get("directions_info")
    if isinstance(info, str) and info[:1] == "{":
        try:
            info = json.loads(info)
        except ValueError:
            info = None
    extra: Dict[str, Any] = {}
    if isinstance(info, Mapping):
        traj = info.get("trajectory")
        if isinstance(traj, Mapping) and "trajectory" not in d:
            extra["trajectory"] = traj.get("coordinates")
            extra["trajectory_checkpoints"] = traj.get("files") or traj.get("epochs")
        for key in ("explained_variance_ratio", "explained_variance"):
            if key in info and key not in d:
                extra[key] = info[key]
        if "checkpoints" in info and "checkpoints" not in d:
            extra["checkpoints"] = info["checkpoints"]
        if isinstance(info.get("kind"), str):
            extra.setdefault("direction", info["kind"])
    return {**d, **{k: v for k, v in extra.items() if v is not None}} if extra else d


def _trajectory(d: Mapping[str, Any], attrs: Mapping[str, Any]) -> Tuple[Optional[np.ndarray], Tuple[str, ...], Optional[np.ndarray]]:
    traj = None
    for key in d:
        base = key.split("/")[-1].lower()
        if any(base == n or base.startswith(n) for n in _TRAJ_NAMES) or key.lower().startswith("pca/"):
            arr = farray(d[key]) if not isinstance(d[key], Mapping) else None
            if arr is not None and arr.ndim == 2 and 2 in arr.shape and arr.size >= 2:
                traj = arr if arr.shape[1] == 2 else arr.T
                break
    labels: Tuple[str, ...] = ()
    for key in ("trajectory_epochs", "trajectory_labels", "pca/epochs", "epochs", "trajectory_checkpoints",
                "pca/checkpoints", "checkpoints"):
        val = d.get(key, attrs.get(key))
        if val is not None and traj is not None and len(val) == len(traj):
            labels = tuple(short_path(_attr_value(v)) for v in (val.tolist() if hasattr(val, "tolist") else val))
            break
    ev = None
    for key in ("explained_variance_ratio", "explained_variance", "pca/explained_variance_ratio",
                "pca/explained_variance", "pca.explained_variance_ratio", "pca.explained_variance"):
        val = d.get(key, attrs.get(key))
        if val is not None:
            ev = farray(val).ravel()
            break
    return traj, labels, ev


def _markers(d: Mapping[str, Any], attrs: Mapping[str, Any], x: np.ndarray, y: Optional[np.ndarray],
             interp: bool) -> Tuple[Marker, ...]:
    listed = d.get("checkpoints")
    if isinstance(listed, list) and listed and all(isinstance(c, Mapping) and c.get("coordinates") is not None
                                                   for c in listed):
        out = []
        for i, c in enumerate(listed):
            xy = list(c["coordinates"]) + [0.0]
            name = short_path(c.get("path") or f"P{i}")
            out.append(Marker(f"{'AB'[i]}: {name}" if interp and i < 2 else name, float(xy[0]), float(xy[1])))
        return tuple(out)
    if interp:
        a = first_key(attrs, "checkpoint_a", "a", "start", "checkpoint0") or first_key(d, "checkpoint_a") or "A"
        b = first_key(attrs, "checkpoint_b", "b", "end", "checkpoint1") or first_key(d, "checkpoint_b") or "B"
        return (Marker(f"A: {short_path(a)}", 0.0), Marker(f"B: {short_path(b)}", 1.0))
    pts = first_key(d, "points", "plane_points", "checkpoint_coordinates")
    if pts is None:
        pts = first_key(attrs, "points", "plane_points", "checkpoint_coordinates")
    if pts is not None:
        arr = farray(pts.tolist() if hasattr(pts, "tolist") else pts)
        if arr.ndim == 2 and arr.shape[1] >= 2:
            names = first_key(d, "point_labels", "plane_checkpoints")
            if names is None:  # no `or`: the labels may be a numpy array read from h5
                names = first_key(attrs, "point_labels", "plane_checkpoints", "checkpoints")
            if names is None:
                names = []
            names = list(names.tolist() if hasattr(names, "tolist") else names)
            return tuple(Marker(short_path(_attr_value(names[i])) if i < len(names) else f"P{i}",
                                float(arr[i, 0]), float(arr[i, 1])) for i in range(len(arr)))
    inside = x.min() <= 0 <= x.max() and (y is None or y.min() <= 0 <= y.max())
    return (Marker("checkpoint", 0.0, 0.0),) if inside else ()


# ---------------------------------------------------------------------------------------------
# figures


def _value_at(data: SliceData, q: str, m: Marker) -> Optional[float]:
    v = data.values.get(q)
    if v is None:
        return None
    ix = int(np.argmin(np.abs(data.x - m.x)))
    if data.y is None:
        val = v[ix]
    else:
        iy = int(np.argmin(np.abs(data.y - m.y)))
        val = v[ix, iy]
    return float(val) if np.isfinite(val) else None


def _panels(data: SliceData, quantity: str) -> List[Tuple[str, np.ndarray]]:
    return [(f"{split} {quantity}", data.values[f"{split}_{quantity}"])
            for split in ("train", "test") if f"{split}_{quantity}" in data.values]


def _axis_titles(data: SliceData) -> Tuple[str, str]:
    if data.explained_variance is not None and len(data.explained_variance) >= 2:
        ev = data.explained_variance
        if np.all(ev <= 1.0):
            return f"PC1 ({100 * ev[0]:.1f}%)", f"PC2 ({100 * ev[1]:.1f}%)"
        return "PC1", "PC2"
    return "x (direction 0)", "y (direction 1)"


def _wide_range(zs: List[np.ndarray]) -> bool:
    """More than two decades between the smallest and largest positive finite loss."""
    rng = finite_range(*[np.where(z > 0, z, np.nan) for z in zs])
    return rng is not None and rng[0] > 0 and rng[1] / rng[0] > 100


def _scale_update(kind: str, zs: List[np.ndarray], markers: List[List[Optional[float]]],
                  log: bool, label: str) -> list:
    """``update`` args switching every panel (and its marker heights) between linear and log10."""
    tf = log10_or_none if log else (lambda a: a)
    zt = [tf(z) for z in zs]
    rng = finite_range(*zt) or (0.0, 1.0)
    title = f"log10 {label}" if log else label
    layout: Dict[str, Any] = {"coloraxis.cmin": rng[0], "coloraxis.cmax": rng[1],
                              "coloraxis.colorbar.title.text": title}
    data: Dict[str, Any] = {"z": [plain(z.T) for z in zt]}
    if kind == "contour":
        size = (rng[1] - rng[0]) / 20
        data.update({"contours.start": [rng[0]] * len(zt), "contours.end": [rng[1]] * len(zt),
                     "contours.size": [size] * len(zt)})
    if kind == "surface":
        for mk in markers:
            data["z"].append(plain(tf(np.array([np.nan if v is None else v for v in mk]))))
        for i in range(1, len(zs) + 1):
            layout[f"scene{'' if i == 1 else i}.zaxis.title.text"] = title
    return [data, layout]


def plane_figure(data: SliceData, *, kind: str, quantity: str = "loss", title: str) -> Optional[FigureBlock]:
    """Train and test side by side as ``surface``, ``contour`` or ``heatmap`` with one colour scale.

    The checkpoint (and any plane checkpoints) are marked; a linear/log10 toggle switches the
    colour scale (and the surface heights); a PCA trajectory is drawn on the contours.
    """
    panels = _panels(data, quantity)
    if not panels or data.y is None:
        return None
    n = len(panels)
    spec_type = "surface" if kind == "surface" else "xy"
    fig = make_subplots(rows=1, cols=n, specs=[[{"type": spec_type}] * n],
                        subplot_titles=[p[0] for p in panels], horizontal_spacing=0.08)
    rng = finite_range(*[z for _, z in panels]) or (0.0, 1.0)
    xt, yt = _axis_titles(data)
    marker_z: List[List[Optional[float]]] = []
    for col, (name, z) in enumerate(panels, start=1):
        # the hover shows the stored value whether the colour scale is linear or log10
        hover = f"x=%{{x:.3g}}<br>y=%{{y:.3g}}<br>{name}=%{{customdata:.4g}}<extra></extra>"
        common = dict(x=plain(data.x), y=plain(data.y), z=plain(z.T), customdata=plain(z.T),
                      coloraxis="coloraxis", name=name, hovertemplate=hover)
        if kind == "surface":
            fig.add_trace(go.Surface(**common), row=1, col=col)
        elif kind == "contour":
            fig.add_trace(go.Contour(**common, contours={"start": rng[0], "end": rng[1],
                                                         "size": (rng[1] - rng[0]) / 20}),
                          row=1, col=col)
        else:
            fig.add_trace(go.Heatmap(**common), row=1, col=col)
    split_of = [name.split()[0] for name, _ in panels]
    for col, split in enumerate(split_of, start=1):
        q = f"{split}_{quantity}"
        mz = [_value_at(data, q, m) for m in data.markers]
        marker_z.append(mz)
        if not data.markers:
            continue
        labels = [plot_text(m.label) for m in data.markers]
        texts = [f"{lab}<br>{q}={fmt(v)}" for lab, v in zip(labels, mz)]
        single = len(labels) == 1 and data.markers[0].label == "checkpoint"  # the legend says it
        mk = dict(x=[m.x for m in data.markers], y=[m.y for m in data.markers],
                  mode="markers" if single else "markers+text",
                  text=labels, hovertext=texts, hoverinfo="text", textposition="top center",
                  name="checkpoint" if len(labels) == 1 else "checkpoints", showlegend=col == 1,
                  legendgroup="ckpt")
        if kind == "surface":
            fig.add_trace(go.Scatter3d(**mk, z=plain(np.array([np.nan if v is None else v for v in mz])),
                                       marker={"size": 5, "color": COLORS["marker"], "symbol": "diamond"}),
                          row=1, col=col)
        else:
            fig.add_trace(go.Scatter(**mk, marker={"size": 11, "color": "white", "symbol": "x",
                                                   "line": {"width": 2, "color": COLORS["marker"]}}),
                          row=1, col=col)
    if kind == "contour" and data.trajectory is not None:
        labels = [plot_text(s) for s in data.trajectory_labels] or None
        for col in range(1, n + 1):
            fig.add_trace(go.Scatter(x=plain(data.trajectory[:, 0]), y=plain(data.trajectory[:, 1]),
                                     mode="lines+markers", text=labels, name="trajectory (projected)",
                                     line={"color": "white", "width": 2},
                                     marker={"size": 6, "color": COLORS["adam"]},
                                     showlegend=col == 1, legendgroup="traj"), row=1, col=col)
    label = quantity
    fig.update_layout(coloraxis={"colorscale": "Viridis", "cmin": rng[0], "cmax": rng[1],
                                 "colorbar": {"title": {"text": label}}})
    n_grid = len(panels) if kind != "surface" or not data.markers else 2 * len(panels)
    wide = quantity == "loss" and _wide_range([z for _, z in panels])
    if quantity == "loss":
        idx = list(range(len(panels))) if kind != "surface" else list(range(n_grid))
        zs = [z for _, z in panels]
        mks = marker_z if (kind == "surface" and data.markers) else []
        lin, log = _scale_update(kind, zs, mks, False, label), _scale_update(kind, zs, mks, True, label)
        menu = toggle_menu([("linear", "update", lin + [idx]), ("log10", "update", log + [idx])])
        if wide:
            fig.plotly_update(restyle_data=log[0], relayout_data=log[1], trace_indexes=idx)
            menu["active"] = 1
        fig.update_layout(updatemenus=[menu])
    base_layout(fig, title=title, height=520 if kind == "surface" else 460)
    if kind == "surface":
        for i in range(1, n + 1):
            fig.update_layout({f"scene{'' if i == 1 else i}": {
                "xaxis": {"title": {"text": xt.split(" ")[0]}}, "yaxis": {"title": {"text": yt.split(" ")[0]}},
                "zaxis": {"title": {"text": f"log10 {label}" if wide else label}}, "aspectmode": "cube"}})
    else:
        fig.update_xaxes(title_text=xt)
        fig.update_yaxes(title_text=yt, col=1)
    caption = {"surface": "3-D surface (drag to rotate)", "contour": "contours",
               "heatmap": "heatmap"}[kind]
    if n == 2:
        caption += "; train and test share one colour scale"
    if quantity == "loss":
        caption += "; the buttons switch the colour scale between linear and log10"
        if wide:
            caption += " (log10 shown first: the loss spans more than two decades)"
    if data.trajectory is not None and kind == "contour":
        caption += "; white line: the training trajectory projected onto the plane"
    return FigureBlock(fig, f"{kind}-{quantity}", caption)


def line_figure(data: SliceData, *, title: str) -> FigureBlock:
    """A 1-D slice or interpolation: loss and accuracy, train and test, with the checkpoints marked."""
    has_acc = any(k.endswith("_acc") for k in data.values)
    cols = 2 if has_acc else 1
    fig = make_subplots(rows=1, cols=cols, subplot_titles=["loss", "accuracy"][:cols], horizontal_spacing=0.1)
    xname = "α" if data.interpolation else "x (direction 0)"
    for q in ("train_loss", "test_loss", "train_acc", "test_acc"):
        if q not in data.values:
            continue
        v = data.values[q]
        split, what = q.split("_")
        col = 1 if what == "loss" else 2
        fig.add_trace(go.Scatter(x=plain(data.x), y=plain(v), mode="lines+markers", name=f"{split} {what}",
                                 marker={"size": 4}, line={"color": COLORS[split],
                                                           "dash": "solid" if what == "loss" else "dot"},
                                 hovertemplate=f"{xname}=%{{x:.3g}}<br>{split} {what}=%{{y:.4g}}<extra></extra>"),
                      row=1, col=col)
    for m in data.markers:
        fig.add_vline(x=m.x, line={"color": COLORS["threshold"], "dash": "dash", "width": 1},
                      annotation_text=plot_text(m.label), annotation_position="bottom right", row=1, col=1)
        if has_acc:
            fig.add_vline(x=m.x, line={"color": COLORS["threshold"], "dash": "dash", "width": 1}, row=1, col=2)
    fig.update_xaxes(title_text=xname)
    fig.update_yaxes(title_text="loss", row=1, col=1)
    if has_acc:
        fig.update_yaxes(title_text="accuracy", row=1, col=2)
    fig.update_layout(updatemenus=[axis_scale_menu("yaxis")])
    base_layout(fig, title=title, height=420)
    what = "interpolation (1−α)·θ_A + α·θ_B" if data.interpolation else "1-D slice θ + x·d"
    return FigureBlock(fig, "interpolation" if data.interpolation else "slice-1d",
                       f"{what}; the toggle switches the loss axis between linear and log")


def _summary(data: SliceData) -> TextBlock:
    lines = []
    shape = f"{len(data.x)}×{len(data.y)}" if data.y is not None else f"{len(data.x)}"
    rng = f"x ∈ [{fmt(data.x.min())}, {fmt(data.x.max())}]"
    if data.y is not None:
        rng += f", y ∈ [{fmt(data.y.min())}, {fmt(data.y.max())}]"
    total = data.x.size * (data.y.size if data.y is not None else 1)
    done = int(data.computed.sum()) if data.computed is not None else total
    lines.append(f"grid {shape} ({rng}); {done} of {total} points computed")
    tl = data.values.get("train_loss")
    if tl is not None:
        mask = data.computed if data.computed is not None else np.ones(tl.shape, bool)
        bad = int((~np.isfinite(tl) & mask).sum())
        if bad:
            lines.append(f"{bad} computed points have a non-finite train loss (shown as gaps)")
    for m in data.markers:
        vals = [f"{q} {fmt(_value_at(data, q, m))}" for q in QUANTITIES if q in data.values]
        if vals:
            lines.append(f"at {m.label}: " + ", ".join(vals))
    if data.explained_variance is not None:
        ev = ", ".join(fmt(v, 3) for v in data.explained_variance[:4])
        lines.append(f"PCA explained variance (first components): {ev}")
    lines += [str(n) for n in data.attrs.get("read_notes") or ()]
    extra = {k: data.attrs[k] for k in ("norm", "normalization", "direction", "ignore", "include_bn")
             if k in data.attrs}
    if extra:
        lines.append("; ".join(f"{k}: {v}" for k, v in extra.items()))
    return TextBlock(tuple(lines))


def slice_section(data: SliceData, *, source: str, label: str) -> Section:
    """The section for one slice (2-D: surface, contour, heatmap; 1-D: lines)."""
    prov = provenance_from(data.attrs, source=source)
    if data.ndim == 2:
        t = f"2-D slice — {label}"
        fig_blocks = blocks(
            plane_figure(data, kind="surface", title=f"{t}: loss surface"),
            plane_figure(data, kind="contour", title=f"{t}: loss contours"),
            plane_figure(data, kind="heatmap", title=f"{t}: loss heatmap"),
            plane_figure(data, kind="heatmap", quantity="acc", title=f"{t}: accuracy heatmap"),
        )
        kind = "slice-2d"
    else:
        t = f"{'Interpolation' if data.interpolation else '1-D slice'} — {label}"
        fig_blocks = (line_figure(data, title=t),)
        kind = "interpolation" if data.interpolation else "slice-1d"
    return Section(title=t, kind=kind, source=source, blocks=blocks(_summary(data), fig_blocks),
                   provenance=prov)
