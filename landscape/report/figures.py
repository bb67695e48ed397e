"""Static figures for papers: PDF, PNG and SVG with matplotlib (no browser, no network).

``landscape figure INPUT... --out FILE.{pdf,png,svg}`` calls :func:`render_figure`. The kind of
figure follows from the input's content, as in the HTML report:

* a 2-D slice (``.h5`` from ``landscape slice``, or Li et al.'s own surface files): filled
  contours with log-spaced levels (``linear=True`` for evenly spaced ones), the checkpoint marked,
  train and test side by side (``only="train"|"test"`` for one); ``kind="surface"`` draws 3-D
  surfaces instead (heights clipped at ``zmax`` as in Li et al.'s plots);
* a 1-D slice or an interpolation: train/test loss and accuracy curves (several inputs overlay);
* a Hessian JSON with a spectral density: the density on a log scale with the top eigenvalues;
* a run folder (or its ``sharpness.csv`` from ``train --track-sharpness``): the tracked sharpness
  against the optimizer's stability threshold, one colour per run (the edge-of-stability figure);
* the first-step probe's JSON: per-layer relative update ‖ΔW‖/‖W‖ of Adam and SGD, one panel per
  learning rate.

Output is reproducible: the same input and options give the same bytes (no dates, no software
version, a fixed SVG hash salt), and fonts are embedded (TrueType in PDF, glyph outlines in SVG).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from ..errors import Field, LandscapeError, OptionError
from .common import farray, fnum, short_path

FORMATS = ("pdf", "png", "svg")
KINDS = ("auto", "contour", "surface", "line", "density", "eos", "first-step")
STYLES = ("paper", "slides")
COLORS = {"train": "#1f77b4", "test": "#d62728", "adam": "#ff7f0e", "sgd": "#2ca02c", "threshold": "#444444"}
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#7f7f7f")
# (panel width, panel height) in inches and the base font size of each style
_STYLE = {"paper": ((3.3, 2.7), 8.0), "slides": ((6.0, 4.5), 15.0)}


@dataclass(frozen=True)
class FigureOptions:
    """What to draw and how; every field has a default chosen for a two-column paper.

    ``levels`` is the number of filled contour bands; ``zmax`` clips the loss from above (the
    contour colour range and the surface heights); ``vmin``/``vmax`` fix the colour range;
    ``size`` is the whole figure's (width, height) in inches.
    """

    kind: str = "auto"
    quantity: str = "loss"
    only: Optional[str] = None
    linear: bool = False
    levels: int = 15
    zmax: Optional[float] = None
    vmin: Optional[float] = None
    vmax: Optional[float] = None
    title: Optional[str] = None
    size: Optional[Tuple[float, float]] = None
    dpi: int = 200
    font_size: Optional[float] = None
    style: str = "paper"


@dataclass(frozen=True)
class FigureResult:
    """What was written: the file, its format and kind, the panels drawn, and notes for the user."""

    out: str
    format: str
    kind: str
    panels: Tuple[str, ...]
    notes: Tuple[str, ...] = ()
    levels: Tuple[float, ...] = ()

    def to_json(self) -> dict:
        return {"out": self.out, "format": self.format, "kind": self.kind, "panels": list(self.panels),
                "notes": list(self.notes), "levels": list(self.levels)}


# ---------------------------------------------------------------------------------------------
# inputs


@dataclass(frozen=True)
class _Input:
    """One loaded input: its kind and content (a SliceData, a dict, or sharpness columns)."""

    path: str
    kind: str  # "slice-2d", "slice-1d", "hessian", "first-step", "eos"
    data: Any
    notes: Tuple[str, ...] = ()


def _load(path_text: str) -> _Input:
    """Tell an input's kind from its content (HDF5 datasets, JSON keys, a run's sharpness.csv)."""
    from .probes import is_first_step
    from .slices import read_slice_h5

    path = Path(path_text)
    if not path.exists():
        raise LandscapeError(f"{path}: no such file or folder")
    if path.is_dir():
        csv_path = path / "sharpness.csv"
        if not csv_path.exists():
            raise OptionError("{path}: a folder without sharpness.csv (train with {track_every} K)", path=path)
        return _Input(str(path), "eos", _read_tracked(csv_path))
    with open(path, "rb") as f:
        head = f.read(8)
    if head == b"\x89HDF\r\n\x1a\n":
        try:
            data = read_slice_h5(path)
        except OSError as exc:
            raise LandscapeError(f"{path}: unreadable HDF5 file ({exc})") from None
        notes = tuple(data.attrs.get("read_notes", ()))
        return _Input(str(path), "slice-2d" if data.ndim == 2 else "slice-1d", data, notes)
    if path.suffix.lower() == ".csv" or head.startswith(b"step,"):
        return _Input(str(path), "eos", _read_tracked(path))
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise LandscapeError(f"{path}: neither an HDF5 slice, a JSON result nor a sharpness.csv") from None
    if isinstance(d, Mapping) and is_first_step(d):
        return _Input(str(path), "first-step", d)
    if isinstance(d, Mapping) and "eigenvalues" in d:
        return _Input(str(path), "hessian", d)
    if isinstance(d, Mapping) and "train_loss" in d and any(k in d for k in ("xcoordinates", "alphas")):
        from .slices import slice_from_mapping

        data = slice_from_mapping(d, source=str(path))
        return _Input(str(path), "slice-2d" if data.ndim == 2 else "slice-1d", data)
    raise OptionError("{path}: no figure for this result; expected a slice (.h5), a Hessian JSON with "
                      "{density}, the first-step probe's JSON, or a run folder with sharpness.csv", path=path)


def _read_tracked(path: Path) -> Dict[str, list]:
    from ..hessian.tracking import read_sharpness

    cols = read_sharpness(path)
    if not cols.get("step") or "sharpness" not in cols or "threshold" not in cols:
        raise LandscapeError(f"{path}: no tracked sharpness rows (expected the columns step, sharpness, threshold)")
    return cols


# ---------------------------------------------------------------------------------------------
# matplotlib set-up


class _Canvas:
    """The few pyplot-like calls the drawing functions use, on plain :class:`matplotlib.figure.Figure`
    objects: no pyplot, no global backend switch, no figure registry to leak into."""

    @staticmethod
    def subplots(nrows: int, ncols: int, *, figsize: Tuple[float, float], layout: Optional[str] = None,
                 **kw: Any) -> Tuple[Any, Any]:
        from matplotlib.figure import Figure

        fig = Figure(figsize=figsize, layout=layout)
        return fig, fig.subplots(nrows, ncols, **kw)

    @staticmethod
    def figure(*, figsize: Tuple[float, float]) -> Any:
        from matplotlib.figure import Figure

        return Figure(figsize=figsize)

    @staticmethod
    def get_cmap(name: str) -> Any:
        import matplotlib

        return matplotlib.colormaps[name]


def _style_rc(opts: FigureOptions, font: float) -> Dict[str, Any]:
    """Settings applied on top of matplotlib's defaults (never the user's matplotlibrc), inside an
    ``rc_context`` so the caller's own settings are untouched."""
    return {
        "pdf.fonttype": 42, "ps.fonttype": 42, "svg.fonttype": "path", "svg.hashsalt": "landscape",
        "font.size": font, "axes.titlesize": font, "axes.labelsize": font, "legend.fontsize": font * 0.85,
        "xtick.labelsize": font * 0.85, "ytick.labelsize": font * 0.85, "figure.dpi": 100,
        "axes.linewidth": 0.6 if opts.style == "paper" else 1.0,
        "lines.linewidth": 1.1 if opts.style == "paper" else 2.0, "savefig.bbox": "standard",
    }


