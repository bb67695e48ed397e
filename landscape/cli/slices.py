"""``landscape slice`` and ``landscape interpolate`` (thin wrappers over :mod:`landscape.slices`)."""

from __future__ import annotations

from typing import Any, Optional, Tuple

import click

from ..errors import SpecError
from ..results import write_json
from . import main
from .common import parse_range, point_analysis_options, pop_session_kwargs


def _range(text: Optional[str], name: str, *, auto: bool) -> Optional[Tuple[Any, ...]]:
    """``MIN:MAX:NUM``, or ``auto`` / ``auto:NUM`` where the directions fix the span."""
    if text is None:
        return None
    if auto and text.strip().startswith("auto"):
        parts = text.strip().split(":")
        try:
            if parts[0] != "auto" or len(parts) > 2:
                raise ValueError
            n = int(parts[1]) if len(parts) == 2 else 51
        except ValueError:
            raise SpecError(f"{name} {text!r} is malformed; expected auto or auto:NUM") from None
        if n < 2:
            raise SpecError(f"{name} {text!r}: need NUM >= 2")
        return ("auto", n)
    return parse_range(text, name=name)


def _eval_batch_size(session_kwargs: dict) -> Any:
    """The --batch-size the user gave (checked: a positive integer), or None (the fixed default
    rule of :func:`landscape.slices.choose_eval_config`) when it was left at its default."""
    ctx = click.get_current_context()
    given = ctx.get_parameter_source("batch_size") not in (None, click.core.ParameterSource.DEFAULT)
    size = session_kwargs.get("batch_size")
    if size is not None and size < 1:
        raise SpecError(f"--batch-size must be a positive integer (got {size})")
    return size if given else None


def _write_html(result: Any, path: Optional[str]) -> None:
    if not path:
        return
    from ..report import write_html  # the report package builds the figures

    write_html([result], path)


@main.command("slice")
@click.argument("checkpoint", required=False, type=click.Path())
@click.option("--dirs", type=click.IntRange(1, 2), default=2, show_default=True, help="1-D line or 2-D plane.")
@click.option("--direction", type=click.Choice(["random", "eigen", "pca", "file"]), default="random", show_default=True,
              help="random Gaussian (normalised), top Hessian eigenvectors, PCA of a trajectory, or from a file.")
@click.option("--norm", type=click.Choice(["filter", "layer", "none"]), default=None,
              help="Direction normalisation (default: filter for random, none otherwise).")
@click.option("--include-bn", is_flag=True, help="Also perturb biases and BatchNorm/LayerNorm weights (zeroed by default).")
@click.option("--range", "xrange", default=None, help="x coordinates MIN:MAX:NUM [default -1:1:51; auto for --plane/pca].")
@click.option("--yrange", default=None, help="y coordinates (default: as --range).")
@click.option("--plane", nargs=3, type=click.Path(), default=None, help="The plane through checkpoints A B C (A at the origin).")
@click.option("--trajectory", multiple=True, type=click.Path(), help="For --direction pca: a run folder or checkpoint files (repeatable).")
@click.option("--direction-file", type=click.Path(), default=None, help="For --direction file: .h5 or .pt file.")
@click.option("--no-test", is_flag=True, help="Only the training set.")
@click.option("--out", required=True, type=click.Path(), help="HDF5 file (resumed if it exists with the same settings).")
@click.option("--overwrite", is_flag=True, help="Replace an existing --out made with other settings.")
@click.option("--json", "json_path", default=None, help="Write the result as JSON to PATH (- for stdout).")
@click.option("--html", "html_path", default=None, help="Write an interactive HTML report to PATH.")
@click.option("--channels-last/--no-channels-last", "channels_last", default=None,
              help="Memory layout for 4-D inputs (default: channels_last when the model accepts it).")
@click.option("--flush-seconds", type=click.FloatRange(min=0), default=30.0, show_default=True,
              help="Fold the journal of computed points into --out at least this often.")
@point_analysis_options
def slice_cmd(checkpoint: Optional[str], dirs: int, direction: str, norm: Optional[str], include_bn: bool,
              xrange: Optional[str], yrange: Optional[str], plane: Optional[Tuple[str, str, str]],
              trajectory: Tuple[str, ...], direction_file: Optional[str], no_test: bool, out: str,
              overwrite: bool, json_path: Optional[str], html_path: Optional[str],
              channels_last: Optional[bool], flush_seconds: float, **kwargs: Any) -> None:
    """Loss and accuracy on a 1-D or 2-D slice through CHECKPOINT (Li et al. 2018)."""
    from ..distributed import is_main
    from ..slices import SliceConfig, slice_checkpoint

    auto = bool(plane) or direction == "pca"
    session_kwargs = pop_session_kwargs(kwargs)
    config = SliceConfig(
        dirs=dirs, direction=direction, norm=norm, include_bn=include_bn,
        xrange=_range(xrange, "--range", auto=auto), yrange=_range(yrange, "--yrange", auto=auto),
        plane=plane or None, trajectory=trajectory, direction_file=direction_file, test=not no_test,
        out=out, overwrite=overwrite, channels_last=channels_last, flush_seconds=flush_seconds,
        eval_batch_size=_eval_batch_size(session_kwargs))
    surface = slice_checkpoint(checkpoint, config, **session_kwargs)
    if not is_main():
        return
    if json_path:
        write_json(surface, json_path)
    if json_path != "-":
        click.echo(surface.summary())
    _write_html(out, html_path)


@main.command("interpolate")
@click.argument("a", type=click.Path())
@click.argument("b", type=click.Path())
@click.option("--range", "xrange", default="-0.5:1.5:41", show_default=True, help="alpha values MIN:MAX:NUM.")
@click.option("--no-test", is_flag=True, help="Only the training set.")
@click.option("--out", default=None, type=click.Path(), help="HDF5 file (resumable, like landscape slice).")
@click.option("--overwrite", is_flag=True, help="Replace an existing --out made with other settings.")
@click.option("--json", "json_path", default=None, help="Write the result as JSON to PATH (- for stdout).")
@click.option("--html", "html_path", default=None, help="Write an interactive HTML report to PATH.")
@click.option("--channels-last/--no-channels-last", "channels_last", default=None,
              help="Memory layout for 4-D inputs (default: channels_last when the model accepts it).")
@point_analysis_options
def interpolate_cmd(a: str, b: str, xrange: str, no_test: bool, out: Optional[str], overwrite: bool,
                    json_path: Optional[str], html_path: Optional[str], channels_last: Optional[bool],
                    **kwargs: Any) -> None:
    """Loss and accuracy along the line (1 − α)·A + α·B between two checkpoints (Goodfellow et al. 2015)."""
    from ..distributed import is_main
    from ..slices import InterpolateConfig, interpolate_checkpoints

    session_kwargs = pop_session_kwargs(kwargs)
    config = InterpolateConfig(alphas=parse_range(xrange, name="--range"), test=not no_test, out=out,
                               overwrite=overwrite, channels_last=channels_last,
                               eval_batch_size=_eval_batch_size(session_kwargs))
    result = interpolate_checkpoints(a, b, config, **session_kwargs)
    if not is_main():
        return
    if json_path:
        write_json(result, json_path)
    if json_path != "-":
        click.echo(result.summary())
    _write_html(out or result, html_path)
