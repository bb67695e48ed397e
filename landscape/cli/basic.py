"""``landscape train``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import click

from ..data import load_data
from ..errors import SpecError
from ..optim import FAMILIES, SCHEDULERS
from ..train import MonitorConfig, TrainConfig, train
from . import main


@main.command("train")
@click.option("--model", required=True, help="Registry name, file.py:factory or pkg.module:factory.")
@click.option("--data", default="digits", show_default=True)
@click.option("--loss", type=click.Choice(["ce", "mse", "mse-sum", "mse-softmax"]), default="ce", show_default=True)
@click.option("--optimizer", type=click.Choice(list(FAMILIES)), default="sgd", show_default=True,
              help="Family (see README 'Optimizer families'); swats = Adam switching to SGD (Keskar & Socher 2017).")
@click.option("--lr", type=float, default=0.1, show_default=True)
@click.option("--momentum", type=float, default=0.0, show_default=True)
@click.option("--nesterov", is_flag=True)
@click.option("--beta1", type=float, default=0.9, show_default=True)
@click.option("--beta2", type=float, default=0.999, show_default=True)
@click.option("--eps", type=float, default=1e-8, show_default=True)
@click.option("--weight-decay", type=float, default=0.0, show_default=True)
@click.option("--dampening", type=float, default=0.0, show_default=True, help="SGD momentum dampening.")
@click.option("--alpha", type=float, default=0.99, show_default=True, help="RMSprop smoothing constant.")
@click.option("--centered", is_flag=True, help="RMSprop: centred (divide by the variance estimate).")
@click.option("--rho", type=float, default=0.9, show_default=True, help="Adadelta decay.")
@click.option("--lr-decay", type=float, default=0.0, show_default=True, help="Adagrad learning-rate decay.")
@click.option("--initial-accumulator-value", type=float, default=0.0, show_default=True, help="Adagrad.")
@click.option("--final-lr", type=float, default=0.1, show_default=True, help="AdaBound/AMSBound final (SGD-like) rate.")
@click.option("--gamma", type=float, default=1e-3, show_default=True, help="AdaBound/AMSBound bound convergence speed.")
@click.option("--scheduler", type=click.Choice(list(SCHEDULERS)), default="none", show_default=True)
@click.option("--plateau-metric", type=click.Choice(["test_acc", "test_loss", "train_acc", "train_loss"]),
              default="test_acc", show_default=True)
@click.option("--plateau-mode", type=click.Choice(["max", "min"]), default="max", show_default=True)
@click.option("--plateau-factor", type=float, default=0.9, show_default=True)
@click.option("--plateau-patience", type=int, default=10, show_default=True)
@click.option("--step-size", type=int, default=30, show_default=True, help="--scheduler step: epochs per decay.")
@click.option("--step-gamma", type=float, default=0.1, show_default=True, help="--scheduler step: decay factor.")
@click.option("--switch-to-sgd", type=int, default=None, help="After this epoch continue with SGD (needs --switch-lr).")
@click.option("--switch-lr", type=float, default=None, help="SGD learning rate after --switch-to-sgd.")
@click.option("--switch-momentum", type=float, default=0.0, show_default=True, help="SGD momentum after the switch.")
@click.option("--epochs", type=int, default=10, show_default=True)
@click.option("--batch-size", type=int, default=128, show_default=True)
@click.option("--save-every", type=int, default=1, show_default=True, help="Keep a checkpoint every K epochs (and the last).")
@click.option("--save-steps", default="", help="Also keep checkpoints after these optimizer steps, e.g. 0,1,2,5,10.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--width", type=float, default=1.0, show_default=True)
@click.option("--device", default="cpu", show_default=True)
@click.option("--out", "out_dir", required=True, type=click.Path(), help="Run folder for epoch_XXX.pt and log.csv (refused if it holds another run).")
@click.option("--overwrite", is_flag=True, help="Replace the run in --out (its log, checkpoints, sharpness.csv, spikes.json are removed first).")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last epoch checkpoint up to --epochs (same configuration required).")
@click.option("--save-around-spikes", is_flag=True,
              help="Keep the last 2 epochs' checkpoints in memory and write them, and the next one, when the test loss spikes.")
@click.option("--spike-threshold", type=float, default=5.0, show_default=True,
              help="Spike rule of `landscape probe spikes`: robust deviations above the rolling median.")
@click.option("--full-batch", is_flag=True, help="Full-batch gradient descent: one step per epoch on the whole training set (overrides --batch-size).")
@click.option("--track-sharpness", "track_every", type=int, default=None,
              help="Every K steps write λ_max (warm-started Lanczos), Adam's λ₁(P⁻¹H) or SGD's batch sharpness and the optimizer's threshold to RUN_DIR/sharpness.csv.")
@click.option("--track-subset", type=int, default=None, help="Fixed subset of N training samples for --track-sharpness (default: all).")
@click.option("--track-batches", type=int, default=10, show_default=True, help="Mini-batches averaged for the tracked batch sharpness (minibatch SGD).")
def train_cmd(out_dir: str, save_steps: str, beta1: float, beta2: float, save_around_spikes: bool,
              spike_threshold: float, full_batch: bool, track_every: Optional[int],
              track_subset: Optional[int], track_batches: int, overwrite: bool, resume: bool,
              **kwargs) -> None:
    """Train a model and keep checkpoints and a log (for Adam-vs-SGD style studies)."""
    if overwrite and resume:
        raise click.UsageError("--overwrite and --resume exclude each other")
    steps = _int_list(save_steps)
    ds = load_data(kwargs["data"]) if full_batch else None
    if full_batch:
        kwargs["batch_size"] = len(ds.y_train)
    cfg = TrainConfig(betas=(beta1, beta2), save_steps=steps, **kwargs)
    if track_every is not None and track_every < 1:
        raise SpecError("--track-sharpness K needs K >= 1")
    watch = MonitorConfig(track_every=track_every or 0, track_subset=track_subset, track_batches=track_batches,
                          save_around_spikes=save_around_spikes, spike_threshold=spike_threshold)
    monitors: list = []
    existing = "overwrite" if overwrite else "resume" if resume else "refuse"
    history = train(cfg, out_dir, dataset=ds, monitor=watch, on_monitor=monitors.append, existing=existing)
    if resume and history:
        click.echo(f"resumed at epoch {int(history[0]['epoch']) - 1}")
    mon = monitors[0] if monitors else None
    if save_around_spikes and mon is not None:
        click.echo(f"spikes during training: {len(mon.spikes)}"
                   + (f" (epochs {', '.join(str(s['epoch']) for s in mon.spikes)}; kept checkpoints of epochs "
                      f"{', '.join(str(e) for e in sorted(mon.saved))}; see {out_dir}/spikes.json)"
                      if mon.spikes else ""))
    last = history[-1] if history else {}
    n_ckpt = len(list(Path(out_dir).glob("*.pt")))
    click.echo(f"wrote {out_dir}/log.csv and {n_ckpt} checkpoints; "
               f"final train loss {last.get('train_loss', float('nan')):.4g}, "
               f"test loss {last.get('test_loss', float('nan')):.4g}, test acc {last.get('test_acc', float('nan')):.3f}")


def _int_list(text: str) -> tuple:
    try:
        return tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise SpecError(f"--save-steps {text!r}: expected integers like 0,1,2,5,10") from None