def _figure_size(opts: FigureOptions, n_panels: int) -> Tuple[float, float]:
    if opts.size is not None:
        return opts.size
    (w, h), _ = _STYLE[opts.style]
    return (w * n_panels + (0.6 if n_panels > 1 else 0.0), h)


def _save(fig: Any, out: Path, fmt: str, dpi: int) -> None:
    """Write without dates or software versions, so the same figure gives the same bytes."""
    meta: Dict[str, Any]
    if fmt == "pdf":
        meta = {"Creator": None, "Producer": None, "CreationDate": None, "ModDate": None}
    elif fmt == "svg":
        meta = {"Creator": None, "Date": None, "Format": None, "Type": None}
    else:
        meta = {"Software": None}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    fig.savefig(tmp, format=fmt, dpi=dpi, metadata=meta)
    tmp.replace(out)


# ---------------------------------------------------------------------------------------------
# 2-D slices


def contour_levels(z: Sequence[np.ndarray], *, n: int, log: bool, vmin: Optional[float] = None,
                   vmax: Optional[float] = None) -> np.ndarray:
    """``n + 1`` band edges over the finite values of all panels (log-spaced for ``log``).

    Log spacing needs a positive lower end: the smallest positive value, or ``vmin``.
    """
    vals = np.concatenate([a[np.isfinite(a)].ravel() for a in z]) if z else np.array([])
    if vals.size == 0:
        raise LandscapeError("no computed points to draw")
    lo = float(vals.min()) if vmin is None else float(vmin)
    hi = float(vals.max()) if vmax is None else float(vmax)
    if log:
        pos = vals[vals > 0]
        if vmin is None:
            if pos.size == 0:
                raise OptionError("log-spaced levels need positive values; use {linear}")
            lo = float(pos.min())
        if lo <= 0:
            raise OptionError("{vmin} {lo:g}: log-spaced levels need a positive minimum; use {linear}", lo=lo)
    if not hi > lo:
        if vmin is not None or vmax is not None:
            raise OptionError("the colour range [{lo:g}, {hi:g}] is empty: {vmin}/{vmax}/{zmax} must leave "
                              "room above the smallest value", lo=lo, hi=hi)
        hi = lo + (abs(lo) or 1.0) * 1e-6 if not log else lo * (1 + 1e-6)  # a flat surface
    return np.geomspace(lo, hi, n + 1) if log else np.linspace(lo, hi, n + 1)


