"""Building blocks shared by the figure builders: page sections, value coercion, escaping.

A report is a sequence of :class:`Section` objects, one per input (a slice file, a Hessian JSON,
a run folder, ...). A section holds figures, tables and notes; :mod:`landscape.report.html`
turns them into one self-contained page. Builders never produce HTML themselves: every
user-supplied string travels as plain text and is escaped where it is rendered (HTML escaping in
the page, plotly's pseudo-HTML escaping inside figures, see :func:`plot_text`).
"""

from __future__ import annotations

import html
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import plotly.graph_objects as go

# Keys of a result's provenance worth showing under each figure, in display order.
PROVENANCE_KEYS = ("checkpoint", "checkpoint_sha256", "sha256", "epoch", "model", "data", "loss",
                   "subset", "seed", "n_train", "n_test", "norm", "direction", "bn_mode",
                   "landscape_version", "version")

COLORS = {"train": "#1f77b4", "test": "#d62728", "adam": "#ff7f0e", "sgd": "#2ca02c",
          "threshold": "#555555", "marker": "#000000"}


@dataclass(frozen=True)
class FigureBlock:
    """One plotly figure; ``name`` is a slug (div id, PNG file name), ``caption`` plain text."""

    figure: go.Figure
    name: str
    caption: str = ""


@dataclass(frozen=True)
class TableBlock:
    """A table of plain-text cells (escaped when rendered)."""

    columns: Tuple[str, ...]
    rows: Tuple[Tuple[str, ...], ...]
    caption: str = ""


@dataclass(frozen=True)
class TextBlock:
    """Plain-text lines; ``style`` is ``note``, ``verdict`` or ``warning``."""

    lines: Tuple[str, ...]
    style: str = "note"


Block = Union[FigureBlock, TableBlock, TextBlock]


@dataclass(frozen=True)
class Section:
    """Everything the report shows about one input."""

    title: str
    kind: str
    source: str
    blocks: Tuple[Block, ...]
    provenance: Mapping[str, Any] = field(default_factory=dict)

    @property
    def figures(self) -> Tuple[FigureBlock, ...]:
        return tuple(b for b in self.blocks if isinstance(b, FigureBlock))


# ---------------------------------------------------------------------------------------------
# value coercion (results come from JSON files written by other commands: be tolerant)


def fnum(value: Any) -> Optional[float]:
    """A float from a JSON value (numbers, ``"NaN"``/``"Infinity"`` strings, ``{"value": x}``)."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, Mapping):
        for key in ("value", "mean", "estimate", "sigma"):
            if key in value:
                return fnum(value[key])
        return None
    if isinstance(value, (int, float, np.integer, np.floating)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        return float(value.item())
    return None


def farray(values: Any) -> np.ndarray:
    """A float64 numpy array from a (nested) list that may hold ``"NaN"`` strings or None."""
    if isinstance(values, np.ndarray):
        return values.astype(np.float64, copy=False)
    if hasattr(values, "detach"):
        return values.detach().cpu().double().numpy()

    def conv(v: Any) -> Any:
        if isinstance(v, (list, tuple)):
            return [conv(x) for x in v]
        f = fnum(v)
        return math.nan if f is None else f

    return np.asarray(conv(values), dtype=np.float64)


def plain(values: Any) -> Any:
    """Numpy arrays/scalars -> JSON-ready lists with ``None`` for non-finite numbers (plotly gaps)."""
    if isinstance(values, np.ndarray):
        values = values.tolist()
    if isinstance(values, (list, tuple)):
        return [plain(v) for v in values]
    if isinstance(values, (np.floating, float)):
        f = float(values)
        return f if math.isfinite(f) else None
    if isinstance(values, np.integer):
        return int(values)
    return values


def log10_or_none(values: np.ndarray) -> np.ndarray:
    """log10 of positive finite values; NaN (a gap) elsewhere (a loss of exactly 0 has no log)."""
    out = np.full(values.shape, np.nan)
    ok = np.isfinite(values) & (values > 0)
    out[ok] = np.log10(values[ok])
    return out


def finite_range(*arrays: np.ndarray) -> Optional[Tuple[float, float]]:
    """(min, max) over the finite entries of all arrays, or None when there are none."""
    vals = [a[np.isfinite(a)] for a in arrays if a is not None]
    vals = [v for v in vals if v.size]
    if not vals:
        return None
    cat = np.concatenate([v.ravel() for v in vals])
    lo, hi = float(cat.min()), float(cat.max())
    if lo == hi:
        lo, hi = lo - 0.5 * (abs(lo) or 1.0), hi + 0.5 * (abs(hi) or 1.0)
    return lo, hi


def fmt(value: Any, digits: int = 4) -> str:
    """A compact string for a table cell (``—`` for missing)."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    f = fnum(value)
    if f is None:
        return str(value)
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "∞" if f > 0 else "−∞"
    return f"{f:.{digits}g}"


