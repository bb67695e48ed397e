"""``landscape report``: one offline HTML page from slice files, JSON results and run folders."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Tuple

import click

from . import main


@main.command("report")
@click.argument("inputs", nargs=-1, required=True, type=click.Path())
@click.option("--out", "out_path", required=True, type=click.Path(), help="HTML file to write.")
@click.option("--title", default=None, help="Page title (default: from the inputs).")
@click.option("--png-dir", default=None, type=click.Path(),
              help="Also write a static PNG of every figure here (needs kaleido; skipped with a message otherwise).")
def report_cmd(inputs: Tuple[str, ...], out_path: str, title: Optional[str], png_dir: Optional[str]) -> None:
    """Write one self-contained interactive page for INPUT... (.h5 slices, .json results, run folders).

    The type of each input is told from its content. The page embeds plotly.js once and needs no
    network.
    """
    from ..errors import LandscapeError
    from ..report import build_report, export_png
    from ..report.html import render_page

    report = build_report(list(inputs), title=title)
    text, n_fig = render_page(report.sections, title=report.title)
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    click.echo(f"wrote {out} ({len(report.sections)} section(s), {n_fig} figure(s), "
               f"{out.stat().st_size / 1e6:.1f} MB)")
    if png_dir:
        try:
            written = export_png(report, png_dir)
        except LandscapeError as exc:
            click.echo(f"skipping PNG export: {exc}", err=True)
        else:
            click.echo(f"wrote {len(written)} PNG file(s) to {png_dir}")
