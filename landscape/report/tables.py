"""Tables for papers: LaTeX (booktabs + siunitx), Markdown and CSV from JSON results.

``landscape table INPUT...`` calls :func:`tables_from_paths` and :func:`render`. Three tables:

* **sharpness side by side** (``landscape sharpness`` with several checkpoints): one row per
  measure, one column per checkpoint, ``value ± stderr`` where the measure has a Monte-Carlo
  standard error, then the train/test loss and accuracy and the generalisation gap (test − train);
* **Hessian summary** (one or more ``landscape hessian`` JSONs): one row per checkpoint with
  λ₁…λ_k, the trace ± its standard error, the stability threshold and sharpness/threshold;
* **first-step causes** (``landscape probe adam-first-step``): each candidate cause per learning
  rate with whether the measurements support it and the evidence, when the JSON records causes.

Every number is printed with :data:`DIGITS` significant digits in plain ``1.234e-05`` notation,
which siunitx's ``S`` columns parse (uncertainties as ``\\pm``). Cells are kept as numbers until
rendering so the three formats show the same values.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, List, Mapping, Optional, Sequence, Tuple, Union

from ..errors import LandscapeError, OptionError
from .common import first_key, fnum, short_path

DIGITS = 4
FORMATS = ("markdown", "latex", "csv")


@dataclass(frozen=True)
class Num:
    """A number with an optional standard error (``None`` for missing values)."""

    value: Optional[float]
    stderr: Optional[float] = None


Cell = Union[Num, str]


@dataclass(frozen=True)
class Table:
    """A titled table; the first column holds the row labels."""

    name: str
    title: str
    columns: Tuple[str, ...]
    rows: Tuple[Tuple[Cell, ...], ...]
    caption: str = ""

    def to_json(self) -> dict:
        def cell(c: Cell) -> Any:
            return {"value": c.value, "stderr": c.stderr} if isinstance(c, Num) else c

        return {"name": self.name, "title": self.title, "columns": list(self.columns),
                "rows": [[cell(c) for c in r] for r in self.rows], "caption": self.caption}


def number(v: Optional[float], digits: int = DIGITS) -> str:
    """``v`` at ``digits`` significant digits, plain ASCII (``-``, ``e``), ``nan``/``inf`` spelled out."""
    if v is None:
        return ""
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return f"{v:.{digits}g}"


# ---------------------------------------------------------------------------------------------
# building tables from results


def sharpness_table(d: Any, *, source: str) -> Table:
    """Measures (rows) × checkpoints (columns), then loss, accuracy and the generalisation gap."""
    from .sharpness import _label, _measure_keys, _split_value, _value, records

    recs = records(d)
    labels = tuple(_label(r, i) for i, r in enumerate(recs))
    rows: List[Tuple[Cell, ...]] = []
    for key, lab in _measure_keys(recs):
        rows.append((lab, *[Num(*_value(r, key)) for r in recs]))
    for what, name in (("loss", "loss"), ("acc", "accuracy")):
        tr = [_split_value(r, "train", what) for r in recs]
        te = [_split_value(r, "test", what) for r in recs]
        if all(v is None for v in tr + te):
            continue
        gaps = []
        for r, a, b in zip(recs, tr, te):
            g = fnum(r["gap"].get(what)) if isinstance(r.get("gap"), Mapping) else None
            gaps.append(g if g is not None else (b - a if a is not None and b is not None else None))
        rows += [(f"train {name}", *map(Num, tr)), (f"test {name}", *map(Num, te)),
                 (f"gap {name} (test - train)", *map(Num, gaps))]
    return Table("sharpness", f"Sharpness — {short_path(source)}", ("measure", *labels), tuple(rows),
                 "± is the Monte-Carlo standard error; gap = test − train")


def _hessian_row(d: Mapping[str, Any], k: int, source: str) -> Tuple[Cell, ...]:
    prov = d.get("provenance") if isinstance(d.get("provenance"), Mapping) else {}
    label = short_path(prov.get("checkpoint") or source)
    eig = [fnum(v) for v in d.get("eigenvalues") or []]
    cells: List[Cell] = [label, *[Num(eig[i] if i < len(eig) else None) for i in range(k)]]
    cells.append(Num(fnum(d.get("trace")), fnum(d.get("trace_stderr"))))
    stab = d.get("stability") if isinstance(d.get("stability"), Mapping) else {}
    cells += [Num(fnum(stab.get("threshold"))), Num(fnum(stab.get("ratio")))]
    return tuple(cells)


def hessian_table(items: Sequence[Tuple[Mapping[str, Any], str]]) -> Table:
    """One row per checkpoint: λ₁…λ_k, trace ± stderr, stability threshold, sharpness/threshold."""
    k = max(len(d.get("eigenvalues") or []) for d, _ in items)
    rows = tuple(_hessian_row(d, k, src) for d, src in items)
    on = {str(d["stability"].get("on")) for d, _ in items if isinstance(d.get("stability"), Mapping)}
    cols = ("checkpoint", *[f"λ{i + 1}" for i in range(k)], "trace", "threshold", "sharpness / threshold")
    return Table("hessian", "Hessian summary", cols, rows,
                 "top eigenvalues (Lanczos), trace (Hutch++) ± standard error, and the optimizer's "
                 f"stability threshold on {', '.join(sorted(on)) or 'λ_max'}")


def causes_table(d: Mapping[str, Any], *, source: str) -> Optional[Table]:
    """The first-step probe's candidate causes per learning rate (None when it records none)."""
    rows: List[Tuple[Cell, ...]] = []
    runs = [r for r in d.get("runs") or [] if isinstance(r, Mapping) and isinstance(r.get("causes"), list)]
    with_loss = any(isinstance(r.get("loss"), str) for r in runs)  # runs of --compare-losses
    for run in runs:
        for c in run["causes"]:
            if not isinstance(c, Mapping):
                continue
            sup = c.get("supported")
            loss: Tuple[Cell, ...] = (str(run.get("loss") or "—"),) if with_loss else ()
            rows.append((str(c.get("name", "?")), Num(fnum(run.get("lr"))), *loss,
                         "yes" if sup is True else ("no" if sup is False else "undecided"),
                         str(first_key(c, "evidence") or "")))
    if not rows:
        return None
    cols = ("cause", "lr", *(("loss",) if with_loss else ()), "supported", "evidence")
    return Table("causes", f"First-step causes — {short_path(source)}", cols,
                 tuple(rows), "candidate causes of Adam's first-step blow-up and what the measurements say")


