"""``landscape sharpness``: sharpness measures for checkpoints side by side, or over a run folder."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Tuple

import click

from ..distributed import is_main
from ..errors import LandscapeError
from ..results import write_json
from ..sharpness.measure import (
    MEASURES,
    SharpnessConfig,
    compare_checkpoints,
    measure_run,
    parse_measures,
)
from . import main
from .common import analysis_options, pop_session_kwargs


@main.command("sharpness")
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@analysis_options
@click.option("--measures", "measures", default="all", show_default=True,
              help=f"Comma-separated subset of: {', '.join(MEASURES)} (short forms: eps, worst_case, adaptive, average, pac_bayes, pac_bayes_mag).")
@click.option("--eps", type=float, default=1e-3, show_default=True, help="Keskar ε: box |δᵢ| ≤ ε(|θᵢ|+1).")
@click.option("--rho", type=float, default=0.05, show_default=True, help="Worst-case (SAM) L2 radius.")
@click.option("--adaptive-rho", type=float, default=0.5, show_default=True, help="Adaptive (ASAM) radius in the |θ|-scaled ball.")
@click.option("--adaptive-eta", type=float, default=0.01, show_default=True, help="ASAM's η in T = |θ| + η.")
@click.option("--sigma", type=float, default=None, help="Average-sharpness noise σ (default ρ/√d: the worst-case ball's expected squared radius).")
@click.option("--samples", type=int, default=16, show_default=True, help="Monte Carlo antithetic pairs (average sharpness; PAC-Bayes starts with this many).")
@click.option("--steps", type=int, default=20, show_default=True, help="Projected-ascent steps per restart (eps, worst-case, adaptive).")
@click.option("--restarts", type=int, default=3, show_default=True, help="Ascent restarts (the first from θ, the others random).")
@click.option("--include-bn", is_flag=True, help="Also perturb normalisation-layer parameters (excluded by default).")
@click.option("--pac-target", type=float, default=0.1, show_default=True, help="PAC-Bayes: allowed expected increase of the criterion.")
@click.option("--pac-criterion", type=click.Choice(["loss", "error"]), default="loss", show_default=True, help="PAC-Bayes criterion: training loss, or training 0-1 error (Jiang et al.'s).")
@click.option("--pac-max-samples", type=int, default=64, show_default=True, help="PAC-Bayes: most antithetic pairs when refining the Monte Carlo error.")
@click.option("--eig-tol", type=float, default=1e-4, show_default=True, help="Lanczos residual tolerance for λ_max.")
@click.option("--max-hvps", type=int, default=None, help="Per checkpoint: at most this many Hessian-vector products for its Lanczos runs together (λ_max, then the stability verdict's); at the limit values are returned with their error bounds and converged: false (NaN for a run left without products).")
@click.option("--time-budget", type=float, default=None, help="Per checkpoint: seconds for its Lanczos runs together (the same runs as --max-hvps); the values so far are returned with their bounds and converged: false.")
@click.option("--trace-matvecs", type=int, default=60, show_default=True, help="Hutch++ Hessian-vector products for the trace.")
@click.option("--lr", type=float, default=None, help="Learning rate for the stability threshold (default: the checkpoint's optimizer's).")
@click.option("--train-batch-size", type=int, default=None, help="SGD runs: batch sharpness over mini-batches of this size in the stability verdict (default: the batch_size the checkpoint records).")
@click.option("--batches", type=int, default=20, show_default=True, help="Mini-batches averaged for the batch sharpness.")
@click.option("--json", "json_path", default=None, help="Write the result as JSON to PATH (- for stdout).")
@click.option("--html", "html_path", default=None, help="Write an interactive HTML report to PATH.")
def sharpness_cmd(paths: Tuple[str, ...], json_path: Optional[str], html_path: Optional[str],
                  measures: str, **kwargs) -> None:
    """Sharpness measures of CKPT [CKPT ...] side by side with the generalisation gap, or of every
    checkpoint of one RUN_DIR (λ_max against the stability threshold by epoch)."""
    session_kwargs = pop_session_kwargs(kwargs)
    config = SharpnessConfig(measures=parse_measures(measures), seed=session_kwargs.get("seed", 0), **kwargs)
    dirs = [p for p in paths if Path(p).is_dir()]
    if dirs and len(paths) > 1:
        raise LandscapeError("pass either checkpoint files or a single run folder, not both")
    if dirs:
        result = measure_run(dirs[0], config, **session_kwargs)
    else:
        result = compare_checkpoints(list(paths), config, **session_kwargs)
    if json_path:
        write_json(result, json_path)
    if html_path:
        from ..report import write_html

        if is_main():
            write_html([result], html_path, title="landscape sharpness")
    if json_path != "-" and is_main():
        click.echo(result.table())
