"""Figures for the probes: Adam's first step against SGD's, and test-loss spikes.

``landscape probe adam-first-step`` JSON: ``n_params``, ``runs``: [{``lr``, ``adam``:
{``update_norm``, ``bound``, ``loss_before``, ``loss_after``, ``per_layer``, ``amplified_fraction``,
``dead_relu_fraction``, ``curve``, ``saturation``, ``grad_norm``, ...}, ``sgd``: {...}, ``loss``, ``verdict``,
``mechanism``, ``causes``: [{``name``, ``supported``, ``evidence``}]}]. Adam's first update is
η·g/(|g| + ε) ≈ η·sign(g) (Kingma & Ba 2015, bias-corrected), so its norm approaches η√d.

``landscape probe spikes`` JSON: ``spikes``: [{``epoch``, ``test_loss``, ``baseline``, ``score``}],
``oscillation``, ``checkpoints``: [{``epoch``, ``lambda_max``, ``ratio``, ``train_loss``,
``test_loss``, ``grad_alignment``, ``directional_curvature``, ...}], ``verdicts``.
"""

from __future__ import annotations

from typing import Any, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .common import (
    COLORS,
    FigureBlock,
    Section,
    TableBlock,
    TextBlock,
    base_layout,
    blocks,
    farray,
    first_key,
    fmt,
    fnum,
    plain,
    plot_text,
    provenance_from,
)


def is_first_step(d: Mapping[str, Any]) -> bool:
    runs = d.get("runs")
    return isinstance(runs, list) and bool(runs) and isinstance(runs[0], Mapping) and (
        "adam" in runs[0] or "sgd" in runs[0])


def is_spikes(d: Mapping[str, Any]) -> bool:
    return "spikes" in d and isinstance(d.get("spikes"), list)


# ---------------------------------------------------------------------------------------------
# first step


def _per_layer(pl: Any) -> List[Tuple[str, Optional[float]]]:
    if isinstance(pl, Mapping):
        return [(str(k), fnum(first_key(v, "relative_update", "relative", "ratio", "value")
                              if isinstance(v, Mapping) else v)) for k, v in pl.items()]
    out = []
    for i, item in enumerate(pl or []):
        if isinstance(item, Mapping):
            out.append((str(first_key(item, "name", "layer", "param") or f"layer {i}"),
                        fnum(first_key(item, "relative_update", "relative", "ratio", "value"))))
        else:
            out.append((f"layer {i}", fnum(item)))
    return out


def _curve(c: Any) -> Tuple[List[float], List[Optional[float]]]:
    if isinstance(c, Mapping):
        ys = first_key(c, "loss", "losses", "train_loss", "values") or []
        xs = first_key(c, "step", "steps") or list(range(len(ys)))
        return list(xs), [fnum(v) for v in ys]
    if isinstance(c, list) and c and isinstance(c[0], Mapping):
        return ([fnum(first_key(p, "step", "t")) if first_key(p, "step", "t") is not None else i
                 for i, p in enumerate(c)], [fnum(first_key(p, "loss", "train_loss", "value")) for p in c])
    ys = [fnum(v) for v in (c or [])]
    return list(range(len(ys))), ys


def _nan(vals: Sequence[Optional[float]]) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in vals], dtype=float)


