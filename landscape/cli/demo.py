"""``landscape demo``: train small Adam and SGD runs on the bundled digits, analyse them, write a report."""

from __future__ import annotations

import click

from . import main


@main.command("demo")
@click.option("--out", "out_dir", default="demo_out", show_default=True, type=click.Path(),
              help="Folder for the runs, results, report.html and summary.txt (a previous demo's folder is replaced).")
@click.option("--quick", is_flag=True, help="A smaller, faster version (fewer runs, epochs and grid points).")
def demo_cmd(out_dir: str, quick: bool) -> None:
    """Train Adam and SGD runs (high and low learning rate, CE and MSE) on the bundled digits, run
    every analysis on them, write one HTML report and print a summary computed from the results."""
    from ..demo import DemoConfig, run_demo

    config = DemoConfig.quick() if quick else DemoConfig()
    result = run_demo(out_dir, config, say=lambda m: click.echo(f"[demo {_clock()}] {m}", err=True))
    click.echo(result.summary)
    click.echo(f"(demo took {result.seconds['total']:.0f} s; results in {result.out}/results, runs in {result.out}/runs)")


def _clock() -> str:
    import time

    return time.strftime("%H:%M:%S")
