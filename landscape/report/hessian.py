"""Figures for Hessian results: top eigenvalues, spectral density, per-layer λ_max, stability.

Reads the JSON of ``landscape hessian`` (keys ``eigenvalues``, ``residuals``, ``converged``,
``smallest_eigenvalue``, ``trace``, ``trace_stderr``, ``density`` {``grid``, ``values``},
``per_layer``, ``preconditioned_eigenvalues``, ``stability``, ``hvps``, ``seconds``); every key but
``eigenvalues`` is optional. The stability gauge shows η·λ against the optimizer's threshold on
η·λ: 2 for gradient descent, 2+2β for heavy-ball momentum, (2+2β)/(1+2β) for Nesterov, and
(2+2β₁)/(1−β₁) on the preconditioned λ₁(P⁻¹H) for Adam (Cohen et al. 2021, 2022).
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Tuple

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..optim.families import ADAPTIVE
from .common import (
    COLORS,
    FigureBlock,
    Section,
    TableBlock,
    TextBlock,
    axis_scale_menu,
    base_layout,
    blocks,
    farray,
    first_key,
    fmt,
    fnum,
    plain,
    plot_text,
    provenance_from,
    toggle_menu,
)

THRESHOLDS_NOTE = ("thresholds on η·λ: gradient descent 2; heavy-ball momentum β: 2+2β; Nesterov: "
                   "(2+2β)/(1+2β); Adam: (2+2β₁)/(1−β₁) on the preconditioned λ₁(P⁻¹H) (38 at β₁ = 0.9)")


def is_hessian(d: Mapping[str, Any]) -> bool:
    return "eigenvalues" in d and not any(k in d for k in ("runs", "spikes"))


def _is_adaptive(stab: Mapping[str, Any]) -> bool:
    """Whether the verdict is on λ₁(P⁻¹H) (the family's adaptive flag)."""
    return str(stab.get("optimizer") or "").lower().split("(")[0].strip() in ADAPTIVE


def eigen_figure(d: Mapping[str, Any], *, title: str) -> Optional[FigureBlock]:
    """Top eigenvalues with their residual bounds |λ − λ_true| ≤ ‖Hv − λv‖ as error bars."""
    eig = farray(d.get("eigenvalues") or []).ravel()
    if eig.size == 0:
        return None
    pre = farray(d["preconditioned_eigenvalues"]).ravel() if d.get("preconditioned_eigenvalues") else None
    cols = 2 if pre is not None and pre.size else 1
    fig = make_subplots(rows=1, cols=cols, horizontal_spacing=0.12,
                        subplot_titles=["Hessian eigenvalues", "preconditioned λ(P⁻¹H)"][:cols])
    labels = [f"λ{i + 1}" for i in range(eig.size)]
    res = d.get("residuals")
    err = {"type": "data", "array": plain(farray(res).ravel()), "visible": True} if res else None
    fig.add_trace(go.Bar(x=labels, y=plain(eig), name="top eigenvalues", marker_color=COLORS["train"],
                         error_y=err, hovertemplate="%{x} = %{y:.5g}<extra></extra>"), row=1, col=1)
    small = fnum(d.get("smallest_eigenvalue"))
    if small is not None:
        fig.add_trace(go.Bar(x=["λ_min"], y=plain([small]), name="smallest eigenvalue",
                             marker_color=COLORS["test"], hovertemplate="λ_min = %{y:.5g}<extra></extra>"),
                      row=1, col=1)
    if cols == 2:
        fig.add_trace(go.Bar(x=[f"λ{i + 1}" for i in range(pre.size)], y=plain(pre), name="preconditioned",
                             marker_color=COLORS["adam"], hovertemplate="%{x} = %{y:.5g}<extra></extra>"),
                      row=1, col=2)
    fig.update_yaxes(title_text="eigenvalue", row=1, col=1)
    base_layout(fig, title=title, height=400)
    conv = d.get("converged")
    cap = "error bars: residual ‖Hv − λv‖ (bounds the eigenvalue error)"
    if conv is not None:
        cap += f"; converged: {fmt(conv) if isinstance(conv, bool) else conv}"
    return FigureBlock(fig, "eigenvalues", cap)


def density_figure(d: Mapping[str, Any], *, title: str) -> Optional[FigureBlock]:
    """Spectral density (stochastic Lanczos quadrature), log-scaled by default with a toggle."""
    dens = d.get("density")
    if not isinstance(dens, Mapping):
        return None
    grid = dens.get("grid") if dens.get("grid") is not None else dens.get("x")
    vals = dens.get("values") if dens.get("values") is not None else dens.get("density")
    if grid is None or vals is None:
        return None
    g, v = farray(grid).ravel(), farray(vals).ravel()
    fig = go.Figure(go.Scatter(x=plain(g), y=plain(v), mode="lines", name="density",
                               line={"color": COLORS["train"]}, fill="tozeroy",
                               hovertemplate="λ=%{x:.4g}<br>density=%{y:.3g}<extra></extra>"))
    eig = farray(d.get("eigenvalues") or []).ravel()
    if eig.size:
        fig.add_vline(x=float(eig[0]), line={"dash": "dash", "color": COLORS["test"]},
                      annotation_text="λ_max (Lanczos)", annotation_position="top left")
    fig.update_xaxes(title_text="eigenvalue λ")
    top = float(np.nanmax(v)) if np.isfinite(v).any() and np.nanmax(v) > 0 else 1.0
    # the Gaussian broadening's tails reach 1e-70 and below: show six decades under the peak
    log_range = [np.log10(top) - 6, np.log10(top) + 0.3]
    fig.update_yaxes(title_text="density", type="log", range=log_range)
    fig.update_layout(updatemenus=[toggle_menu([
        ("log", "relayout", [{"yaxis.type": "log", "yaxis.range": log_range}]),
        ("linear", "relayout", [{"yaxis.type": "linear", "yaxis.autorange": True}])])])
    base_layout(fig, title=title, height=380)
    extra = ", ".join(f"{k} {fmt(dens[k])}" for k in ("sigma", "n_vectors", "lanczos_steps", "num_vectors",
                                                         "steps") if k in dens)
    return FigureBlock(fig, "density", "stochastic Lanczos quadrature with Gaussian broadening"
                       + (f" ({extra})" if extra else ""))


def _per_layer_items(pl: Any) -> List[Tuple[str, float]]:
    if isinstance(pl, Mapping):
        return [(str(k), fnum(first_key(v, "lambda_max", "eigenvalue", "value") if isinstance(v, Mapping) else v))
                for k, v in pl.items()]
    out = []
    for i, item in enumerate(pl or []):
        if isinstance(item, Mapping):
            name = first_key(item, "name", "layer", "block", "param", "module") or f"block {i}"
            val = first_key(item, "lambda_max", "eigenvalue", "value", "top")
            if isinstance(val, (list, tuple)):
                val = val[0] if val else None
            out.append((str(name), fnum(val)))
        else:
            out.append((f"block {i}", fnum(item)))
    return out


def per_layer_figure(d: Mapping[str, Any], *, title: str) -> Optional[FigureBlock]:
    """λ_max of each layer's diagonal Hessian block (horizontal bars, log toggle)."""
    items = _per_layer_items(d.get("per_layer"))
    if not items:
        return None
    names = [plot_text(n) for n, _ in items]
    vals = [v for _, v in items]
    fig = go.Figure(go.Bar(y=names, x=plain(np.array([np.nan if v is None else v for v in vals])),
                           orientation="h", marker_color=COLORS["train"], name="λ_max of block",
                           hovertemplate="%{y}: %{x:.5g}<extra></extra>"))
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(title_text="λ_max of the layer's Hessian block")
    fig.update_layout(updatemenus=[axis_scale_menu("xaxis")])
    base_layout(fig, title=title, height=max(300, 60 + 22 * len(items)))
    fig.update_layout(margin={"l": 200})
    return FigureBlock(fig, "per-layer", "per-layer (block-diagonal) top eigenvalue")


def stability_numbers(stab: Mapping[str, Any]) -> Dict[str, Optional[float]]:
    """η, threshold, sharpness, η·sharpness and η·threshold (dimensionless) from a stability dict."""
    lr, thr, sharp = fnum(stab.get("lr")), fnum(stab.get("threshold")), fnum(stab.get("sharpness"))
    eta_l = lr * sharp if lr is not None and sharp is not None else fnum(stab.get("eta_lambda_max"))
    eta_thr = lr * thr if lr is not None and thr is not None else None
    ratio = fnum(stab.get("ratio"))
    if ratio is None and sharp is not None and thr:
        ratio = sharp / thr
    if eta_thr is None and eta_l is not None and ratio:
        eta_thr = eta_l / ratio
    return {"lr": lr, "threshold": thr, "sharpness": sharp, "eta_sharpness": eta_l,
            "eta_threshold": eta_thr, "ratio": ratio}


def stability_gauge(stab: Mapping[str, Any], *, title: str) -> Optional[FigureBlock]:
    """A gauge of η·λ against the optimizer's threshold (green below, red above; 2 marked)."""
    if not isinstance(stab, Mapping):
        return None
    n = stability_numbers(stab)
    val, thr = n["eta_sharpness"], n["eta_threshold"]
    if val is None or not np.isfinite(val):
        return None
    adaptive = _is_adaptive(stab)
    quantity = "η·λ₁(P⁻¹H)" if adaptive else "η·λ_max"
    # far above the threshold the bar is pinned at 3× the threshold (the number shows the value)
    top = max(2.5, 1.25 * (thr or 2.0), min(1.1 * val, 3 * thr) if thr else 1.1 * val)
    steps = [{"range": [0, min(2.0, top)], "color": "#d9f0d3"}]
    if thr is not None and thr > 2.0:
        steps.append({"range": [2.0, thr], "color": "#edf8e9"})
    if thr is not None:
        steps.append({"range": [thr, top], "color": "#fde0dd"})
    stable = stab.get("stable")
    if stable is None and thr is not None:
        stable = val <= thr
    verdict = "stable" if stable else ("unstable (above the threshold)" if stable is not None else "")
    opt = plot_text(stab.get("optimizer") or "optimizer unknown")
    if stab.get("rule"):
        opt += f", threshold {plot_text(stab['rule'])}" + (f" on {plot_text(stab['on'])}" if stab.get("on") else "")
    gauge = go.Indicator(
        mode="gauge+number+delta" if thr is not None else "gauge+number",
        value=float(val), number={"valueformat": ".4g"},
        delta={"reference": float(thr), "valueformat": ".3g", "increasing": {"color": COLORS["test"]},
               "decreasing": {"color": COLORS["sgd"]}} if thr is not None else None,
        title={"text": f"{quantity} — {opt}<br><span style='font-size:0.8em'>{verdict}</span>"},
        gauge={"axis": {"range": [0, top]}, "bar": {"color": COLORS["test"] if stable is False else COLORS["train"]},
               "steps": steps,
               "threshold": {"line": {"color": "black", "width": 4}, "thickness": 0.9,
                             "value": float(thr)} if thr is not None else None},
        domain={"x": [0, 1], "y": [0, 1]})
    fig = go.Figure(gauge)
    base_layout(fig, title=title, height=340)
    fig.update_layout(margin={"t": 110, "b": 20})
    parts = [f"{quantity} = {fmt(val)}"]
    if thr is not None:
        parts.append(f"threshold on η·λ = {fmt(thr)} (black line; the shaded band up to 2 is plain GD's)")
    if n["ratio"] is not None:
        parts.append(f"sharpness / threshold = {fmt(n['ratio'])}")
    if n["lr"] is not None:
        parts.append(f"η = {fmt(n['lr'])}")
    return FigureBlock(fig, "stability", "; ".join(parts) + ". " + THRESHOLDS_NOTE)


def summary_table(d: Mapping[str, Any]) -> TableBlock:
    rows: List[Tuple[str, str]] = []
    eig = farray(d.get("eigenvalues") or []).ravel()
    if eig.size:
        rows.append(("λ_max", fmt(eig[0])))
    res = d.get("residuals")
    if res:
        rows.append(("residual of λ_max", fmt(farray(res).ravel()[0])))
    for key, label in (("converged", "converged"), ("smallest_eigenvalue", "smallest eigenvalue")):
        if key in d:
            rows.append((label, fmt(d[key]) if not isinstance(d[key], list) else ", ".join(map(fmt, d[key]))))
    if "trace" in d:
        se = d.get("trace_stderr")
        rows.append(("trace", fmt(d["trace"]) + (f" ± {fmt(se)}" if se is not None else "")))
    stab = d.get("stability")
    if isinstance(stab, Mapping):
        n = stability_numbers(stab)
        rule = f" ({stab['rule']} on {stab.get('on', 'H')})" if stab.get("rule") else ""
        rows += [("optimizer", str(stab.get("optimizer"))), ("η", fmt(n["lr"])),
                 (f"threshold on sharpness{rule}", fmt(n["threshold"])), ("sharpness used", fmt(n["sharpness"])),
                 ("sharpness / threshold", fmt(n["ratio"])), ("stable", fmt(stab.get("stable")))]
    bs = d.get("batch_sharpness")
    if isinstance(bs, Mapping) and fnum(bs.get("batch_sharpness")) is not None:
        se = fnum(bs.get("stderr"))
        rows.append((f"batch sharpness (batch {bs.get('batch_size', '?')}, Andreyev & Beneventano 2024)",
                     fmt(bs["batch_sharpness"]) + (f" ± {fmt(se, 2)}" if se is not None else "")))
        bst = d.get("batch_stability")
        if isinstance(bst, Mapping):
            rows.append(("batch sharpness / threshold", fmt(stability_numbers(bst)["ratio"])))
    for key, label in (("hvps", "Hessian-vector products"), ("seconds", "seconds")):
        if key in d:
            rows.append((label, fmt(d[key])))
    return TableBlock(("quantity", "value"), tuple(rows), "numbers")


def hessian_section(d: Mapping[str, Any], *, source: str, label: str) -> Section:
    t = f"Hessian — {label}"
    stab = d.get("stability")
    notes = []
    if isinstance(stab, Mapping) and stab.get("notes"):
        notes += [str(x) for x in (stab["notes"] if isinstance(stab["notes"], list) else [stab["notes"]])]
    return Section(
        title=t, kind="hessian", source=source, provenance=provenance_from(d, source=source),
        blocks=blocks(
            summary_table(d),
            TextBlock(tuple(notes)) if notes else None,
            stability_gauge(stab, title=f"{t}: stability") if isinstance(stab, Mapping) else None,
            eigen_figure(d, title=f"{t}: top eigenvalues"),
            density_figure(d, title=f"{t}: spectral density"),
            per_layer_figure(d, title=f"{t}: per-layer λ_max"),
        ))