def tables_from_paths(paths: Sequence[str]) -> Tuple[List[Table], List[str]]:
    """Tables for the given JSON files, and notes on inputs that gave none."""
    from .probes import is_first_step
    from .sharpness import is_sharpness

    tables: List[Table] = []
    notes: List[str] = []
    hessians: List[Tuple[Mapping[str, Any], str]] = []
    for p in paths:
        path = Path(p)
        if not path.is_file():
            raise LandscapeError(f"{p}: no such file")
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise OptionError("{p}: not a JSON result (tables are made from {json_path} outputs)", p=p) from None
        if isinstance(d, Mapping) and is_first_step(d):
            t = causes_table(d, source=p)
            if t is None:
                notes.append(f"{p}: the first-step result records no causes (runs[].causes); skipped")
            else:
                tables.append(t)
        elif is_sharpness(d):
            tables.append(sharpness_table(d, source=p))
        elif isinstance(d, Mapping) and d.get("eigenvalues") is not None:
            hessians.append((d, p))
        else:
            raise LandscapeError(f"{p}: no table for this result; expected a sharpness, Hessian or "
                                 "first-step probe JSON")
    if hessians:
        tables.append(hessian_table(hessians))
    return tables, notes


# ---------------------------------------------------------------------------------------------
# rendering

_LATEX_TEXT = {
    "λ": r"$\lambda$", "ε": r"$\varepsilon$", "σ": r"$\sigma$", "η": r"$\eta$", "ρ": r"$\rho$", "β": r"$\beta$",
    "₁": r"$_1$", "₂": r"$_2$", "⁻¹": r"$^{-1}$", "−": "-", "—": "--", "–": "--", "±": r"$\pm$", "·": r"$\cdot$",
    "≤": r"$\le$", "≥": r"$\ge$", "×": r"$\times$", "‖": r"$\|$", "→": r"$\to$",
    "Δ": r"$\Delta$", "θ": r"$\theta$", "α": r"$\alpha$", "γ": r"$\gamma$", "δ": r"$\delta$", "μ": r"$\mu$",
    "∇": r"$\nabla$", "≈": r"$\approx$", "≪": r"$\ll$", "≫": r"$\gg$", "∞": r"$\infty$", "√": r"$\surd$",
    "ᵀ": r"$^{\top}$", "²": r"$^2$", "⁴": r"$^4$", "⁻": r"$^-$", "°": r"$^\circ$",
}
_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                  "|": r"\textbar{}", "<": r"\textless{}", ">": r"\textgreater{}"}


_LATEX_LABELS = {
    "λ_max": r"$\lambda_{\max}$", "λ_min": r"$\lambda_{\min}$",
    "λ₁(P⁻¹H) (preconditioned)": r"$\lambda_1(P^{-1}H)$ (preconditioned)",
    "ε-sharpness (Keskar)": r"$\varepsilon$-sharpness (Keskar)", "PAC-Bayes σ": r"PAC-Bayes $\sigma$",
    "PAC-Bayes σ (magnitude-aware)": r"PAC-Bayes $\sigma$ (magnitude-aware)",
}


