"""``landscape probe adam-first-step`` and ``landscape probe spikes``."""

from __future__ import annotations

from typing import Optional, Tuple

import click

from ..distributed import is_main
from ..errors import LandscapeError
from ..optim import FAMILIES
from ..results import write_json
from . import main
from .common import analysis_options, data_options, pop_session_kwargs


@main.group("probe")
def probe_group() -> None:
    """Probes: Adam's first step at high learning rate; test-loss spikes."""


def _emit(result, json_path: Optional[str], html_path: Optional[str], title: str) -> None:  # noqa: ANN001
    if json_path and is_main():
        write_json(result, json_path)
    if html_path and is_main():
        from ..report import write_html

        write_html([result], html_path, title=title)
    if json_path != "-" and is_main():
        click.echo(result.summary())


@probe_group.command("adam-first-step")
@click.option("--init", "init", default=None, type=click.Path(),
              help="Checkpoint to start from (default: a fresh initialisation of --model seeded by --seed).")
@data_options
@click.option("--lr", "lrs", type=float, multiple=True, required=True, help="Learning rate (repeatable).")
@click.option("--batch-size", type=int, default=128, show_default=True, help="Training mini-batch size.")
@click.option("--steps", type=int, default=20, show_default=True, help="Optimizer steps to follow (loss curve).")
@click.option("--beta1", type=float, default=0.9, show_default=True)
@click.option("--beta2", type=float, default=0.999, show_default=True)
@click.option("--eps", type=float, default=1e-8, show_default=True)
@click.option("--momentum", type=float, default=0.0, show_default=True, help="SGD's heavy-ball momentum.")
@click.option("--optimizer", "optimizers", multiple=True, type=click.Choice(list(FAMILIES)),
              help="Repeatable: further families to measure like Adam and SGD (which always run), e.g. adabound.")
@click.option("--compare-losses", "compare_losses", default=None, metavar="LOSS,LOSS,...",
              help="Run the probe under each of these loss conventions (comma-separated from ce, mse, mse-sum, "
                   "mse-softmax, or 'all'); with --loss, that one too. E.g. ce,mse-softmax for Adam/SGD × CE/MSE.")
@click.option("--small-grad", type=float, default=1e-2, show_default=True,
              help="Amplified-coordinates experiment: coordinates with |g| below this fraction of max|g| are 'small'.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Initialisation seed and mini-batch order (as landscape train --seed).")
@click.option("--subset", type=int, default=None, help="Use a fixed random subset of N samples of each split.")
@click.option("--eval-batch-size", type=int, default=1024, show_default=True)
@click.option("--device", default="cpu", show_default=True)
@click.option("--dtype", type=click.Choice(["float32", "float64"]), default="float32", show_default=True)
@click.option("--bn-mode", type=click.Choice(["train", "eval"]), default="train", show_default=True,
              help="BatchNorm in evaluations: per-batch statistics (what training sees) or running statistics.")
@click.option("--no-hessian", is_flag=True, help="Skip λ_max at init and Adam's step-1 preconditioned sharpness.")
@click.option("--json", "json_path", default=None, help="Write the result as JSON to PATH (- for stdout).")
@click.option("--html", "html_path", default=None, help="Write an interactive HTML report to PATH.")
def adam_first_step_cmd(init: Optional[str], lrs: Tuple[float, ...], batch_size: int, steps: int,
                        beta1: float, beta2: float, eps: float, momentum: float, optimizers: Tuple[str, ...],
                        compare_losses: Optional[str], small_grad: float, seed: int, subset: Optional[int], eval_batch_size: int, device: str, dtype: str, bn_mode: str,
                        no_hessian: bool, json_path: Optional[str], html_path: Optional[str], **kwargs) -> None:
    """Adam's and SGD's first update from the same start and mini-batch, per learning rate."""
    from ..probes.adam_first_step import FirstStepConfig, adam_first_step
    from ..session import open_session

    opts = pop_session_kwargs(kwargs)
    if init is None and not opts.get("model"):
        raise LandscapeError("pass --init CKPT or --model (with --seed) for a fresh initialisation")
    losses = _parse_losses(compare_losses, opts.get("loss"))
    session = open_session(init, subset=subset, seed=seed, batch_size=eval_batch_size, device=device,
                           dtype=dtype, bn_mode=bn_mode, init_seed=seed, **opts)
    cfg = FirstStepConfig(lrs=tuple(lrs), batch_size=batch_size, steps=steps, betas=(beta1, beta2), eps=eps,
                          momentum=momentum, seed=seed, hessian=not no_hessian, losses=losses, small_grad=small_grad,
                          others=tuple(dict.fromkeys(o for o in optimizers if o not in ("adam", "sgd"))))
    _emit(adam_first_step(session, cfg), json_path, html_path, "landscape probe adam-first-step")