def first_step_figure(run: Mapping[str, Any], *, title: str, n_params: Optional[int]) -> FigureBlock:
    """Per-layer relative update ‖ΔW‖/‖W‖ (Adam vs SGD) and the loss curves that follow."""
    has_slice = _step_slice(run) is not None
    ncols = 3 if has_slice else 2
    titles = ["per-layer ‖ΔW‖/‖W‖ of the first step", "train loss over the next steps",
              "loss along the first update"][:ncols]
    fig = make_subplots(rows=1, cols=ncols, subplot_titles=titles, horizontal_spacing=0.09,
                        column_widths=[0.45, 0.3, 0.25][:ncols] if has_slice else [0.55, 0.45])
    for opt in ("adam", "sgd"):
        r = run.get(opt)
        if not isinstance(r, Mapping):
            continue
        items = _per_layer(r.get("per_layer"))
        if items:
            fig.add_trace(go.Bar(x=[plot_text(n) for n, _ in items], y=plain(_nan([v for _, v in items])),
                                 name=f"{opt.upper() if opt == 'sgd' else 'Adam'} step", legendgroup=opt,
                                 marker_color=COLORS[opt], hovertemplate="%{x}: %{y:.3g}<extra></extra>"),
                          row=1, col=1)
        xs, ys = _curve(r.get("curve"))
        if ys:
            fig.add_trace(go.Scatter(x=plain(xs), y=plain(_nan(ys)), mode="lines+markers", legendgroup=opt,
                                     name=f"{'Adam' if opt == 'adam' else 'SGD'} loss", showlegend=not items,
                                     line={"color": COLORS[opt]}, marker={"size": 4}), row=1, col=2)
    if has_slice:
        alphas, lines = _step_slice(run)
        for opt, vals in lines.items():
            fig.add_trace(go.Scatter(x=plain(alphas), y=plain(vals), mode="lines", legendgroup=opt,
                                     name=f"along {opt} step", showlegend=False,
                                     line={"color": COLORS.get(opt, COLORS["threshold"]), "dash": "dot"}),
                          row=1, col=3)
        fig.update_xaxes(title_text="α (fraction of the step)", row=1, col=3)
        fig.update_yaxes(type="log", row=1, col=3)
    fig.update_layout(barmode="group")
    fig.update_yaxes(type="log", row=1, col=1, title_text="relative update")
    fig.update_yaxes(type="log", row=1, col=2, title_text="train loss")
    fig.update_xaxes(title_text="step", row=1, col=2)
    fig.update_xaxes(tickangle=-40, row=1, col=1)
    base_layout(fig, title=title, height=460)
    fig.update_layout(margin={"b": 120}, legend={"y": -0.45})
    lr = fnum(run.get("lr"))
    cap = "log scales"
    if lr is not None and n_params:
        cap += f"; Adam's first step is bounded by η√d = {fmt(lr * np.sqrt(n_params))} (d = {n_params})"
    loss = run.get("loss")
    return FigureBlock(fig, f"first-step-lr-{fmt(lr)}" + (f"-{loss}" if loss else ""), cap)


def _step_slice(run: Mapping[str, Any]) -> Optional[Tuple[np.ndarray, dict]]:
    s = first_key(run, "slice", "slices", "line")
    if isinstance(s, Mapping):
        alphas = first_key(s, "alphas", "alpha", "x")
        if alphas is None:
            return None
        lines = {k: farray(v).ravel() for k, v in s.items() if k in ("adam", "sgd") and v is not None}
        if lines:
            return farray(alphas).ravel(), lines
    lines, alphas = {}, None
    for opt in ("adam", "sgd"):
        r = run.get(opt)
        s = r.get("slice") if isinstance(r, Mapping) else None
        if isinstance(s, Mapping) and first_key(s, "alphas", "alpha") is not None:
            alphas = farray(first_key(s, "alphas", "alpha")).ravel()
            lines[opt] = farray(first_key(s, "loss", "train_loss", "values") or []).ravel()
    return (alphas, lines) if alphas is not None and lines else None


def first_step_table(runs: Sequence[Mapping[str, Any]]) -> TableBlock:
    keys = (("update_norm", "update norm"), ("bound", "η√d bound"), ("loss_before", "loss before"),
            ("loss_after", "loss after"), ("acc_after", "acc after"), ("amplified_fraction", "amplified fraction"),
            ("dead_relu_fraction", "dead-ReLU fraction"), ("recovered", "recovers"))
    ends = (("saturation", "end", "saturated at end"), ("grad_norm", "end", "‖∇L‖ at end"),
            ("output_collapse", "end", "between-sample share at end"))
    rows = []
    for run in runs:
        for opt in ("adam", "sgd"):
            r = run.get(opt) if isinstance(run.get(opt), Mapping) else {}
            rows.append((_run_label(run), "Adam" if opt == "adam" else "SGD", *[fmt(r.get(k)) for k, _ in keys],
                         *[fmt(r[k].get(w)) if isinstance(r.get(k), Mapping) else "" for k, w, _ in ends]))
    return TableBlock(("run", "optimizer", *[lab for _, lab in keys], *[lab for _, _, lab in ends]), tuple(rows),
                      "first update from the same initialisation and mini-batch; 'end': after the follow-up steps")