def latex_text(text: str) -> str:
    """Escape LaTeX's special characters and spell the Greek letters and symbols we use in math."""
    if text in _LATEX_LABELS:
        return _LATEX_LABELS[text]
    if len(text) > 1 and text[0] == "λ" and text[1:].isdigit():
        return f"$\\lambda_{{{text[1:]}}}$"
    out = []
    i = 0
    while i < len(text):
        two = text[i:i + 2]
        if two in _LATEX_TEXT:
            out.append(_LATEX_TEXT[two])
            i += 2
            continue
        ch = text[i]
        if ch in _LATEX_SPECIAL:
            out.append(_LATEX_SPECIAL[ch])
        elif ch in _LATEX_TEXT:
            out.append(_LATEX_TEXT[ch])
        else:
            out.append(ch)  # other characters as they are (UTF-8 input; accented letters work in pdflatex)
        i += 1
    return "".join(out).replace("$$", "")


def _latex_cell(c: Cell) -> str:
    if isinstance(c, Num):
        if c.value is None or not math.isfinite(c.value):
            return "{--}" if c.value is None else "{" + number(c.value) + "}"
        s = number(c.value)
        if c.stderr is not None and math.isfinite(c.stderr):
            s += r" \pm " + number(c.stderr, 2)
        return s
    return "{" + latex_text(c) + "}"


def _numeric_columns(t: Table) -> List[bool]:
    return [all(isinstance(r[j], Num) for r in t.rows) for j in range(len(t.columns))]


def to_latex(t: Table) -> str:
    """A booktabs table; numeric columns are siunitx ``S`` columns, the others ``l``."""
    numeric = _numeric_columns(t)
    spec = "".join("S" if n and j else "l" for j, n in enumerate(numeric))
    head = " & ".join("{" + latex_text(c) + "}" if numeric[j] and j else latex_text(c)
                      for j, c in enumerate(t.columns))
    lines = [f"% {latex_text(t.title)} (made by landscape table; needs \\usepackage{{booktabs,siunitx}})",
             "\\begin{table}[t]", "\\centering",
             f"\\caption{{{latex_text(t.title + ('. ' + t.caption if t.caption else ''))}}}",
             f"\\begin{{tabular}}{{{spec}}}", "\\toprule", head + r" \\", "\\midrule"]
    for r in t.rows:
        cells = [_latex_cell(c) if numeric[j] and j else (latex_text(c) if isinstance(c, str) else _latex_cell(c))
                 for j, c in enumerate(r)]
        lines.append(" & ".join(cells) + r" \\")
    lines += ["\\bottomrule", "\\end{tabular}", "\\end{table}"]
    return "\n".join(lines) + "\n"


def _md_cell(c: Cell) -> str:
    if isinstance(c, Num):
        if c.value is None:
            return "—"
        s = number(c.value)
        return s + (f" ± {number(c.stderr, 2)}" if c.stderr is not None and math.isfinite(c.stderr) else "")
    return c.replace("|", "\\|").replace("\n", " ")


def to_markdown(t: Table) -> str:
    numeric = _numeric_columns(t)
    lines = [f"**{t.title}**", "", "| " + " | ".join(c.replace("|", "\\|") for c in t.columns) + " |",
             "|" + "|".join("---:" if n and j else "---" for j, n in enumerate(numeric)) + "|"]
    lines += ["| " + " | ".join(_md_cell(c) for c in r) + " |" for r in t.rows]
    if t.caption:
        lines += ["", t.caption]
    return "\n".join(lines) + "\n"


def to_csv(tables: Sequence[Table]) -> str:
    """Long format: one line per cell (``table,row,column,value,stderr``), numbers at full precision."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["table", "row", "column", "value", "stderr"])
    for t in tables:
        for r in t.rows:
            label = r[0] if isinstance(r[0], str) else number(r[0].value)
            for col, c in zip(t.columns[1:], r[1:]):
                if isinstance(c, Num):
                    w.writerow([t.name, label, col, "" if c.value is None else repr(c.value),
                                "" if c.stderr is None else repr(c.stderr)])
                else:
                    w.writerow([t.name, label, col, c, ""])
    return buf.getvalue()


def render(tables: Sequence[Table], fmt: str) -> str:
    """All tables in one format (LaTeX and Markdown tables separated by a blank line)."""
    if fmt not in FORMATS:
        raise LandscapeError(f"unknown table format {fmt!r}")
    if fmt == "csv":
        return to_csv(tables)
    one = to_latex if fmt == "latex" else to_markdown
    return "\n".join(one(t) for t in tables)
