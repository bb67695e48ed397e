"""``landscape hessian``: top eigenvalues, smallest eigenvalue, trace, density, per-layer and
preconditioned curvature, and the stability verdict for the checkpoint's optimizer."""

from __future__ import annotations

from typing import Optional, Union

import click

from ..errors import LandscapeError
from ..hessian.analyze import HessianConfig, analyze_hessian
from ..hessian.batch_sharpness import train_batch_size as resolve_batch_size
from ..hessian.lanczos import EigenProgress
from ..progress import ConvergenceBar
from ..results import write_json
from . import main
from .common import analysis_options, pop_session_kwargs, session_from


@main.command("hessian")
@click.argument("checkpoint", type=click.Path())
@analysis_options
@click.option("--top-k", type=int, default=5, show_default=True, help="Number of largest (algebraic) eigenvalues.")
@click.option("--smallest", is_flag=True, help="Also the smallest eigenvalue (negative curvature).")
@click.option("--trace", "do_trace", is_flag=True, help="Trace by Hutch++ with a standard error.")
@click.option("--trace-matvecs", type=int, default=99, show_default=True, help="Products for --trace.")
@click.option("--density", is_flag=True, help="Spectral density by stochastic Lanczos quadrature.")
@click.option("--density-steps", type=int, default=64, show_default=True, help="Lanczos steps per SLQ run.")
@click.option("--density-runs", type=int, default=2, show_default=True, help="Random start vectors for SLQ.")
@click.option("--per-layer", is_flag=True, help="Top eigenvalue of each layer's diagonal Hessian block.")
@click.option("--preconditioned", is_flag=True, help="Top-k eigenvalues of P^-1/2 H P^-1/2 from the checkpoint's adaptive optimizer state (top-1 is always computed for adaptive optimizers).")
@click.option("--lr", type=float, default=None, help="Learning rate for the stability check (default: the checkpoint's).")
@click.option("--tol", type=float, default=1e-4, show_default=True, help="Target of --converge relative to |λ_max|: every eigenvalue's error bound (values) or residual ‖Hv − λv‖ (vectors) at most tol·|λ_max|.")
@click.option("--converge", type=click.Choice(["values", "vectors"]), default="values", show_default=True, help="Stop when the eigenvalues' error bounds (|λ − θ| ≤ min(‖r‖, ‖r‖²/gap)) meet --tol, or when the eigenvector residuals do (needed when the vectors are used).")
@click.option("--max-hvps", type=int, default=None, help="At most this many Hessian-vector products for all Lanczos runs together (first pass, top-k, stability, preconditioned, smallest, per-layer, in that order; default: each run stops at max(100, 30·k)); at the limit results are returned with their error bounds and converged: false, and a run left without products reports NaN.")
@click.option("--time-budget", type=float, default=None, help="Seconds from the start for all Lanczos runs together (the same runs and order as --max-hvps); no Lanczos step is started that would end past it, and the result so far is returned with its bounds and converged: false.")
@click.option("--first-pass-subset", type=int, default=None, metavar="N", help="Cheap first pass: the top-k on the first N samples (loose tolerance), whose Ritz vectors start the full-data Lanczos. Off by default: measured, it did not save products in every case (docs/performance.md).")
@click.option("--block", default="1", show_default=True, help="Lanczos block size: vectors added per step, or auto (a block as large as the unconverged clusters among the Ritz values). On CPU one vector per step needs the fewest products; a block resolves near-repeated eigenvalues that single-vector Lanczos can miss.")
@click.option("--method", type=click.Choice(["auto", "cached", "fwd", "rev"]), default="auto", show_default=True, help="Hessian-vector products: cached gradient graphs (one backward per product; auto uses them when they fit in memory), forward-over-reverse, or double backward.")
@click.option("--backend", type=click.Choice(["landscape", "pyhessian"]), default="landscape", hidden=True,
              help="Removed: the pyhessian cross-check lives in tests/crosscheck.py.")
@click.option("--batch-sharpness", "do_batch_sharpness", is_flag=True, help="Batch sharpness E_B[g_B^T H_B g_B/|g_B|^2] over mini-batches of the training batch size (Andreyev & Beneventano 2024), with its SGD stability verdict.")
@click.option("--train-batch-size", type=int, default=None, help="Mini-batch size for --batch-sharpness (default: the batch_size the checkpoint records).")
@click.option("--batches", type=int, default=20, show_default=True, help="Mini-batches averaged for --batch-sharpness.")
@click.option("--json", "json_path", default=None, help="Write the result as JSON to PATH (- for stdout).")
@click.option("--html", "html_path", default=None, help="Write a one-page HTML report to PATH.")
def hessian_cmd(checkpoint: str, top_k: int, smallest: bool, do_trace: bool, trace_matvecs: int,
                density: bool, density_steps: int, density_runs: int, per_layer: bool,
                preconditioned: bool, lr: Optional[float], tol: float, converge: str, max_hvps: Optional[int],
                time_budget: Optional[float], first_pass_subset: Optional[int], block: str, method: str, backend: str,
                do_batch_sharpness: bool, train_batch_size: Optional[int], batches: int, json_path: Optional[str], html_path: Optional[str], **kwargs) -> None:
    """Hessian spectrum of CHECKPOINT's training loss and the edge-of-stability check."""
    if backend != "landscape":
        raise LandscapeError("--backend pyhessian was removed: landscape no longer ships the pyhessian "
                             "cross-check (it lives in the repository's tests/crosscheck.py)")
    options = pop_session_kwargs(kwargs)
    session = session_from(checkpoint, options)
    config = HessianConfig(top_k=top_k, smallest=smallest, trace=do_trace, density=density,
                           per_layer=per_layer, preconditioned=preconditioned, lr=lr, tol=tol,
                           seed=options.get("seed", 0), trace_matvecs=trace_matvecs,
                           density_steps=density_steps, density_runs=density_runs, method=method,
                           batch_sharpness=do_batch_sharpness,
                           train_batch_size=resolve_train_batch_size(session, train_batch_size), batches=batches,
                           converge=converge, max_hvps=max_hvps, time_budget=time_budget,
                           first_pass_subset=first_pass_subset,
                           block=parse_block(block))
    with ConvergenceBar("Hessian-vector products") as bar:
        def status(phase: str, p: EigenProgress) -> None:
            bar.update(phase, p.matvecs, p.worst, p.tol, "bound" if p.criterion == "values" else "residual")

        report = analyze_hessian(session.train, session.optimizer, config,
                                 provenance=session.provenance(), tick=bar.tick, status=status)
    if json_path:
        write_json(report, json_path)
    if html_path:
        from ..report import write_html

        write_html([report], html_path, title=f"Hessian of {checkpoint}")
    if json_path != "-":
        click.echo(report.summary())


def parse_block(text: str) -> Union[int, str]:
    """``--block``: ``auto`` or a positive integer."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        value = int(text)
    except ValueError:
        raise LandscapeError(f"--block must be a positive integer or auto, got {text!r}") from None
    if value < 1:
        raise LandscapeError(f"--block must be a positive integer or auto, got {text!r}")
    return value


def resolve_train_batch_size(session, override: Optional[int]) -> Optional[int]:
    """``--train-batch-size``, else the batch size the checkpoint's landscape meta records."""
    return resolve_batch_size(session.checkpoint.meta if session.checkpoint else None, override)
