"""The ``landscape`` command line: a thin layer over the Python API.

Every command parses its options, calls the API, and prints or writes results. User errors
(:class:`~landscape.errors.LandscapeError`, bad options) become one line on stderr and exit code
1 (2 for usage errors); other failures print one line too unless ``--debug`` is given anywhere on
the command line (or ``LANDSCAPE_DEBUG=1``), which shows the traceback.
"""

from __future__ import annotations

import os
import sys
import warnings
from typing import Any, Callable, Dict, List, Optional, Tuple

import click

from ..errors import LandscapeError


class LandscapeGroup(click.Group):
    """A click group that reports errors in one line instead of a traceback, and lists its
    commands with the whole first paragraph of their help (click cuts it at ~45 characters)."""

    group_class = type  # sub-groups (``probe``) list their commands the same way

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            cmd = self.get_command(ctx, name)
            if cmd is not None and not cmd.hidden:
                rows.append((name, cmd.short_help or _first_paragraph(cmd.help or "")))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def main(self, args: Optional[List[str]] = None, *a: Any, **kw: Any) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        debug = "--debug" in argv or os.environ.get("LANDSCAPE_DEBUG") == "1"
        argv = [x for x in argv if x != "--debug"]
        if int(os.environ.get("RANK", "0")) > 0:  # under torchrun only rank 0 prints
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115
        warnings.formatwarning = lambda msg, cat, *_a, **_k: f"warning: {msg}\n"
        if debug:
            return super().main(argv, *a, **kw)
        try:
            return super().main(argv, *a, standalone_mode=False, **kw)
        except click.exceptions.Abort:
            click.echo("aborted", err=True)
            sys.exit(130)
        except click.ClickException as exc:
            click.echo(f"error: {exc.format_message()}", err=True)
            sys.exit(exc.exit_code)
        except LandscapeError as exc:  # the library names settings by config field; we show flags
            click.echo(f"error: {exc.render(flag_namer(self, argv))}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except Exception as exc:  # a bug or an unforeseen input: one line, traceback with --debug
            msg = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
            click.echo(f"error: {type(exc).__name__}: {msg} (run with --debug for the traceback)", err=True)
            sys.exit(1)


# Library fields whose click parameter has another name (tried after the field's own name).
FIELD_ALIASES: Dict[str, Tuple[str, ...]] = {
    "eval_batch_size": ("batch_size",),  # SliceConfig.eval_batch_size -> slice --batch-size
    "alphas": ("xrange",),               # InterpolateConfig.alphas -> interpolate --range
    "every": ("track_every",),           # Monitor(every=) / SharpnessTracker -> train --track-sharpness
    "batch_sharpness": ("do_batch_sharpness",),  # HessianConfig.batch_sharpness -> hessian --batch-sharpness
}


def _option_flags(cmd: click.Command) -> Dict[str, str]:
    """Parameter name -> its longest ``--flag``, for the options of one command."""
    return {p.name: max((o for o in p.opts if o.startswith("--")), key=len)
            for p in cmd.params if isinstance(p, click.Option) and p.name
            and any(o.startswith("--") for o in p.opts)}


def _command_path(root: click.Command, argv: List[str]) -> List[click.Command]:
    """The commands named on ``argv``: ``[main, probe, spikes]`` for ``landscape probe spikes ...``."""
    path = [root]
    for token in argv:
        cmd = path[-1]
        if not isinstance(cmd, click.Group):
            break
        if token in cmd.commands:
            path.append(cmd.commands[token])
    return path


def _all_commands(cmd: click.Command) -> List[click.Command]:
    out = [cmd]
    if isinstance(cmd, click.Group):
        for sub in cmd.commands.values():
            out.extend(_all_commands(sub))
    return out


def flag_namer(root: click.Command, argv: List[str]) -> Callable[[str], str]:
    """How the CLI names a library field: the flag of the invoked command's option of that name
    (or of an alias in :data:`FIELD_ALIASES`), else of any command's, else ``--`` + the field
    with ``-`` for ``_``. Used to render :class:`~landscape.errors.OptionError` messages."""
    here: Dict[str, str] = {}
    for cmd in _command_path(root, argv):
        here.update(_option_flags(cmd))
    anywhere: Dict[str, str] = {}
    for cmd in reversed(_all_commands(root)):  # the first command in the tree wins a clash
        anywhere.update(_option_flags(cmd))

    def name_for(field: str) -> str:
        names = (field, *FIELD_ALIASES.get(field, ()))
        for table in (here, anywhere):
            for name in names:
                if name in table:
                    return table[name]
        return "--" + field.replace("_", "-")

    return name_for


def _first_paragraph(text: str) -> str:
    """The first paragraph of a help text on one line (no cut at "et al." or "...")."""
    return " ".join(text.strip().split("\n\n")[0].split())


@click.group(cls=LandscapeGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="landscape")
def main() -> None:
    """landscape — loss-landscape geometry for deep-learning checkpoints.

    Start with `landscape demo`: it trains small runs on the bundled digits, runs every analysis
    and writes one report. Every command takes --help; add --debug anywhere to see a Python
    traceback on errors; LANDSCAPE_PROGRESS=0 turns the progress bars off.
    """


# Each command family lives in its own module here; a module registers its commands on import.
COMMAND_MODULES = ("inspection", "basic", "hessian", "slices", "sharpness", "probe", "report", "demo", "toy",
                   "figures")


def _register() -> None:
    import importlib
    from pathlib import Path

    here = Path(__file__).parent
    for name in COMMAND_MODULES:
        if (here / f"{name}.py").exists():
            importlib.import_module(f"{__name__}.{name}")
    _add_examples(main, "landscape")


def _add_examples(cmd: click.Command, name: str) -> None:
    """End every command's --help with its example from :mod:`.examples` (unless it has an epilog)."""
    from .examples import epilog_for

    if isinstance(cmd, click.Group):
        for sub, child in cmd.commands.items():
            _add_examples(child, f"{name} {sub}")
    elif not cmd.epilog:
        cmd.epilog = epilog_for(name) or None


_register()

from .validate import apply_rules  # noqa: E402  (after every command has registered its options)

apply_rules(main)
