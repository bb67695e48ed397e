"""Sharpness measures of several checkpoints side by side, with the generalisation gap.

Reads the JSON of ``landscape sharpness`` (one checkpoint, a list of them, or a dict holding them
under ``checkpoints``/``results``) with per-checkpoint keys ``lambda_max``, ``trace``,
``eps_sharpness`` (Keskar et al. 2017), ``worst_case_sharpness`` (Foret et al. 2021),
``adaptive_sharpness`` (Kwon et al. 2021; Andriushchenko et al. 2023), ``average_sharpness``,
``pac_bayes_sigma`` (Jiang et al. 2020) and ``stability``; values may be numbers or dicts with
``value``/``stderr``. The table puts the generalisation gap (test − train) next to each measure, so
a reader sees which measure moves with it — and which does not.
"""

from __future__ import annotations

from typing import Any, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import plotly.graph_objects as go

from .common import (
    COLORS,
    FigureBlock,
    Section,
    TableBlock,
    TextBlock,
    base_layout,
    blocks,
    first_key,
    fmt,
    fnum,
    plain,
    plot_text,
    provenance_from,
    short_path,
)
from .hessian import stability_gauge, stability_numbers
from .run import eos_figure

MEASURES: Tuple[Tuple[str, str], ...] = (
    ("lambda_max", "λ_max"),
    ("trace", "trace"),
    ("eps_sharpness", "ε-sharpness (Keskar)"),
    ("worst_case_sharpness", "worst-case (SAM)"),
    ("adaptive_sharpness", "adaptive (ASAM)"),
    ("average_sharpness", "average (Gaussian)"),
    ("pac_bayes_sigma", "PAC-Bayes σ"),
    ("pac_bayes_mag_sigma", "PAC-Bayes σ (magnitude-aware)"),
    ("preconditioned_lambda_max", "λ₁(P⁻¹H) (preconditioned)"),
)
_SKIP = {"epoch", "step", "seconds", "hvps", "n_params", "seed", "subset", "train_loss", "test_loss",
         "train_acc", "test_acc"}
_WORDS = ("sharp", "pac_bayes", "lambda", "trace")


def records(d: Any) -> List[Mapping[str, Any]]:
    """The per-checkpoint result dicts of a sharpness JSON, whatever its outer shape."""
    if isinstance(d, list):
        return [r for r in d if isinstance(r, Mapping)]
    for key in ("checkpoints", "results", "measures"):
        val = d.get(key)
        if isinstance(val, list) and val and isinstance(val[0], Mapping):
            return list(val)
    return [d]


def is_sharpness(d: Any) -> bool:
    """Whether ``d`` is a sharpness result: records holding a sharpness measure. λ_max and the
    trace alone count too (``sharpness --measures lambda_max``), unless the dict is a Hessian
    result (which has ``eigenvalues``)."""
    if isinstance(d, Mapping) and "eigenvalues" in d:
        return False
    recs = records(d) if isinstance(d, (list, Mapping)) else []
    return bool(recs) and all(isinstance(r, Mapping) for r in recs) and any(
        any(k in r for k, _ in MEASURES) for r in recs)


def _label(rec: Mapping[str, Any], i: int) -> str:
    if isinstance(rec.get("label"), str) and rec["label"]:
        return rec["label"]
    ck = first_key(rec, "checkpoint", "name")
    if ck is None and isinstance(rec.get("provenance"), Mapping):
        ck = rec["provenance"].get("checkpoint")
    return short_path(ck) if ck is not None else f"#{i + 1}"


def _value(rec: Mapping[str, Any], key: str) -> Tuple[Optional[float], Optional[float]]:
    v = rec.get(key)
    err = fnum(rec.get(f"{key}_stderr"))
    if isinstance(v, Mapping):
        err = fnum(first_key(v, "stderr", "error", "std_error")) if err is None else err
    return fnum(v), err


def _split_value(rec: Mapping[str, Any], split: str, what: str) -> Optional[float]:
    v = fnum(rec.get(f"{split}_{what}"))
    if v is None and isinstance(rec.get(split), Mapping):
        v = fnum(rec[split].get(what) if what in rec[split] else rec[split].get("accuracy" if what == "acc" else what))
    if v is None and isinstance(rec.get("evaluation"), Mapping):
        v = fnum(rec["evaluation"].get(f"{split}_{what}"))
    return v


