"""Figures for a training run folder: loss/accuracy curves and λ_max against its threshold.

A run folder (as ``landscape train`` writes it) holds ``log.csv`` (epoch, step, train_loss,
train_acc, test_loss, test_acc, lr) and ``epoch_XXX.pt`` checkpoints; a run analysed over training
may also hold ``sharpness.csv`` (step/epoch, lambda_max, threshold, ...). The edge-of-stability
figure (Cohen et al. 2021, "Gradient Descent on Neural Networks Typically Occurs at the Edge of
Stability") plots λ_max and the optimizer's stability threshold (2/η for GD) by epoch.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .. import runs
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
    fmt,
    fnum,
    plain,
    provenance_from,
)


def read_csv(path: Path) -> Dict[str, np.ndarray]:
    """Columns of a CSV as float arrays (non-numeric cells become NaN; text columns are dropped)."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return {}
    cols: Dict[str, np.ndarray] = {}
    for key in rows[0]:
        if key is None:
            continue
        vals = [fnum(r.get(key)) for r in rows]
        if any(v is not None for v in vals):
            cols[key.strip()] = np.array([np.nan if v is None else v for v in vals])
    return cols


def is_run_dir(path: Path) -> bool:
    return runs.is_run_dir(path) or (path.is_dir() and (path / "sharpness.csv").is_file())


def log_columns(log: Optional[runs.RunLog]) -> Dict[str, np.ndarray]:
    """A run log (any format :mod:`landscape.runs` reads) as numeric columns."""
    if log is None or not log.rows:
        return {}
    cols: Dict[str, np.ndarray] = {}
    for key in log.columns:
        vals = [fnum(r.get(key)) for r in log.rows]
        if any(v is not None for v in vals):
            cols[key] = np.array([np.nan if v is None else v for v in vals])
    return cols


def curves_figure(log: Mapping[str, np.ndarray], *, title: str) -> Optional[FigureBlock]:
    """Train/test loss (log toggle) and accuracy by epoch; the learning rate when it changes."""
    x_key = "epoch" if "epoch" in log else ("step" if "step" in log else None)
    if x_key is None or not any(k in log for k in ("train_loss", "test_loss")):
        return None
    x = log[x_key]
    lr = log.get("lr")
    show_lr = lr is not None and np.isfinite(lr).any() and np.nanmax(lr) != np.nanmin(lr)
    titles = ["loss", "accuracy"] + (["learning rate"] if show_lr else [])
    fig = make_subplots(rows=1, cols=len(titles), subplot_titles=titles, horizontal_spacing=0.08)
    for split in ("train", "val", "test"):
        for col, what in ((1, "loss"), (2, "acc")):
            key = f"{split}_{what}"
            if key in log:
                fig.add_trace(go.Scatter(x=plain(x), y=plain(log[key]), mode="lines+markers",
                                         name=f"{split} {what}", marker={"size": 4},
                                         line={"color": COLORS.get(split, COLORS["adam"]),
                                               "dash": "solid" if what == "loss" else "dot"}),
                              row=1, col=col)
    if show_lr:
        fig.add_trace(go.Scatter(x=plain(x), y=plain(lr), mode="lines", name="lr",
                                 line={"color": COLORS["threshold"]}), row=1, col=3)
    fig.update_xaxes(title_text=x_key)
    fig.update_layout(updatemenus=[axis_scale_menu("yaxis")])
    base_layout(fig, title=title, height=400)
    cap = ("train loss/accuracy are averages over each epoch's mini-batches (train mode), test "
           "loss/accuracy evaluations at the end of the epoch (as log.csv records them)")
    return FigureBlock(fig, "curves", cap)


def eos_figure(x: Sequence[float], lambda_max: Sequence[float], threshold: Optional[Sequence[float]], *,
               title: str, x_label: str = "epoch", sharpness_label: str = "λ_max",
               extra: Optional[Mapping[str, Sequence[float]]] = None) -> Optional[FigureBlock]:
    """λ_max (or the preconditioned sharpness) and the stability threshold over a run."""
    lam = farray(list(lambda_max))
    if lam.size == 0 or not np.isfinite(lam).any():
        return None
    xs = plain(farray(list(x)))
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=xs, y=plain(lam), mode="lines+markers", name=sharpness_label,
                             line={"color": COLORS["train"]},
                             hovertemplate=f"{x_label} %{{x}}<br>{sharpness_label}=%{{y:.5g}}<extra></extra>"))
    for color, (name, vals) in zip((COLORS["adam"], COLORS["sgd"]), (extra or {}).items()):
        fig.add_trace(go.Scatter(x=xs, y=plain(farray(list(vals))), mode="lines+markers", name=name,
                                 line={"color": color}))
    cap = f"{sharpness_label} by {x_label}"
    if threshold is not None:
        thr = farray(list(threshold))
        fig.add_trace(go.Scatter(x=xs, y=plain(thr), mode="lines", name="stability threshold",
                                 line={"color": COLORS["threshold"], "dash": "dash"},
                                 hovertemplate="threshold=%{y:.5g}<extra></extra>"))
        ok = np.isfinite(thr) & np.isfinite(lam)
        if ok.any():
            above = int((lam[ok] > thr[ok]).sum())
            cap += (f"; dashed: the optimizer's threshold (2/η for GD); above it at {above} of "
                    f"{int(ok.sum())} points; peak ratio {fmt(float(np.max(lam[ok] / thr[ok])))}")
    fig.update_xaxes(title_text=x_label)
    fig.update_yaxes(title_text="sharpness", type="log")
    fig.update_layout(updatemenus=[axis_scale_menu("yaxis", log_first=True)])
    base_layout(fig, title=title, height=400)
    return FigureBlock(fig, "edge-of-stability", cap)