def lr_overview_figure(runs: Sequence[Mapping[str, Any]], *, title: str) -> Optional[FigureBlock]:
    """Loss after the first step against the learning rate, Adam vs SGD (needs ≥ 2 learning rates)."""
    if any(fnum(r.get("lr")) is None for r in runs):
        return None
    groups: dict = {}
    for r in runs:
        groups.setdefault(str(r.get("loss") or ""), []).append(r)
    if max(len(g) for g in groups.values()) < 2:
        return None
    fig = go.Figure()
    for i, (loss, group) in enumerate(groups.items()):
        lrs = [fnum(r.get("lr")) for r in group]
        tag = f" ({loss})" if loss else ""
        for opt in ("adam", "sgd"):
            ys = [fnum((r.get(opt) or {}).get("loss_after")) for r in group]
            fig.add_trace(go.Scatter(x=lrs, y=plain(_nan(ys)), mode="lines+markers",
                                     name=f"{'Adam' if opt == 'adam' else 'SGD'}: loss after step 1{tag}",
                                     line={"color": COLORS[opt], "dash": ("solid", "dot", "dashdot", "longdash")[i % 4]}))
        before = [fnum((r.get("adam") or {}).get("loss_before")) for r in group]
        if any(v is not None for v in before):
            fig.add_trace(go.Scatter(x=lrs, y=plain(_nan(before)), mode="lines", name=f"loss before{tag}",
                                     line={"color": COLORS["threshold"], "dash": "dash"}))
    fig.update_xaxes(type="log", title_text="learning rate η")
    fig.update_yaxes(type="log", title_text="loss on the evaluation set")
    base_layout(fig, title=title, height=380)
    return FigureBlock(fig, "first-step-by-lr", "the loss right after the first update, by learning rate")


def _run_label(r: Mapping[str, Any]) -> str:
    return f"lr {fmt(r.get('lr'))}" + (f", {r['loss']}" if r.get("loss") else "")


def causes_table(runs: Sequence[Mapping[str, Any]]) -> Optional[TableBlock]:
    """One row per (run, cause): supported or not, and the measured evidence (absent in older files)."""
    rows = []
    for r in runs:
        for c in r.get("causes") or []:
            if isinstance(c, Mapping):
                rows.append((_run_label(r), str(c.get("name", "")), "supported" if c.get("supported") else "not supported",
                             str(c.get("evidence", ""))))
    if not rows:
        return None
    return TableBlock(("run", "cause", "verdict", "evidence"), tuple(rows),
                      "why Adam fails (or not): each candidate cause, measured, with its rule's verdict")


def first_step_section(d: Mapping[str, Any], *, source: str, label: str) -> Section:
    t = f"Probe: Adam's first step vs SGD — {label}"
    runs = [r for r in d["runs"] if isinstance(r, Mapping)]
    n_params = d.get("n_params")
    verdicts = tuple(f"{_run_label(r)}: {r.get('mechanism') or r.get('verdict')}" for r in runs
                     if r.get("mechanism") or r.get("verdict"))
    notes = []
    if fnum(d.get("lambda_max")) is not None:
        notes.append(f"λ_max at the start {fmt(d['lambda_max'])}; η·λ_max by lr: "
                     + ", ".join(f"{fmt(r.get('lr'))}: {fmt(r.get('eta_lambda_max'))}" for r in runs))
    g = d.get("gradient")
    if isinstance(g, Mapping):
        notes.append("first mini-batch gradient: " + _numbers(g))
    return Section(
        title=t, kind="probe-first-step", source=source, provenance=provenance_from(d, source=source),
        blocks=blocks(TextBlock(verdicts, "verdict") if verdicts else None,
                      TextBlock(tuple(notes)) if notes else None, causes_table(runs), first_step_table(runs),
                      lr_overview_figure(runs, title=f"{t}: loss after one step by learning rate"),
                      [first_step_figure(r, title=f"{t}: {_run_label(r)}", n_params=n_params)
                       for r in runs]))