def _measure_keys(recs: Sequence[Mapping[str, Any]]) -> List[Tuple[str, str]]:
    keys = [(k, lab) for k, lab in MEASURES if any(k in r for r in recs)]
    seen = {k for k, _ in keys}
    for r in recs:
        for k, v in r.items():
            if k in seen or k in _SKIP or k.endswith("_stderr") or not any(w in k for w in _WORDS):
                continue
            if fnum(v) is not None:
                keys.append((k, k.replace("_", " ")))
                seen.add(k)
    return keys


def side_by_side_table(recs: Sequence[Mapping[str, Any]]) -> TableBlock:
    """Measures (rows) × checkpoints (columns), then the stability verdict and the gap."""
    labels = [_label(r, i) for i, r in enumerate(recs)]
    rows: List[Tuple[str, ...]] = []
    for key, lab in _measure_keys(recs):
        cells = []
        for r in recs:
            v, e = _value(r, key)
            cells.append(fmt(v) + (f" ± {fmt(e, 2)}" if e is not None else ""))
        rows.append((lab, *cells))
    stabs = [r.get("stability") if isinstance(r.get("stability"), Mapping) else None for r in recs]
    opts = [r.get("optimizer") if isinstance(r.get("optimizer"), Mapping) else None for r in recs]
    if not any(stabs) and any(opts):
        rows.append(("optimizer", *[f"{o.get('type')} (lr {fmt(o.get('lr'))})" if o else "—" for o in opts]))
    if any(stabs):
        nums = [stability_numbers(s) if s else {} for s in stabs]
        rows.append(("optimizer", *[str(s.get("optimizer")) if s else "—" for s in stabs]))
        rows.append(("η·sharpness / η·threshold", *[f"{fmt(n.get('eta_sharpness'))} / {fmt(n.get('eta_threshold'))}"
                                                    if n else "—" for n in nums]))
        rows.append(("stable", *[fmt(s.get("stable")) if s else "—" for s in stabs]))
    for what, name in (("loss", "loss"), ("acc", "accuracy")):
        tr = [_split_value(r, "train", what) for r in recs]
        te = [_split_value(r, "test", what) for r in recs]
        if any(v is not None for v in tr + te):
            rows.append((f"train {name}", *map(fmt, tr)))
            rows.append((f"test {name}", *map(fmt, te)))
            rows.append((f"gap (test − train) {name}",
                         *[fmt(b - a) if a is not None and b is not None else "—" for a, b in zip(tr, te)]))
    return TableBlock(("measure", *labels), tuple(rows),
                      "each measure with the hyper-parameters stated in the JSON; ± is the Monte-Carlo standard error")


def _distinct_epochs(recs: Sequence[Mapping[str, Any]]) -> Optional[List[float]]:
    epochs = [fnum(r.get("epoch")) for r in recs]
    if len(recs) < 2 or any(e is None for e in epochs) or len(set(epochs)) < len(epochs):
        return None
    return epochs  # type: ignore[return-value]


def relative_figure(recs: Sequence[Mapping[str, Any]], *, title: str) -> Optional[FigureBlock]:
    """Each measure divided by its largest absolute value across checkpoints, gap included."""
    if len(recs) < 2 or (len(recs) > 6 and _distinct_epochs(recs)):
        return None
    keys = _measure_keys(recs)
    cols: List[Tuple[str, List[Optional[float]]]] = [(lab, [_value(r, k)[0] for r in recs]) for k, lab in keys]
    for what in ("loss", "acc"):
        gap = []
        for r in recs:
            a, b = _split_value(r, "train", what), _split_value(r, "test", what)
            gap.append(b - a if a is not None and b is not None else None)
        if any(g is not None for g in gap):
            cols.append((f"gap ({what})", gap))
    if not cols:
        return None
    fig = go.Figure()
    palette = [COLORS["adam"], COLORS["sgd"], COLORS["train"], COLORS["test"], "#9467bd", "#8c564b", "#e377c2"]
    for i, r in enumerate(recs):
        rel, raw = [], []
        for _, vals in cols:
            fin = [abs(v) for v in vals if v is not None and np.isfinite(v)]
            m = max(fin) if fin else None
            v = vals[i]
            rel.append(v / m if v is not None and m and np.isfinite(v) else None)
            raw.append(fmt(v))
        fig.add_trace(go.Bar(x=[plot_text(c) for c, _ in cols], y=plain(rel), name=plot_text(_label(r, i)),
                             customdata=raw, marker_color=palette[i % len(palette)],
                             hovertemplate="%{x}: %{customdata} (%{y:.2f} of the largest)<extra>%{fullData.name}</extra>"))
    fig.update_layout(barmode="group")
    fig.update_yaxes(title_text="value / largest |value|")
    base_layout(fig, title=title, height=420)
    return FigureBlock(fig, "sharpness-relative", "each measure relative to its largest value across the "
                       "checkpoints (hover for the raw value); the gap bars show test − train")


