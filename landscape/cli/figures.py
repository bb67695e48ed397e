"""``landscape figure``, ``landscape table`` and ``landscape export-vtk``: static outputs for papers."""

from __future__ import annotations

from typing import Optional, Tuple

import click

from ..errors import SpecError
from . import main


def _parse_size(text: Optional[str]) -> Optional[Tuple[float, float]]:
    if text is None:
        return None
    parts = text.replace("x", ",").split(",")
    try:
        w, h = (float(p) for p in parts)
    except ValueError:
        raise SpecError(f"--size {text!r}: expected W,H in inches, e.g. 6.5,2.8") from None
    return w, h


@main.command("figure")
@click.argument("inputs", nargs=-1, required=True, type=click.Path())
@click.option("--out", "out_path", required=True, type=click.Path(), help="Output file: .pdf, .png or .svg.")
@click.option("--kind", type=click.Choice(["auto", "contour", "surface", "line", "density", "eos", "first-step"]),
              default="auto", show_default=True,
              help="auto: contour for 2-D slices, line for 1-D slices/interpolations, density for a Hessian "
                   "JSON, eos for a run folder or sharpness.csv, first-step for the probe's JSON.")
@click.option("--quantity", type=click.Choice(["loss", "acc"]), default="loss", show_default=True,
              help="2-D slices: draw the loss or the accuracy.")
@click.option("--only", type=click.Choice(["train", "test"]), default=None,
              help="Only the train or the test panel (default: both, side by side).")
@click.option("--linear", is_flag=True, help="Evenly spaced contour levels (and linear loss axes) instead of log.")
@click.option("--levels", type=int, default=15, show_default=True, help="Number of filled contour bands.")
@click.option("--zmax", type=float, default=None, help="Clip the loss at this value (contour range, surface heights).")
@click.option("--vmin", type=float, default=None, help="Lower end of the colour range / y axis.")
@click.option("--vmax", type=float, default=None, help="Upper end of the colour range / y axis.")
@click.option("--title", default=None, help="Figure title (default: none, as papers put it in the caption).")
@click.option("--size", default=None, help="Figure size W,H in inches (default: from --style and the panels).")
@click.option("--dpi", type=int, default=200, show_default=True, help="Resolution of PNG output.")
@click.option("--font-size", type=float, default=None, help="Base font size in points (default: 8 paper, 15 slides).")
@click.option("--style", type=click.Choice(["paper", "slides"]), default="paper", show_default=True,
              help="Sizes, fonts and line widths for a two-column paper or for slides.")
def figure_cmd(inputs: Tuple[str, ...], out_path: str, kind: str, quantity: str, only: Optional[str],
               linear: bool, levels: int, zmax: Optional[float], vmin: Optional[float], vmax: Optional[float],
               title: Optional[str], size: Optional[str], dpi: int, font_size: Optional[float], style: str) -> None:
    """Draw INPUT... as a static figure (PDF, PNG or SVG) with matplotlib; no browser needed.

    The output is reproducible (same inputs and options, same bytes) and fonts are embedded.
    """
    from ..report.figures import FigureOptions, render_figure

    opts = FigureOptions(kind=kind, quantity=quantity, only=only, linear=linear, levels=levels, zmax=zmax,
                         vmin=vmin, vmax=vmax, title=title, size=_parse_size(size), dpi=dpi,
                         font_size=font_size, style=style)
    res = render_figure(list(inputs), out_path, options=opts)
    for note in res.notes:
        click.echo(note)
    click.echo(f"wrote {res.out} ({res.kind}: {', '.join(res.panels)})")


@main.command("table")
@click.argument("inputs", nargs=-1, required=True, type=click.Path())
@click.option("--markdown", "fmt", flag_value="markdown", default=True, help="Markdown (the default).")
@click.option("--latex", "fmt", flag_value="latex", help="LaTeX with booktabs and siunitx S columns.")
@click.option("--csv", "fmt", flag_value="csv", help="CSV, one line per cell (table,row,column,value,stderr).")
@click.option("--out", "out_path", default=None, type=click.Path(), help="Write to this file instead of stdout.")
def table_cmd(inputs: Tuple[str, ...], fmt: str, out_path: Optional[str]) -> None:
    """Tables from JSON results: sharpness side by side, Hessian summary, first-step causes.

    A sharpness JSON gives one row per measure and one column per checkpoint, with standard errors
    and the generalisation gap; Hessian JSONs give one row per checkpoint; the first-step probe's
    JSON gives its causes (when it records them).
    """
    from pathlib import Path

    from ..errors import LandscapeError
    from ..report.tables import render, tables_from_paths

    tables, notes = tables_from_paths(list(inputs))
    for note in notes:
        click.echo(f"note: {note}", err=True)
    if not tables:
        raise LandscapeError("no table to write")
    text = render(tables, fmt)
    if out_path:
        out = Path(out_path)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
        click.echo(f"wrote {out} ({len(tables)} table(s), {fmt})")
    else:
        click.echo(text, nl=False)


@main.command("export-vtk")
@click.argument("surface", type=click.Path())
@click.option("--out", "out_path", required=True, type=click.Path(), help="VTK PolyData file to write (.vtp).")
@click.option("--quantity", type=click.Choice(["train_loss", "test_loss", "train_acc", "test_acc"]),
              default="train_loss", show_default=True, help="The surface's height.")
@click.option("--log", is_flag=True, help="Heights ln(z + 0.1), as Li et al.'s h52vtp --log.")
@click.option("--zmax", type=float, default=None, help="Clip heights at this value (before --log).")
def export_vtk_cmd(surface: str, out_path: str, quantity: str, log: bool, zmax: Optional[float]) -> None:
    """Write SURFACE.h5 (a 2-D slice, ours or Li et al.'s) as VTK PolyData for ParaView."""
    from ..report.vtk import export_vtp

    res = export_vtp(surface, out_path, quantity=quantity, log=log, zmax=zmax)
    for note in res.notes:
        click.echo(note)
    click.echo(f"wrote {res.out} ({res.n_points} points, {res.n_polys} quadrilaterals, z = "
               f"{'ln(' if log else ''}{quantity}{' clipped at ' + format(zmax, 'g') if zmax is not None else ''}"
               f"{' + 0.1)' if log else ''})")