# ---------------------------------------------------------------------------------------------
# text


def plot_text(text: Any) -> str:
    """Escape a user string for plotly text (titles, trace names, annotations).

    Plotly renders a pseudo-HTML subset (``<b>``, ``<br>``, ``<a href>``) in text; escaping
    ``<``, ``>`` and ``&`` makes it show the characters literally instead.
    """
    return html.escape(str(text), quote=False)


_SLUG = re.compile(r"[^a-z0-9]+")


def slug(text: str) -> str:
    s = _SLUG.sub("-", str(text).lower()).strip("-")
    return s[:40] or "figure"


def short_path(path: Any) -> str:
    """The last two components of a path (enough to tell files apart, short enough for a title)."""
    p = Path(str(path))
    parts = p.parts[-2:]
    return str(Path(*parts)) if parts else str(p)


def provenance_from(*sources: Optional[Mapping[str, Any]], source: Optional[str] = None) -> Dict[str, Any]:
    """Merge provenance dicts (earlier ones win) keeping the keys worth showing."""
    out: Dict[str, Any] = {}
    for src in sources:
        if not src:
            continue
        nested = src.get("provenance")
        merged = dict(nested) if isinstance(nested, Mapping) else {}
        merged.update({k: v for k, v in src.items() if k != "provenance"})
        for key in PROVENANCE_KEYS:
            if key in merged and merged[key] is not None and key not in out:
                val = merged[key]
                if isinstance(val, Mapping):  # e.g. a model spec dict
                    val = val.get("spec") or val.get("name") or ", ".join(f"{k}={v}" for k, v in val.items())
                out[key] = val
    if source:
        out["source"] = source
    return out


def blocks(*items: Optional[Union[Block, Iterable[Block]]]) -> Tuple[Block, ...]:
    """Flatten builder outputs, dropping the Nones (figures that had no data)."""
    out: List[Block] = []
    for it in items:
        if it is None:
            continue
        if isinstance(it, (FigureBlock, TableBlock, TextBlock)):
            out.append(it)
        else:
            out.extend(b for b in it if b is not None)
    return tuple(out)


def base_layout(fig: go.Figure, *, title: str, height: int = 420) -> go.Figure:
    """Common layout: escaped title, white template, compact margins."""
    fig.update_layout(title={"text": plot_text(title), "x": 0.01, "xanchor": "left",
                             "y": 1 - 12 / height, "yanchor": "top"},
                      template="plotly_white", height=height,
                      margin={"l": 60, "r": 30, "t": 90, "b": 50},
                      legend={"orientation": "h", "y": -0.18})
    return fig


def first_key(d: Mapping[str, Any], *keys: str) -> Any:
    for k in keys:
        if k in d and d[k] is not None:
            return d[k]
    return None


def toggle_menu(buttons: Sequence[Tuple[str, str, list]]) -> Dict[str, Any]:
    """A row of buttons at the top right, just above the plot (under the title and plotly's mode bar)."""
    return {"type": "buttons", "direction": "right", "x": 1.0, "xanchor": "right", "y": 1.0,
            "yanchor": "bottom", "pad": {"b": 24}, "showactive": True,
            "buttons": [{"label": lab, "method": method, "args": args} for lab, method, args in buttons]}


def axis_scale_menu(axis: str = "yaxis", *, log_first: bool = False) -> Dict[str, Any]:
    """Linear/log buttons for one axis (``relayout`` of ``<axis>.type``)."""
    btns = [("linear", "relayout", [{f"{axis}.type": "linear"}]), ("log", "relayout", [{f"{axis}.type": "log"}])]
    return toggle_menu(btns[::-1] if log_first else btns)