def _parse_losses(text: Optional[str], loss: Optional[str]) -> Tuple[str, ...]:
    """``--compare-losses`` (plus ``--loss`` first when given) → the probe's loss conventions."""
    from ..losses import LOSSES

    if text is None:
        return ()
    names = list(LOSSES) if text.strip() == "all" else [t.strip() for t in text.split(",") if t.strip()]
    unknown = [n for n in names if n not in LOSSES]
    if unknown or not names:
        raise LandscapeError(f"--compare-losses {text!r}: unknown loss {unknown[0] if unknown else '(none)'}; "
                             f"choose from {', '.join(LOSSES)} or 'all'")
    return tuple(dict.fromkeys(([loss] if loss else []) + names))


@probe_group.command("spikes")
@click.argument("run_dir", type=click.Path())
@click.option("--log", "log_path", default=None, type=click.Path(),
              help="CSV with epoch, train_loss, test_loss[, lr] (default RUN_DIR/log.csv).")
@analysis_options
@click.option("--lr", type=float, default=None, help="Learning rate (default: the checkpoint's, else the log's).")
@click.option("--threshold", type=float, default=5.0, show_default=True,
              help="Spike: rise above the rolling median by more than this many robust deviations.")
@click.option("--window", type=int, default=8, show_default=True, help="Epochs in the rolling median.")
@click.option("--min-rise", type=float, default=0.1, show_default=True,
              help="... and by more than this fraction of the median.")
@click.option("--at", "at", type=int, multiple=True, help="Also probe around this epoch (repeatable).")
@click.option("--max-events", type=int, default=3, show_default=True, help="Probe at most this many events.")
@click.option("--points", type=int, default=21, show_default=True, help="Points per 1-D slice.")
@click.option("--eig-tol", type=float, default=1e-3, show_default=True, help="Residual tolerance for λ_max.")
@click.option("--max-hvps", type=int, default=None, help="Per probed checkpoint: at most this many Hessian-vector products for its Lanczos runs together (λ_max, then the stability verdict's); at the limit values come with converged: false (NaN for a run left without products).")
@click.option("--time-budget", type=float, default=None, help="Per probed checkpoint: seconds for its Lanczos runs together; the values so far are returned with converged: false.")
@click.option("--no-hessian", is_flag=True, help="Skip eigenvalues (detection and slices along the step only).")
@click.option("--json", "json_path", default=None, help="Write the result as JSON to PATH (- for stdout).")
@click.option("--html", "html_path", default=None, help="Write an interactive HTML report to PATH.")
def spikes_cmd(run_dir: str, log_path: Optional[str], lr: Optional[float], threshold: float, window: int,
               min_rise: float, at: Tuple[int, ...], max_events: int, points: int, eig_tol: float,
               max_hvps: Optional[int], time_budget: Optional[float], no_hessian: bool, json_path: Optional[str], html_path: Optional[str], **kwargs) -> None:
    """Detect test-loss spikes and oscillation in RUN_DIR's log and probe the checkpoints around them."""
    from ..probes.spikes import DetectorConfig, SpikeProbeConfig, probe_spikes

    opts = pop_session_kwargs(kwargs)
    if points < 3:
        raise LandscapeError("--points must be at least 3")
    cfg = SpikeProbeConfig(detector=DetectorConfig(threshold=threshold, window=window, min_rise=min_rise),
                           lr=lr, at=tuple(at), max_events=max_events, points=points, tol=eig_tol,
                           seed=opts.get("seed", 0), hessian=not no_hessian, max_hvps=max_hvps,
                           time_budget=time_budget)
    _emit(probe_spikes(run_dir, log_path=log_path, cfg=cfg, session_kwargs=opts), json_path, html_path,
          "landscape probe spikes")
