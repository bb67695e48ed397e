"""``landscape toy``: optimizer trajectories on 2-D analytic surfaces."""

from __future__ import annotations

from typing import Optional, Tuple

import click

from ..errors import SpecError
from ..optim import FAMILIES, OptimizerConfig
from ..results import write_json
from . import main


@main.command("toy")
@click.argument("surface")
@click.option("--optimizer", "optimizers", multiple=True, type=click.Choice(list(FAMILIES)),
              help="Repeatable; paired with --lr (one --lr for all, or one per --optimizer). Default: adam and sgd.")
@click.option("--lr", "lrs", multiple=True, type=float, help="Repeatable learning rate(s).")
@click.option("--steps", type=int, default=100, show_default=True)
@click.option("--start", default=None, help="Start point x,y (default: the surface's).")
@click.option("--momentum", type=float, default=0.0, show_default=True)
@click.option("--beta1", type=float, default=0.9, show_default=True)
@click.option("--beta2", type=float, default=0.999, show_default=True)
@click.option("--eps", type=float, default=1e-8, show_default=True)
@click.option("--final-lr", type=float, default=0.1, show_default=True, help="AdaBound/AMSBound.")
@click.option("--gamma", type=float, default=1e-3, show_default=True, help="AdaBound/AMSBound.")
@click.option("--grid", "grid_points", type=int, default=121, show_default=True, help="Grid points per axis for the plots.")
@click.option("--json", "json_path", default=None, help="Write the result as JSON to PATH (- for stdout).")
@click.option("--html", "html_path", default=None, help="Write an interactive HTML report to PATH.")
def toy_cmd(surface: str, optimizers: Tuple[str, ...], lrs: Tuple[float, ...], steps: int, start: Optional[str],
            momentum: float, beta1: float, beta2: float, eps: float, final_lr: float, gamma: float,
            grid_points: int, json_path: Optional[str], html_path: Optional[str]) -> None:
    """Trajectories of optimizers on SURFACE (rosenbrock, beale, saddle, quadratic, basin[:key=value,...]).

    Each step records the curvature and the family's stability ratio λ₁(P⁻¹H)·η/c; on the basin,
    the learning rate above which each optimizer's first step crosses the wall.
    """
    from ..toy import toy

    names = optimizers or ("adam", "sgd")
    if not lrs:
        raise SpecError("give --lr (one for all optimizers, or one per --optimizer)")
    if len(lrs) not in (1, len(names)):
        raise SpecError(f"{len(lrs)} --lr values for {len(names)} optimizers: give one, or one per --optimizer")
    pairs = list(zip(names, lrs if len(lrs) == len(names) else lrs * len(names)))
    configs = [OptimizerConfig(name=n, lr=lr, momentum=momentum, betas=(beta1, beta2), eps=eps,
                               final_lr=final_lr, gamma=gamma) for n, lr in pairs]
    result = toy(surface, configs, steps=steps, start=_point(start), grid_points=grid_points)
    if json_path:
        write_json(result, json_path)
    if html_path:
        from ..report import write_html

        write_html(result, html_path, title=f"landscape toy {surface}")
    if json_path != "-":
        click.echo(result.summary())
        if html_path:
            click.echo(f"wrote {html_path}")


def _point(text: Optional[str]):
    if text is None:
        return None
    try:
        xy = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise SpecError(f"--start {text!r}: expected two numbers x,y") from None
    if len(xy) != 2:
        raise SpecError(f"--start {text!r}: expected two numbers x,y")
    return xy