_TRACKED = (("lambda_max", "λ_max"), ("preconditioned_lambda_max", "λ₁(P⁻¹H)"), ("batch_sharpness", "batch sharpness"))


def _text_column(path: Path, name: str) -> List[str]:
    with open(path, newline="") as f:
        return [str(r.get(name) or "") for r in csv.DictReader(f)]


def sharpness_csv_figure(cols: Mapping[str, np.ndarray], *, title: str,
                         on: Sequence[str] = ()) -> Optional[FigureBlock]:
    """``sharpness.csv`` (written by ``landscape train --track-sharpness``): λ_max, Adam's
    λ₁(P⁻¹H), SGD's batch sharpness, and the threshold of the quantity the optimizer's stability is
    about (column ``sharpness``, named in ``on``), by step (by epoch when there is no step)."""
    present = [(k, lab) for k, lab in _TRACKED if k in cols and np.isfinite(cols[k]).any()]
    if not present and "sharpness" in cols:
        present = [("sharpness", "sharpness")]
    if not present:
        return None
    if "step" in cols and np.isfinite(cols["step"]).all():
        x_key = "step"
    elif "epoch" in cols and np.isfinite(cols["epoch"]).all():
        x_key = "epoch"
    else:
        x_key = None
    x = cols[x_key] if x_key else np.arange(len(cols[present[0][0]]))
    main_key, main_label = present[0]
    if "sharpness" in cols and "threshold" in cols:
        # the column the threshold applies to
        for k, lab in present:
            if np.allclose(np.nan_to_num(cols[k], nan=-1), np.nan_to_num(cols["sharpness"], nan=-1)):
                main_key, main_label = k, lab
    extra = {lab: cols[k] for k, lab in present if k != main_key}
    fig = eos_figure(x, cols[main_key], cols.get("threshold"), title=title, x_label=x_key or "measurement",
                     sharpness_label=main_label, extra=extra)
    if fig is None:
        return None
    rules = sorted({r for r in on if r})
    cap = fig.caption + (f"; the threshold applies to {', '.join(rules)}" if rules else "")
    return FigureBlock(fig.figure, fig.name, cap)


def _run_meta(path: Path, ckpts: Sequence[Path]) -> Dict[str, Any]:
    """Model/data/loss recorded by ``landscape train`` in the last checkpoint (read lazily)."""
    if not ckpts:
        return {}
    try:
        import torch

        obj = torch.load(ckpts[-1], map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # an unreadable checkpoint is reported by the analyses, not by the report
        return {}
    meta = obj.get("landscape") if isinstance(obj, dict) else None
    if not isinstance(meta, dict):
        return {}
    train = meta.get("train") if isinstance(meta.get("train"), dict) else {}
    return {"model": meta.get("model"), "data": meta.get("data"), "loss": meta.get("loss"),
            "seed": train.get("seed"), "optimizer": meta.get("optimizer_type"), "lr": train.get("lr")}


def run_section(path: Path, *, label: str) -> Section:
    if not is_run_dir(path):
        raise LandscapeError(f"{path}: not a run folder (no log, config, sharpness.csv or epoch/step checkpoints)")
    run = runs.open_run(path)
    ckpts = run.ordered
    epochs = list(run.by_epoch)
    t = f"Run — {label}"
    log = log_columns(run.log)
    sharp = read_csv(path / "sharpness.csv") if (path / "sharpness.csv").is_file() else {}
    meta = _run_meta(path, ckpts)
    lines = [f"{len(epochs)} epoch checkpoints" + (f" (epochs {epochs[0]}–{epochs[-1]})" if epochs else "")]
    if not epochs and ckpts:
        lines[0] = f"{len(ckpts)} step checkpoints"
    if meta.get("optimizer"):
        lines.append(f"optimizer {meta['optimizer']}, lr {fmt(meta.get('lr'))}")
    if log and ("test_loss" in log or "val_loss" in log):
        last = {k: v[-1] for k, v in log.items()}
        lines.append("last epoch: " + ", ".join(f"{k} {fmt(last[k])}" for k in
                                                 ("train_loss", "train_acc", "val_loss", "val_acc",
                                                  "test_loss", "test_acc") if k in last))
    if run.log is not None and run.log.format != "landscape":
        lines.append(f"log: {run.log.path.name} ({run.log.format} format)")
    if not log and not sharp:
        lines.append("no log (log.csv, metrics.csv) or sharpness.csv in this folder: nothing to plot")
    return Section(
        title=t, kind="run", source=str(path),
        provenance=provenance_from(meta, source=str(path)),
        blocks=blocks(TextBlock(tuple(lines)),
                      curves_figure(log, title=f"{t}: training curves") if log else None,
                      sharpness_csv_figure(sharp, title=f"{t}: λ_max against the stability threshold",
                                           on=_text_column(path / "sharpness.csv", "on"))
                      if sharp else None))