def _slice_panels(data: Any, opts: FigureOptions) -> List[Tuple[str, np.ndarray]]:
    splits = ("train", "test") if opts.only is None else (opts.only,)
    panels = [(s, data.values[f"{s}_{opts.quantity}"]) for s in splits if f"{s}_{opts.quantity}" in data.values]
    if not panels:
        have = ", ".join(sorted(data.values)) or "none"
        raise LandscapeError(f"no {' or '.join(f'{s}_{opts.quantity}' for s in splits)} in this slice (has: {have})")
    return panels


def _axis_labels(data: Any) -> Tuple[str, str]:
    ev = data.explained_variance
    if ev is not None and len(ev) >= 2 and np.all(ev <= 1.0):
        return f"PC1 ({100 * ev[0]:.1f}%)", f"PC2 ({100 * ev[1]:.1f}%)"
    return "x (direction 0)", "y (direction 1)"


def _quantity_label(q: str) -> str:
    return {"loss": "loss", "acc": "accuracy"}.get(q, q)


def _draw_contour(plt: Any, inp: _Input, opts: FigureOptions) -> Tuple[Any, Tuple[str, ...], Tuple[float, ...]]:
    from matplotlib.colors import BoundaryNorm

    data = inp.data
    panels = _slice_panels(data, opts)
    log = opts.quantity == "loss" and not opts.linear
    zs = [np.minimum(z, opts.zmax) if opts.zmax is not None else z for _, z in panels]
    vmax = opts.vmax if opts.vmax is not None else opts.zmax
    levels = contour_levels(zs, n=opts.levels, log=log, vmin=opts.vmin, vmax=vmax)
    fig, axes = plt.subplots(1, len(panels), figsize=_figure_size(opts, len(panels)), squeeze=False,
                             sharey=True, layout="constrained")
    cmap = plt.get_cmap("viridis")
    norm = BoundaryNorm(levels, cmap.N)
    xl, yl = _axis_labels(data)
    cs = None
    for ax, (split, _), z in zip(axes[0], panels, zs):
        zc = np.clip(z, levels[0], levels[-1])  # values outside --vmin/--vmax take the end colours
        cs = ax.contourf(data.x, data.y, zc.T, levels=levels, cmap=cmap, norm=norm)
        cs.set_gid(f"contourf-{split}")
        ax.contour(data.x, data.y, zc.T, levels=levels, colors="white", linewidths=0.25, alpha=0.6)
        if data.trajectory is not None:
            ax.plot(data.trajectory[:, 0], data.trajectory[:, 1], "-o", color="white", ms=2.5, lw=1.0,
                    markeredgecolor="black", markeredgewidth=0.3, gid="trajectory")
        for m in data.markers:
            ax.plot([m.x], [m.y], marker="*", color="red", ms=8 if opts.style == "paper" else 14,
                    markeredgecolor="black", markeredgewidth=0.4, linestyle="none", gid="checkpoint-marker")
        ax.set_title(f"{split} {_quantity_label(opts.quantity)}")
        ax.set_xlabel(xl)
        ax.set_aspect("auto")
    axes[0][0].set_ylabel(yl)
    ticks = levels if len(levels) <= 8 else levels[:: max(1, len(levels) // 6)]
    cb = fig.colorbar(cs, ax=list(axes[0]), ticks=ticks, format="%.3g")
    cb.set_label(_quantity_label(opts.quantity) + (" (log-spaced levels)" if log else "")
                 + (f", clipped at {opts.zmax:g}" if opts.zmax is not None else ""))
    return fig, tuple(f"{s} {opts.quantity}" for s, _ in panels), tuple(float(v) for v in levels)


def _draw_surface(plt: Any, inp: _Input, opts: FigureOptions) -> Tuple[Any, Tuple[str, ...], Tuple[float, ...]]:
    from matplotlib.ticker import MaxNLocator

    data = inp.data
    panels = _slice_panels(data, opts)
    zs = [np.minimum(z, opts.zmax) if opts.zmax is not None else z for _, z in panels]
    w, h = _figure_size(opts, len(panels))
    fig = plt.figure(figsize=(w, h * 1.15 if opts.size is None else h))  # 3-D axes need a little more height
    X, Y = np.meshgrid(data.x, data.y, indexing="ij")
    finite = np.concatenate([z[np.isfinite(z)] for z in zs])
    if finite.size == 0:
        raise LandscapeError("no computed points to draw")
    lo = float(finite.min()) if opts.vmin is None else opts.vmin
    hi = float(finite.max()) if opts.vmax is None else opts.vmax
    xl, yl = _axis_labels(data)
    for i, ((split, _), z) in enumerate(zip(panels, zs), start=1):
        ax = fig.add_subplot(1, len(panels), i, projection="3d")
        surf = ax.plot_surface(X, Y, np.ma.masked_invalid(z), cmap="viridis", vmin=lo, vmax=hi,
                               rstride=1, cstride=1, linewidth=0.1, edgecolor="none", antialiased=True)
        surf.set_gid(f"surface-{split}")
        for m in data.markers:
            ix, iy = int(np.argmin(np.abs(data.x - m.x))), int(np.argmin(np.abs(data.y - m.y)))
            if np.isfinite(z[ix, iy]):
                ax.scatter([m.x], [m.y], [z[ix, iy]], color="red", marker="*", s=30, depthshade=False)
        ax.set_title(f"{split} {_quantity_label(opts.quantity)}")
        ax.set_xlabel(xl.split(" ")[0])
        ax.set_ylabel(yl.split(" ")[0])
        ax.set_zlabel(_quantity_label(opts.quantity))
        for axis in (ax.xaxis, ax.yaxis, ax.zaxis):
            axis.set_major_locator(MaxNLocator(5))
        ax.view_init(elev=30, azim=-60)
    fig.subplots_adjust(left=0.02, right=0.95, bottom=0.05, top=0.9, wspace=0.1)
    return fig, tuple(f"{s} {opts.quantity}" for s, _ in panels), ()


# ---------------------------------------------------------------------------------------------
# 1-D slices and interpolations


def _draw_lines(plt: Any, inputs: Sequence[_Input], opts: FigureOptions) -> Tuple[Any, Tuple[str, ...], Tuple[float, ...]]:
    has_acc = any(k.endswith("_acc") for i in inputs for k in i.data.values)
    cols = 2 if has_acc else 1
    fig, axes = plt.subplots(1, cols, figsize=_figure_size(opts, cols), squeeze=False, layout="constrained")
    splits = ("train", "test") if opts.only is None else (opts.only,)
    interp = all(i.data.interpolation for i in inputs)
    for n, inp in enumerate(inputs):
        data = inp.data
        tag = f" ({short_path(inp.path)})" if len(inputs) > 1 else ""
        for split in splits:
            color = COLORS[split] if len(inputs) == 1 else PALETTE[n % len(PALETTE)]
            style = "-" if split == "train" else "--"
            for c, what in enumerate(("loss", "acc")[:cols]):
                v = data.values.get(f"{split}_{what}")
                if v is not None:
                    axes[0][c].plot(data.x, v, style, color=color, label=f"{split}{tag}", gid=f"{split}-{what}-{n}")
        for m in data.markers if n == 0 else ():
            for ax in axes[0]:
                ax.axvline(m.x, color=COLORS["threshold"], lw=0.6, ls=":")
            axes[0][0].annotate(m.label.split(":")[0], (m.x, 1.0), xycoords=("data", "axes fraction"),
                                ha="center", va="bottom", fontsize="small")
    xl = "α" if interp else "x (direction 0)"
    axes[0][0].set_ylabel("loss")
    if not opts.linear and opts.quantity == "loss":
        pos = [v[np.isfinite(v) & (v > 0)] for i in inputs for k, v in i.data.values.items() if k.endswith("_loss")]
        pos = [p for p in pos if p.size]
        if pos and max(p.max() for p in pos) / min(p.min() for p in pos) > 100:
            axes[0][0].set_yscale("log")
    if opts.zmax is not None:
        axes[0][0].set_ylim(top=opts.zmax)
    if opts.vmin is not None or opts.vmax is not None:
        axes[0][0].set_ylim(bottom=opts.vmin, top=opts.vmax if opts.vmax is not None else opts.zmax)
    if cols == 2:
        axes[0][1].set_ylabel("accuracy")
    for ax in axes[0]:
        ax.set_xlabel(xl)
        ax.grid(alpha=0.3, lw=0.4)
    axes[0][0].legend(loc="best", frameon=False)
    return fig, tuple(["loss", "accuracy"][:cols]), ()


# ---------------------------------------------------------------------------------------------
# Hessian density, tracked sharpness, first step


def _draw_density(plt: Any, inp: _Input, opts: FigureOptions) -> Tuple[Any, Tuple[str, ...], Tuple[float, ...]]:
    d = inp.data
    dens = d.get("density")
    if not isinstance(dens, Mapping) or dens.get("grid") is None or dens.get("values") is None:
        raise LandscapeError(f"{inp.path}: no spectral density (run `landscape hessian --density`)")
    g, v = farray(dens["grid"]).ravel(), farray(dens["values"]).ravel()
    fig, axes = plt.subplots(1, 1, figsize=_figure_size(opts, 1), squeeze=False, layout="constrained")
    ax = axes[0][0]
    ok = np.isfinite(v) & (v > 0)
    ax.semilogy(g[ok], v[ok], color=COLORS["train"], gid="density")
    top = float(v[ok].max()) if ok.any() else 1.0
    ax.set_ylim(top * 1e-6 if opts.vmin is None else opts.vmin, top * 2 if opts.vmax is None else opts.vmax)
    eig = farray(d.get("eigenvalues") or []).ravel()
    for i, lam in enumerate(eig):
        ax.axvline(lam, color=COLORS["test"], lw=0.7, ls="--", gid=f"eigenvalue-{i + 1}")
    if eig.size:
        ax.annotate(f"λ₁ = {eig[0]:.4g}", (eig[0], 1.0), xycoords=("data", "axes fraction"), ha="right",
                    va="bottom", fontsize="small", color=COLORS["test"])
    ax.set_xlabel("eigenvalue λ")
    ax.set_ylabel("spectral density")
    ax.grid(alpha=0.3, lw=0.4)
    return fig, ("density",), ()


def _draw_eos(plt: Any, inputs: Sequence[_Input], opts: FigureOptions) -> Tuple[Any, Tuple[str, ...], Tuple[float, ...]]:
    fig, axes = plt.subplots(1, 1, figsize=_figure_size(opts, 1), squeeze=False, layout="constrained")
    ax = axes[0][0]
    spans = []
    for n, inp in enumerate(inputs):
        cols = inp.data
        color = PALETTE[n % len(PALETTE)]
        step = farray(cols["step"])
        val, thr = farray(cols["sharpness"]), farray(cols["threshold"])
        on = str(cols.get("on", [""])[0]) if cols.get("on") else ""
        name = {"H": "λ_max", "P^-1 H": "λ₁(P⁻¹H)", "batch sharpness": "batch sharpness"}.get(on, on or "sharpness")
        lr = fnum(cols.get("lr", [None])[0])
        tag = f", η = {lr:g}" if lr is not None else ""
        if len(inputs) > 1:
            tag += f" ({short_path(inp.path)})"
        ax.plot(step, val, "-", color=color, label=f"{name}{tag}", gid=f"sharpness-{n}")
        lam = farray(cols["lambda_max"]) if on != "H" and "lambda_max" in cols else None
        if lam is not None and np.isfinite(lam).any():
            ax.plot(step, lam, ":", color=color, lw=0.9, label="λ_max", gid=f"lambda-max-{n}")
            val = np.concatenate([val, lam])
        rule = str(cols.get("rule", [""])[0]) if cols.get("rule") else "threshold"
        ax.plot(step, thr, "--", color=color, lw=0.9, label=f"{rule} = {thr[-1]:.4g}", gid=f"threshold-{n}")
        fin = np.concatenate([val[np.isfinite(val)], thr[np.isfinite(thr)]])
        if fin.size:
            spans.append((fin.min(), fin.max()))
    positive = bool(spans) and min(s[0] for s in spans) > 0
    if positive and max(s[1] for s in spans) / min(s[0] for s in spans) > 100 and not opts.linear:
        ax.set_yscale("log")
    if opts.vmin is not None or opts.vmax is not None:
        ax.set_ylim(bottom=opts.vmin, top=opts.vmax)
    ax.set_xlabel("step")
    ax.set_ylabel("sharpness")
    ax.grid(alpha=0.3, lw=0.4)
    ax.legend(loc="best", frameon=False)
    return fig, ("sharpness",), ()


def _draw_first_step(plt: Any, inp: _Input, opts: FigureOptions) -> Tuple[Any, Tuple[str, ...], Tuple[float, ...]]:
    runs = [r for r in inp.data.get("runs") or [] if isinstance(r, Mapping)]
    runs = [r for r in runs if any(isinstance(r.get(o), Mapping) and r[o].get("per_layer") for o in ("adam", "sgd"))]
    if not runs:
        raise LandscapeError(f"{inp.path}: no per-layer updates in this first-step result")
    first = next(r[o] for r in runs for o in ("adam", "sgd") if isinstance(r.get(o), Mapping))
    names = [str(p.get("name")) for p in first["per_layer"]]
    w, h = _figure_size(opts, len(runs))
    h = max(h, 0.9 + 0.16 * len(names)) if opts.size is None else h
    fig, axes = plt.subplots(1, len(runs), figsize=(w, h), squeeze=False, sharey=True, layout="constrained")
    y = np.arange(len(names))
    bar = 0.4
    several_losses = len({str(r.get("loss")) for r in runs}) > 1  # runs of --compare-losses
    for ax, run in zip(axes[0], runs):
        for k, opt in enumerate(("adam", "sgd")):
            rec = run.get(opt)
            if not isinstance(rec, Mapping):
                continue
            rel = {str(p.get("name")): fnum(p.get("relative")) for p in rec.get("per_layer") or []}
            vals = np.array([rel.get(n) if rel.get(n) is not None else np.nan for n in names], dtype=float)
            ax.barh(y + (k - 0.5) * bar, vals, height=bar, color=COLORS[opt],
                    label=f"{'Adam' if opt == 'adam' else 'SGD'}", gid=f"bars-{opt}")
        ax.axvline(1.0, color=COLORS["threshold"], lw=0.6, ls=":")
        ax.set_xscale("log")
        lr = fnum(run.get("lr"))
        title = f"η = {lr:g}" if lr is not None else ""
        ax.set_title(title + (f", {run.get('loss')}" if several_losses else ""))
        ax.set_xlabel("‖ΔW‖ / ‖W‖ after step 1")
        ax.grid(axis="x", alpha=0.3, lw=0.4)
    axes[0][0].set_yticks(y, names)
    axes[0][0].invert_yaxis()
    axes[0][0].legend(loc="best", frameon=False)
    return fig, tuple(f"lr {r.get('lr')}" + (f" {r.get('loss')}" if several_losses else "") for r in runs), ()


# ---------------------------------------------------------------------------------------------
# entry point


def _resolve_kind(inputs: Sequence[_Input], kind: str) -> str:
    kinds = {i.kind for i in inputs}
    if len(kinds) > 1:
        raise LandscapeError("inputs of different kinds (" + ", ".join(sorted(kinds)) + "); one figure takes "
                             "one kind of input")
    (have,) = kinds
    wants = {"slice-2d": ("contour", "surface"), "slice-1d": ("line",), "hessian": ("density",),
             "eos": ("eos",), "first-step": ("first-step",)}[have]
    if kind == "auto":
        kind = wants[0]
    if kind not in wants:
        raise OptionError("{kind} {value} does not fit a {have} input (use {wants})", value=kind, have=have,
                          wants=" or ".join(wants))
    if len(inputs) > 1 and kind not in ("line", "eos"):
        raise OptionError("{kind} {value} draws one input; several overlay only for 1-D slices and "
                          "tracked sharpness", value=kind)
    return kind


def _check(opts: FigureOptions) -> None:
    if opts.kind not in KINDS:
        raise OptionError("{kind} {value!r}: expected one of {kinds}", value=opts.kind, kinds=", ".join(KINDS))
    if opts.style not in STYLES:
        raise OptionError("{style} {value!r}: expected paper or slides", value=opts.style)
    if opts.only not in (None, "train", "test"):
        raise OptionError("{only} {value!r}: expected train or test", value=opts.only)
    if opts.quantity not in ("loss", "acc"):
        raise OptionError("{quantity} {value!r}: expected loss or acc", value=opts.quantity)
    if opts.levels < 2 or opts.levels > 200:
        raise OptionError("{levels} {value}: expected 2 to 200 bands", value=opts.levels)
    if opts.dpi < 20 or opts.dpi > 2400:
        raise OptionError("{dpi} {value}: expected 20 to 2400", value=opts.dpi)
    if opts.size is not None and (len(opts.size) != 2 or not all(0.5 <= s <= 40 for s in opts.size)):
        raise OptionError("{size} W,H: expected two numbers of inches between 0.5 and 40")
    if opts.vmin is not None and opts.vmax is not None and not opts.vmin < opts.vmax:
        raise OptionError("{vmin} must be smaller than {vmax}")
    for name, v in (("zmax", opts.zmax), ("vmin", opts.vmin), ("vmax", opts.vmax)):
        if v is not None and not math.isfinite(v):
            raise OptionError("{name} must be a finite number", name=Field(name))


def render_figure(inputs: Sequence[str], out: str, *, options: Optional[FigureOptions] = None) -> FigureResult:
    """Draw ``inputs`` into ``out`` (format from its extension: .pdf, .png or .svg)."""
    opts = options or FigureOptions()
    _check(opts)
    if not inputs:
        raise LandscapeError("give at least one input")
    out_path = Path(out)
    fmt = out_path.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise OptionError("{out} {value}: the extension must be .pdf, .png or .svg", value=out)
    loaded = [_load(p) for p in inputs]
    kind = _resolve_kind(loaded, opts.kind)
    font = opts.font_size if opts.font_size is not None else _STYLE[opts.style][1]
    import matplotlib
    from mpl_toolkits.mplot3d import Axes3D  # noqa: F401  (registers the 3-D projection)

    plt = _Canvas()
    draw = {"contour": lambda: _draw_contour(plt, loaded[0], opts),
            "surface": lambda: _draw_surface(plt, loaded[0], opts),
            "line": lambda: _draw_lines(plt, loaded, opts),
            "density": lambda: _draw_density(plt, loaded[0], opts),
            "eos": lambda: _draw_eos(plt, loaded, opts),
            "first-step": lambda: _draw_first_step(plt, loaded[0], opts)}[kind]
    with matplotlib.rc_context():
        matplotlib.rcdefaults()  # undone when the context ends
        matplotlib.rcParams.update(_style_rc(opts, font))
        fig, panels, levels = draw()
        if opts.title:
            fig.suptitle(opts.title)
        _save(fig, out_path, fmt, opts.dpi)
    notes = tuple(n for i in loaded for n in i.notes)
    return FigureResult(out=str(out_path), format=fmt, kind=kind, panels=panels, notes=notes, levels=levels)


def with_defaults(opts: FigureOptions, **changes: Any) -> FigureOptions:
    """A copy of ``opts`` with the given fields changed (``None`` values are ignored)."""
    return replace(opts, **{k: v for k, v in changes.items() if v is not None})
