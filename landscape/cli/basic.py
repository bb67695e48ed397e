"""``landscape inspect`` and ``landscape train``."""

from __future__ import annotations

from typing import Optional

import click

from ..inspect import inspect_checkpoint
from ..results import write_json
from ..train import TrainConfig, train
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


@main.command("train")
@click.option("--model", required=True, help="Registry name, file.py:factory or pkg.module:factory.")
@click.option("--data", default="digits", show_default=True)
@click.option("--loss", type=click.Choice(["ce", "mse", "mse-sum", "mse-softmax"]), default="ce", show_default=True)
@click.option("--optimizer", type=click.Choice(["sgd", "adam", "adamw", "amsgrad"]), default="sgd", show_default=True)
@click.option("--lr", type=float, default=0.1, show_default=True)
@click.option("--momentum", type=float, default=0.0, show_default=True)
@click.option("--nesterov", is_flag=True)
@click.option("--beta1", type=float, default=0.9, show_default=True)
@click.option("--beta2", type=float, default=0.999, show_default=True)
@click.option("--eps", type=float, default=1e-8, show_default=True)
@click.option("--weight-decay", type=float, default=0.0, show_default=True)
@click.option("--epochs", type=int, default=10, show_default=True)
@click.option("--batch-size", type=int, default=128, show_default=True)
@click.option("--save-every", type=int, default=1, show_default=True, help="Keep a checkpoint every K epochs (and the last).")
@click.option("--save-steps", default="", help="Also keep checkpoints after these optimizer steps, e.g. 0,1,2,5,10.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--width", type=float, default=1.0, show_default=True)
@click.option("--device", default="cpu", show_default=True)
@click.option("--out", "out_dir", required=True, type=click.Path(), help="Run folder for epoch_XXX.pt and log.csv.")
def train_cmd(out_dir: str, save_steps: str, beta1: float, beta2: float, **kwargs) -> None:
    """Train a model and keep checkpoints and a log (for Adam-vs-SGD style studies)."""
    steps = _int_list(save_steps)
    cfg = TrainConfig(betas=(beta1, beta2), save_steps=steps, **kwargs)
    history = train(cfg, out_dir)
    last = history[-1] if history else {}
    click.echo(f"wrote {out_dir}/log.csv and {len(history) + 1} epoch checkpoints; "
               f"final train loss {last.get('train_loss', float('nan')):.4g}, "
               f"test loss {last.get('test_loss', float('nan')):.4g}, test acc {last.get('test_acc', float('nan')):.3f}")


def _int_list(text: str) -> tuple:
    from ..errors import SpecError

    try:
        return tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise SpecError(f"--save-steps {text!r}: expected integers like 0,1,2,5,10") from None
