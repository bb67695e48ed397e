"""Up-front checks of options, defined once by option name and applied to all commands.

Numbers: range rules. Result files (``--json``, ``--html``): writable before the work starts.

A negative ``--batch-size`` once gave loss 0, λ 0 and "stable" with exit 0; ``--lr nan`` gave NaN
thresholds. Rather than each command checking its own flags (and some forgetting), every numeric
option whose name appears in :data:`RULES` gets a checked click type when the CLI is built, so the
same flag means the same range in every command. Non-finite floats (NaN, ±inf) are refused for
all of them. :func:`unruled_numeric_options` lets a test fail when a new numeric option has no rule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterator, List, Optional, Tuple

import click


@dataclass(frozen=True)
class Rule:
    """An allowed range ``lo (<|<=) value (<|<=) hi``; ``None`` leaves a side open."""

    lo: Optional[float] = None
    lo_open: bool = False
    hi: Optional[float] = None
    hi_open: bool = False

    def describe(self) -> str:
        left = "" if self.lo is None else f"{_fmt(self.lo)} {'<' if self.lo_open else '<='} "
        right = "" if self.hi is None else f" {'<' if self.hi_open else '<='} {_fmt(self.hi)}"
        return f"{left}x{right}" if (left or right) else "a finite number"

    def holds(self, x: float) -> bool:
        if not math.isfinite(x):
            return False
        if self.lo is not None and (x <= self.lo if self.lo_open else x < self.lo):
            return False
        return not (self.hi is not None and (x >= self.hi if self.hi_open else x > self.hi))


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


POSITIVE = Rule(lo=0, lo_open=True)
NON_NEGATIVE = Rule(lo=0)
AT_LEAST_ONE = Rule(lo=1)
AT_LEAST_TWO = Rule(lo=2)
UNIT_OPEN = Rule(lo=0, hi=1, hi_open=True)  # betas: 0 <= beta < 1
ANY_FINITE = Rule()

RULES = {
    # counts
    "batch_size": AT_LEAST_ONE, "eval_batch_size": AT_LEAST_ONE, "train_batch_size": AT_LEAST_ONE,
    "subset": AT_LEAST_ONE, "track_subset": AT_LEAST_ONE, "epochs": AT_LEAST_ONE, "steps": AT_LEAST_ONE,
    "top_k": AT_LEAST_ONE, "trace_matvecs": AT_LEAST_ONE, "density_steps": AT_LEAST_TWO,
    "density_runs": AT_LEAST_ONE, "batches": AT_LEAST_ONE, "track_batches": AT_LEAST_ONE,
    "samples": AT_LEAST_ONE, "restarts": AT_LEAST_ONE, "pac_max_samples": AT_LEAST_ONE,
    "window": AT_LEAST_TWO, "max_events": AT_LEAST_ONE, "points": AT_LEAST_TWO, "grid_points": AT_LEAST_TWO,
    "save_every": AT_LEAST_ONE, "num_classes": AT_LEAST_TWO, "plateau_patience": AT_LEAST_ONE,
    "step_size": AT_LEAST_ONE, "track_every": AT_LEAST_ONE, "switch_to_sgd": NON_NEGATIVE,
    "at": NON_NEGATIVE, "seed": NON_NEGATIVE, "max_hvps": AT_LEAST_ONE, "first_pass_subset": AT_LEAST_ONE, "levels": AT_LEAST_TWO,
    "dpi": AT_LEAST_ONE, "block_size": AT_LEAST_ONE, "keep": NON_NEGATIVE, "after": NON_NEGATIVE,
    # step sizes, radii, tolerances, scales
    "lr": POSITIVE, "lrs": POSITIVE, "switch_lr": POSITIVE, "final_lr": POSITIVE, "tol": POSITIVE,
    "eig_tol": POSITIVE, "eps": POSITIVE, "rho": POSITIVE, "adaptive_rho": POSITIVE, "sigma": POSITIVE,
    "pac_target": POSITIVE, "width": POSITIVE, "gamma": POSITIVE, "step_gamma": POSITIVE,
    "spike_threshold": POSITIVE, "threshold": POSITIVE, "alpha": POSITIVE, "time_budget": POSITIVE,
    "font_size": POSITIVE, "zmax": ANY_FINITE, "vmin": ANY_FINITE, "vmax": ANY_FINITE,
    "plateau_factor": Rule(lo=0, lo_open=True, hi=1, hi_open=True),
    # coefficients that may be zero
    "momentum": NON_NEGATIVE, "switch_momentum": NON_NEGATIVE, "weight_decay": NON_NEGATIVE,
    "dampening": NON_NEGATIVE, "lr_decay": NON_NEGATIVE, "initial_accumulator_value": NON_NEGATIVE,
    "adaptive_eta": NON_NEGATIVE, "min_rise": NON_NEGATIVE, "flush_seconds": NON_NEGATIVE,
    "beta1": UNIT_OPEN, "beta2": UNIT_OPEN, "small_grad": Rule(lo=0, lo_open=True, hi=1, hi_open=True), "dirs": Rule(lo=1, hi=2),
}


class Checked(click.ParamType):
    """A click INT or FLOAT that also enforces a :class:`Rule` (and finiteness for floats)."""

    def __init__(self, base: click.ParamType, rule: Rule) -> None:
        self.base, self.rule = base, rule
        self.name = base.name

    def convert(self, value: Any, param: Optional[click.Parameter], ctx: Optional[click.Context]) -> Any:
        rv = self.base.convert(value, param, ctx)
        if not self.rule.holds(float(rv)):
            self.fail(f"{value!r} is out of range: need {self.rule.describe()}", param, ctx)
        return rv

    def get_metavar(self, *args: Any, **kwargs: Any) -> Optional[str]:
        return self.base.get_metavar(*args, **kwargs)

    def __repr__(self) -> str:
        return f"Checked({self.base!r}, {self.rule.describe()})"


def _numeric(param: click.Parameter) -> bool:
    t = param.type
    return isinstance(t, (click.types.IntParamType, click.types.FloatParamType)) and not isinstance(t, Checked)


def _walk(cmd: click.Command, path: Tuple[str, ...] = ()) -> Iterator[Tuple[Tuple[str, ...], click.Parameter]]:
    for param in cmd.params:
        yield path, param
    if isinstance(cmd, click.Group):
        for name, sub in cmd.commands.items():
            yield from _walk(sub, path + (name,))


OUTPUT_OPTIONS = ("json_path", "html_path")


def _check_output(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """Refuse an unwritable ``--json``/``--html`` path when it is parsed, before any work."""
    from ..errors import LandscapeError
    from ..outputs import check_writable

    if value and value != "-":
        try:
            check_writable(value)
        except LandscapeError as exc:
            raise click.BadParameter(str(exc), ctx=ctx, param=param) from None
    return value


def apply_rules(root: click.Command) -> None:
    """Give every numeric option of ``root`` and its subcommands its checked type, and every
    result-file option (``--json``, ``--html``) a writability check at parse time."""
    for _, param in _walk(root):
        if not isinstance(param, click.Option):
            continue
        if _numeric(param) and param.name in RULES:
            param.type = Checked(param.type, RULES[param.name])
        if param.name in OUTPUT_OPTIONS and param.callback is None:
            param.callback = _check_output


def unruled_numeric_options(root: click.Command) -> List[str]:
    """``"command --flag"`` for every numeric option that has no rule (a test keeps this empty)."""
    return [f"{' '.join(path)} {param.opts[0]}" for path, param in _walk(root)
            if isinstance(param, click.Option) and _numeric(param)]