# ---------------------------------------------------------------------------------------------
# spikes


def _oscillation_segments(osc: Any) -> List[Tuple[float, float]]:
    if isinstance(osc, Mapping):
        osc = first_key(osc, "segments", "intervals") or (
            [osc] if "start" in osc or "start_epoch" in osc else [])
    out = []
    for seg in osc if isinstance(osc, list) else []:
        if isinstance(seg, Mapping):
            a, b = fnum(first_key(seg, "start", "start_epoch", "from")), fnum(first_key(seg, "end", "end_epoch", "to"))
        elif isinstance(seg, (list, tuple)) and len(seg) == 2:
            a, b = fnum(seg[0]), fnum(seg[1])
        else:
            continue
        if a is not None and b is not None:
            out.append((a, b))
    return out


def _log_curves(d: Mapping[str, Any], ckpts: Sequence[Mapping[str, Any]]) -> Tuple[list, dict]:
    log = first_key(d, "log", "curve", "history")
    if isinstance(log, Mapping) and "epoch" in log:
        return list(log["epoch"]), {k: log[k] for k in ("train_loss", "test_loss") if k in log}
    if isinstance(log, list) and log and isinstance(log[0], Mapping):
        return [r.get("epoch") for r in log], {k: [r.get(k) for r in log] for k in ("train_loss", "test_loss")
                                               if k in log[0]}
    return [c.get("epoch") for c in ckpts], {k: [c.get(k) for c in ckpts] for k in ("train_loss", "test_loss")
                                             if any(k in c for c in ckpts)}


def spike_timeline(d: Mapping[str, Any], *, title: str) -> FigureBlock:
    """Losses by epoch with the detected spikes, and the stability ratio at the checkpoints."""
    ckpts = [c for c in d.get("checkpoints") or [] if isinstance(c, Mapping)]
    ratio_keys = [k for k in ("ratio", "preconditioned_ratio", "directional_ratio", "batch_ratio")
                  if any(fnum(c.get(k)) is not None for c in ckpts)]
    rows = 2 if ratio_keys else 1
    fig = make_subplots(rows=rows, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        row_heights=[0.65, 0.35][:rows] if rows == 2 else None,
                        subplot_titles=["loss", "sharpness / stability threshold at the checkpoints"][:rows])
    epochs, curves = _log_curves(d, ckpts)
    for key, vals in curves.items():
        split = key.split("_")[0]
        fig.add_trace(go.Scatter(x=plain(_nan([fnum(e) for e in epochs])), y=plain(_nan([fnum(v) for v in vals])),
                                 mode="lines+markers", name=key.replace("_", " "), marker={"size": 4},
                                 line={"color": COLORS[split]}), row=1, col=1)
    spikes = [s for s in d.get("spikes") or [] if isinstance(s, Mapping)]
    if spikes:
        hover = [f"epoch {fmt(s.get('epoch'))}<br>test loss {fmt(s.get('test_loss'))}<br>"
                 f"baseline {fmt(s.get('baseline'))}<br>score {fmt(s.get('score'))}" for s in spikes]
        fig.add_trace(go.Scatter(x=[fnum(s.get("epoch")) for s in spikes],
                                 y=plain(_nan([fnum(s.get("test_loss")) for s in spikes])),
                                 mode="markers", name="detected spike", hovertext=hover, hoverinfo="text",
                                 marker={"symbol": "triangle-down", "size": 14, "color": COLORS["test"],
                                         "line": {"color": "black", "width": 1}}), row=1, col=1)
    for a, b in _oscillation_segments(d.get("oscillation")):
        fig.add_vrect(x0=a, x1=b, fillcolor=COLORS["adam"], opacity=0.12, line_width=0,
                      annotation_text="oscillation", annotation_position="top left", row=1, col=1)
    for k in ratio_keys:
        xs = [fnum(c.get("epoch")) for c in ckpts]
        fig.add_trace(go.Scatter(x=plain(_nan(xs)), y=plain(_nan([fnum(c.get(k)) for c in ckpts])),
                                 mode="lines+markers", name=k.replace("_", " "),
                                 marker={"size": 7}), row=2, col=1)
    if ratio_keys:
        fig.add_hline(y=1.0, line={"dash": "dash", "color": COLORS["threshold"]}, row=2, col=1,
                      annotation_text="threshold", annotation_position="bottom right")
        fig.update_yaxes(title_text="ratio", row=2, col=1)
    fig.update_yaxes(type="log", title_text="loss", row=1, col=1)
    fig.update_xaxes(title_text="epoch", row=rows, col=1)
    base_layout(fig, title=title, height=520 if rows == 2 else 400)
    return FigureBlock(fig, "spike-timeline", f"{len(spikes)} spike(s) detected; triangles mark them; "
                       "a ratio above 1 means the curvature exceeds the optimizer's stability threshold")


