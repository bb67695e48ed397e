"""Options shared by the analysis commands, and small CLI helpers."""

from __future__ import annotations

from typing import Any, Callable, Dict, Optional, Tuple

import click

from ..errors import SpecError
from ..session import Session, open_session


def data_options(fn: Callable) -> Callable:
    """``--model --data --loss --width --num-classes --trust-checkpoint``."""
    opts = [
        click.option("--model", "model", default=None, help="Registry name (resnet18, tv_resnet18:stem=cifar, resnet32, densenet121, vgg11, cnn, mlp:hidden=64-64, ...), file.py:factory or pkg.module:factory. Default: what the checkpoint records, else recognised from the weights' keys and shapes."),
        click.option("--data", "data", default=None, help="digits (bundled), cifar10:ROOT, cifar100:ROOT, mnist:ROOT, fashion-mnist:ROOT, npz:PATH or file.py:factory. Default: what the checkpoint records, else the run config's data root."),
        click.option("--loss", "loss", type=click.Choice(["ce", "mse", "mse-sum", "mse-softmax"]), default=None, help="Loss the run trained with (default: recorded in the checkpoint or the run config, else ce)."),
        click.option("--width", type=float, default=None, help="Width multiplier for registry models."),
        click.option("--num-classes", type=int, default=None, help="Output classes (default: from the data)."),
        click.option("--trust-checkpoint", "trust", is_flag=True, help="Allow pickled Python objects (e.g. a whole nn.Module) in the checkpoint. Only for files you trust."),
        click.option("--normalize", "normalize", default=None, help="Input preprocessing: cifar10 (true std; CIFAR-10's default), pytorch-cifar (std 0.2023,0.1994,0.2010), cifar100, mnist, fashion-mnist, none, or MEANS/STDS such as 0.4914,0.4822,0.4465/0.2023,0.1994,0.2010. Default: the data set's usual one."),
        click.option("--checkpoint-key", "checkpoint_key", default=None, help="Where the model weights sit in a checkpoint holding several (e.g. model_state or ema)."),
        click.option("--no-log-check", "check_log", is_flag=True, flag_value=False, default=True, help="Do not recompute the loss the run's log records at this checkpoint's epoch."),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


def eval_options(fn: Callable, *, batch_size_help: Optional[str] = None) -> Callable:
    """``--subset --seed --batch-size --device --dtype --bn-mode``; ``batch_size_help`` replaces
    the plain "Evaluation batch size. [default: 1024]" where the default is not simply 1024."""
    batch_opt = (click.option("--batch-size", type=int, default=1024, help=batch_size_help) if batch_size_help else
                 click.option("--batch-size", type=int, default=1024, show_default=True, help="Evaluation batch size."))
    opts = [
        click.option("--subset", type=int, default=None, help="Evaluate on a fixed random subset of N samples of each split."),
        click.option("--seed", type=int, default=0, show_default=True, help="Seed for the subset and every random choice."),
        batch_opt,
        click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N (cuda takes LOCAL_RANK under torchrun)."),
        click.option("--dtype", type=click.Choice(["float32", "float64"]), default="float32", show_default=True),
        click.option("--bn-mode", type=click.Choice(["eval", "train"]), default="eval", show_default=True, help="BatchNorm with running statistics (eval) or per-batch statistics over the fixed batch split (train), for the reported numbers; stability verdicts always use batch statistics over the run's batch size."),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


def analysis_options(fn: Callable) -> Callable:
    return data_options(eval_options(fn))


def point_analysis_options(fn: Callable) -> Callable:
    """As :func:`analysis_options` for ``slice`` and ``interpolate``, whose points are evaluated
    in batches of a fixed rule unless ``--batch-size`` is given."""
    from ..slices.evaluate import DEFAULT_EVAL_BATCH

    return data_options(eval_options(fn, batch_size_help=(
        f"Evaluation batch size. Default: min(n, {DEFAULT_EVAL_BATCH}) for the points; 1024 for the fixed "
        "batch split of --bn-mode train and for the Hessian of slice --direction eigen.")))


SESSION_KEYS = ("model", "data", "loss", "width", "num_classes", "trust", "normalize", "checkpoint_key",
                "check_log", "subset", "seed", "batch_size", "device", "dtype", "bn_mode")


def pop_session_kwargs(kwargs: Dict[str, Any]) -> Dict[str, Any]:
    """Remove the shared options from a command's kwargs and return them for open_session."""
    return {k: kwargs.pop(k) for k in SESSION_KEYS if k in kwargs}


def session_from(checkpoint: Optional[str], options: Dict[str, Any], **extra: Any) -> Session:
    return open_session(checkpoint, **options, **extra)


def parse_range(text: str, *, name: str = "--range") -> Tuple[float, float, int]:
    """``"-1:1:51"`` -> ``(-1.0, 1.0, 51)``; a malformed range is a one-line error."""
    parts = text.split(":")
    try:
        if len(parts) != 3:
            raise ValueError
        lo, hi, n = float(parts[0]), float(parts[1]), int(parts[2])
    except ValueError:
        raise SpecError(f"{name} {text!r} is malformed; expected MIN:MAX:NUM, e.g. -1:1:51") from None
    if not (lo < hi) or n < 2 or n != n:
        raise SpecError(f"{name} {text!r}: need MIN < MAX and NUM >= 2")
    return lo, hi, n
