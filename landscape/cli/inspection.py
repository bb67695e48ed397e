"""``landscape inspect``: what a checkpoint holds, what it was recognised as, and how well it does."""

from __future__ import annotations

from typing import Optional

import click

from ..inspection import inspect_checkpoint
from ..results import write_json
from . import main
from .common import analysis_options, pop_session_kwargs


@main.command("inspect")
@click.argument("checkpoint", type=click.Path())
@analysis_options
@click.option("--json", "json_path", default=None, help="Write the result as JSON to PATH (- for stdout).")
def inspect_cmd(checkpoint: str, json_path: Optional[str], **kwargs) -> None:
    """Architecture, parameter count, optimizer settings, epoch, train/test loss and accuracy."""
    report = inspect_checkpoint(checkpoint, **pop_session_kwargs(kwargs))
    if json_path:
        write_json(report, json_path)
    if json_path != "-":
        click.echo(report.summary())