def over_run_figures(recs: Sequence[Mapping[str, Any]], *, title: str) -> List[Optional[FigureBlock]]:
    """With epochs on the records (a run folder): λ_max against the threshold by epoch."""
    epochs = _distinct_epochs(recs)
    if epochs is None:
        return []
    order = np.argsort(epochs)
    rs = [recs[i] for i in order]
    ep = [epochs[i] for i in order]
    stabs = [r.get("stability") if isinstance(r.get("stability"), Mapping) else {} for r in rs]
    sharp = [fnum(s.get("sharpness")) if s else None for s in stabs]
    lam = [fnum(r.get("lambda_max")) for r in rs]
    use_pre = any(v is not None for v in sharp) and any(
        str(s.get("optimizer", "")).lower().startswith(("adam", "rms", "nadam", "radam")) for s in stabs)
    y = sharp if use_pre else lam
    thr = [fnum(s.get("threshold")) if s else None for s in stabs]
    nan = float("nan")
    return [measures_by_epoch(rs, ep, title=f"{title}: measures by epoch"), eos_figure(ep, [nan if v is None else v for v in y],
                       [nan if v is None else v for v in thr] if any(t is not None for t in thr) else None,
                       title=f"{title}: sharpness against the stability threshold by epoch",
                       sharpness_label="λ₁(P⁻¹H)" if use_pre else "λ_max")]


def measures_by_epoch(recs: Sequence[Mapping[str, Any]], epochs: Sequence[float], *,
                      title: str) -> Optional[FigureBlock]:
    """Every measure over the run relative to its largest value, with the loss gap (test − train)."""
    fig = go.Figure()
    for key, lab in _measure_keys(recs):
        vals = [_value(r, key)[0] for r in recs]
        fin = [abs(v) for v in vals if v is not None and np.isfinite(v)]
        if not fin or max(fin) == 0:
            continue
        top = max(fin)
        fig.add_trace(go.Scatter(x=list(epochs), y=plain(np.array([np.nan if v is None else v / top for v in vals])),
                                 mode="lines+markers", name=plot_text(lab), customdata=[fmt(v) for v in vals],
                                 hovertemplate="epoch %{x}: %{customdata}<extra>%{fullData.name}</extra>"))
    gap = []
    for r in recs:
        a, b = _split_value(r, "train", "loss"), _split_value(r, "test", "loss")
        gap.append(b - a if a is not None and b is not None else np.nan)
    if np.isfinite(gap).any():
        top = np.nanmax(np.abs(gap)) or 1.0
        fig.add_trace(go.Scatter(x=list(epochs), y=plain(np.array(gap) / top), mode="lines", name="gap (loss)",
                                 line={"color": "black", "dash": "dash"}, customdata=[fmt(g) for g in gap],
                                 hovertemplate="epoch %{x}: gap %{customdata}<extra></extra>"))
    if not fig.data:
        return None
    fig.update_xaxes(title_text="epoch")
    fig.update_yaxes(title_text="value / largest |value|")
    base_layout(fig, title=title, height=400)
    return FigureBlock(fig, "sharpness-by-epoch", "each measure relative to its largest value over the run "
                       "(hover for the raw value); dashed: the generalisation gap test − train loss")


def sharpness_section(d: Any, *, source: str, label: str) -> Section:
    recs = records(d)
    t = f"Sharpness — {label}"
    prov_src = d if isinstance(d, Mapping) else {}
    prov = provenance_from(prov_src, *(recs[:1]), source=source)
    notes = []
    params = d.get("settings") or d.get("hyperparameters") or d.get("config") if isinstance(d, Mapping) else None
    if isinstance(params, Mapping):
        notes.append("settings: " + ", ".join(f"{k}={v}" for k, v in params.items()))
    gauge = None
    if len(recs) == 1 and isinstance(recs[0].get("stability"), Mapping):
        gauge = stability_gauge(recs[0]["stability"], title=f"{t}: stability")
    return Section(title=t, kind="sharpness", source=source, provenance=prov,
                   blocks=blocks(side_by_side_table(recs), TextBlock(tuple(notes)) if notes else None,
                                 relative_figure(recs, title=f"{t}: measures side by side"),
                                 gauge, over_run_figures(recs, title=t)))