_GEOMETRY_FIRST = ("epoch", "lr", "train_loss", "test_loss", "lambda_max", "threshold", "ratio", "eta_lambda_max",
                   "preconditioned_sharpness", "preconditioned_threshold", "preconditioned_ratio",
                   "grad_alignment", "directional_curvature", "eta_directional_curvature")


def _ckpt_label(c: Mapping[str, Any], i: int) -> str:
    role, ev = c.get("role"), fnum(c.get("event_epoch"))
    ep = fnum(c.get("epoch"))
    head = f"epoch {fmt(ep)}" if ep is not None else f"#{i + 1}"
    if role:
        head += f" ({role}" + (f" event {fmt(ev)})" if ev is not None else ")")
    return head


def geometry_table(ckpts: Sequence[Mapping[str, Any]]) -> Optional[TableBlock]:
    """Quantities (rows) at each probed checkpoint (columns): curvature, stability ratio, alignment."""
    if not ckpts:
        return None
    keys: List[str] = []
    for c in ckpts:
        for k, v in c.items():
            if k not in keys and not isinstance(v, (Mapping, list)) and (fnum(v) is not None or isinstance(v, bool)):
                keys.append(k)
    keys.sort(key=lambda k: _GEOMETRY_FIRST.index(k) if k in _GEOMETRY_FIRST else len(_GEOMETRY_FIRST))
    rows = tuple((k.replace("_", " "), *[fmt(c.get(k)) for c in ckpts]) for k in keys if k != "event_epoch")
    return TableBlock(("quantity", *[_ckpt_label(c, i) for i, c in enumerate(ckpts)]), rows,
                      "geometry at the checkpoints before, at and after each event")


