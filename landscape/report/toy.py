"""2-D toy surfaces (``landscape toy``): contour and 3-D surface with each optimizer's trajectory,
and each step's stability ratio λ₁(P⁻¹H)·η/c (1 = the family's edge of stability)."""

from __future__ import annotations

from typing import Any, List, Mapping

import numpy as np
import plotly.graph_objects as go

from .common import (
    FigureBlock,
    Section,
    TableBlock,
    TextBlock,
    base_layout,
    blocks,
    farray,
    fmt,
    plot_text,
    provenance_from,
)

PALETTE = ("#ff7f0e", "#2ca02c", "#1f77b4", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf",
           "#7f7f7f", "#bcbd22")


def is_toy(d: Any) -> bool:
    return isinstance(d, Mapping) and d.get("kind") == "toy" and isinstance(d.get("trajectories"), list)


def _label(t: Mapping[str, Any]) -> str:
    return f"{t.get('optimizer')} lr={fmt(t.get('lr'))}"


def _clipped_points(t: Mapping[str, Any], domain: List[float]) -> np.ndarray:
    pts = farray(t.get("points") or []).reshape(-1, 2)
    x0, x1, y0, y1 = domain
    pad_x, pad_y = 0.5 * (x1 - x0), 0.5 * (y1 - y0)
    keep = (np.isfinite(pts).all(axis=1) & (pts[:, 0] > x0 - pad_x) & (pts[:, 0] < x1 + pad_x)
            & (pts[:, 1] > y0 - pad_y) & (pts[:, 1] < y1 + pad_y))
    # cut the path where it first leaves the padded domain (a diverging run)
    stop = int(np.argmin(keep)) if not keep.all() else len(pts)
    return pts[:stop]


def contour_figure(d: Mapping[str, Any], *, title: str) -> FigureBlock:
    x, y, z = farray(d["grid_x"]), farray(d["grid_y"]), farray(d["grid_z"])
    fig = go.Figure(go.Contour(x=x, y=y, z=z, ncontours=40, colorscale="Viridis", showscale=True,
                               colorbar={"title": "f"}, name="f"))
    domain = list(d["surface"].get("domain") or [x.min(), x.max(), y.min(), y.max()])
    for i, t in enumerate(d["trajectories"]):
        pts = _clipped_points(t, domain)
        fig.add_trace(go.Scatter(x=pts[:, 0], y=pts[:, 1], mode="lines+markers", name=plot_text(_label(t)),
                                 line={"color": PALETTE[i % len(PALETTE)], "width": 2}, marker={"size": 4}))
    start = d.get("start")
    if start:
        fig.add_trace(go.Scatter(x=[start[0]], y=[start[1]], mode="markers", name="start",
                                 marker={"symbol": "x", "size": 11, "color": "black"}))
    rc = d["surface"].get("crest_radius")
    if rc:
        a = np.linspace(0, 2 * np.pi, 200)
        fig.add_trace(go.Scatter(x=rc * np.cos(a), y=rc * np.sin(a), mode="lines", name="wall crest",
                                 line={"color": "white", "dash": "dot"}))
    fig.update_xaxes(range=domain[:2], title="x")
    fig.update_yaxes(range=domain[2:], title="y", scaleanchor="x")
    return FigureBlock(base_layout(fig, title=title, height=560), "toy-contour",
                       "Contour of the surface with each optimizer's path (cut where it leaves the plot).")


def surface_figure(d: Mapping[str, Any], *, title: str) -> FigureBlock:
    x, y, z = farray(d["grid_x"]), farray(d["grid_y"]), farray(d["grid_z"])
    fig = go.Figure(go.Surface(x=x, y=y, z=z, colorscale="Viridis", opacity=0.85, showscale=False, name="f"))
    domain = list(d["surface"].get("domain") or [x.min(), x.max(), y.min(), y.max()])
    for i, t in enumerate(d["trajectories"]):
        pts = _clipped_points(t, domain)
        losses = farray(t.get("losses") or [])[:len(pts)]
        fig.add_trace(go.Scatter3d(x=pts[:, 0], y=pts[:, 1], z=losses, mode="lines+markers",
                                   name=plot_text(_label(t)), marker={"size": 2},
                                   line={"color": PALETTE[i % len(PALETTE)], "width": 5}))
    fig.update_layout(scene={"xaxis_title": "x", "yaxis_title": "y", "zaxis_title": "f"})
    return FigureBlock(base_layout(fig, title=title, height=600), "toy-surface",
                       "3-D surface with the trajectories at their loss values.")


def ratio_figure(d: Mapping[str, Any], *, title: str) -> FigureBlock:
    fig = go.Figure()
    for i, t in enumerate(d["trajectories"]):
        r = farray(t.get("stability_ratio") or [])
        fig.add_trace(go.Scatter(x=np.arange(1, len(r) + 1), y=r, mode="lines", name=plot_text(_label(t)),
                                 line={"color": PALETTE[i % len(PALETTE)]}))
    fig.add_hline(y=1.0, line_dash="dash", line_color="#555555", annotation_text="edge of stability")
    fig.update_xaxes(title="step")
    fig.update_yaxes(title="λ₁(P⁻¹H)·η / c")
    return FigureBlock(base_layout(fig, title=title), "toy-stability",
                       "Per-step stability ratio of the frozen-preconditioner quadratic model "
                       "(> 1: the local quadratic would diverge under this step).")


def toy_table(d: Mapping[str, Any]) -> TableBlock:
    rows = []
    for t in d["trajectories"]:
        ratio = farray(t.get("stability_ratio") or [])
        fin = ratio[np.isfinite(ratio)]
        outcome = ""
        if t.get("escaped") is not None:
            outcome = ("first step crossed the wall; " if t.get("first_step_crossed") else "") + \
                      ("escaped" if t.get("escaped") else "trapped in the basin")
        rows.append((str(t.get("optimizer")), fmt(t.get("lr")),
                     ", ".join(fmt(v) for v in (t.get("final_point") or [])), fmt(t.get("final_loss")),
                     fmt(fin.max()) if fin.size else "—", "diverged" if t.get("diverged") else outcome))
    return TableBlock(("optimizer", "lr", "final point", "final loss", "max stability ratio", "outcome"),
                      tuple(rows))


def toy_section(d: Mapping[str, Any], *, source: str, label: str) -> Section:
    surf = d["surface"]
    t = f"Toy surface {surf.get('name')} — {label}"
    notes = [f"f = {surf.get('formula')}; parameters {surf.get('params')}; start {d.get('start')}; "
             f"{d.get('steps')} steps"]
    for c in d.get("crossings") or []:
        eta = c.get("first_step_crossing_lr")
        notes.append(f"{c.get('optimizer')}: the first step lands beyond the wall crest for lr > {fmt(eta, 6)}"
                     if eta is not None else f"{c.get('optimizer')}: the first step never crosses the wall")
    return Section(title=t, kind="toy", source=source, provenance=provenance_from(d, source=source),
                   blocks=blocks(TextBlock(tuple(notes)), toy_table(d), contour_figure(d, title=f"{t}: contour"),
                                 surface_figure(d, title=f"{t}: surface"),
                                 ratio_figure(d, title=f"{t}: stability ratio per step")))