def slices_figure(ckpts: Sequence[Mapping[str, Any]], *, title: str) -> Optional[FigureBlock]:
    """Train and test loss along the step and along the top eigenvector at each probed checkpoint,
    with the two minima marked (an offset means the train and test landscapes are shifted)."""
    cols = [(i, c) for i, c in enumerate(ckpts) if any(isinstance(c.get(k), Mapping) for k in ("step", "eigen_slice"))]
    if not cols:
        return None
    kinds = [k for k in ("step", "eigen_slice") if any(isinstance(c.get(k), Mapping) for _, c in cols)]
    names = {"step": "along the step from the previous checkpoint", "eigen_slice": "along the top eigenvector v₁"}
    fig = make_subplots(rows=len(kinds), cols=len(cols), shared_yaxes=False, vertical_spacing=0.16,
                        horizontal_spacing=0.05,
                        subplot_titles=[f"{plot_text(_ckpt_label(c, i))}: {names[k]}" if len(cols) < 3 else
                                        plot_text(_ckpt_label(c, i)) for k in kinds for i, c in cols])
    for r, k in enumerate(kinds, start=1):
        for col, (_, c) in enumerate(cols, start=1):
            sl = c.get(k)
            if not isinstance(sl, Mapping):
                continue
            a = first_key(sl, "alpha", "alphas")
            for split in ("train", "test"):
                ys = sl.get(f"{split}_loss")
                if a is None or ys is None:
                    continue
                fig.add_trace(go.Scatter(x=plain(farray(a)), y=plain(farray(ys)), mode="lines", name=f"{split} loss",
                                         legendgroup=split, showlegend=(r, col) == (1, 1),
                                         line={"color": COLORS[split]}), row=r, col=col)
                m = fnum(sl.get(f"{split}_min_alpha"))
                if m is not None and np.isfinite(m):
                    fig.add_vline(x=m, line={"color": COLORS[split], "dash": "dot", "width": 1}, row=r, col=col)
        fig.update_yaxes(title_text="loss" + ("" if len(kinds) == 1 else f" ({'step' if k == 'step' else 'v₁'})"),
                         row=r, col=1)
    fig.update_xaxes(title_text="α")
    base_layout(fig, title=title, height=300 + 230 * len(kinds))
    return FigureBlock(fig, "spike-slices", "rows: " + "; ".join(names[k] for k in kinds)
                       + "; dotted lines: the train and the test minimum on each line")


def _numbers(ev: Any) -> str:
    if isinstance(ev, Mapping):
        return ", ".join(f"{k.replace('_', ' ')} {fmt(v)}" for k, v in ev.items()
                         if not isinstance(v, (Mapping, list)))
    return str(ev)


def _verdict_lines(v: Any) -> Tuple[str, ...]:
    if isinstance(v, Mapping):
        out = []
        for k, val in v.items():
            if isinstance(val, Mapping):
                text = first_key(val, "verdict", "summary", "result") or ""
                ev = first_key(val, "evidence", "numbers", "detail")
                out.append(f"{k}: {text}" + (f" ({ev})" if ev else ""))
            else:
                out.append(f"{k}: {val}")
        return tuple(out)
    if isinstance(v, list):
        out = []
        for item in v:
            if isinstance(item, Mapping):
                h = str(first_key(item, "hypothesis", "name") or "")
                at = fnum(item.get("event_epoch"))
                text = first_key(item, "verdict", "summary", "result") or ""
                ev = first_key(item, "evidence", "numbers", "detail")
                head = h + (f" @ epoch {fmt(at)}" if at is not None else "")
                out.append(f"{head}: {text}" + (f" ({_numbers(ev)})" if ev else ""))
            else:
                out.append(str(item))
        return tuple(out)
    return (str(v),) if v else ()


def spikes_section(d: Mapping[str, Any], *, source: str, label: str) -> Section:
    t = f"Probe: test-loss spikes — {label}"
    ckpts = [c for c in d.get("checkpoints") or [] if isinstance(c, Mapping)]
    verdicts = _verdict_lines(d.get("verdicts"))
    osc = d.get("oscillation")
    notes = []
    if isinstance(osc, bool):
        notes.append(f"oscillation detected: {fmt(osc)}")
    if not d.get("spikes"):
        notes.append("no spikes detected")
    return Section(
        title=t, kind="probe-spikes", source=source, provenance=provenance_from(d, source=source),
        blocks=blocks(TextBlock(verdicts, "verdict") if verdicts else None,
                      TextBlock(tuple(notes)) if notes else None,
                      spike_timeline(d, title=f"{t}: timeline"), geometry_table(ckpts),
                      slices_figure(ckpts, title=f"{t}: train and test loss along the step and v₁")))
