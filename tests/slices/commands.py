"""Helpers shared by the slice tests: a command run in-process, the small slice of the digits run
that the refusal tests reuse, and the one-line-error check."""

from click.testing import CliRunner

from landscape.cli import main


def run(*args):
    """``landscape ARGS`` in-process (arguments may be paths or numbers)."""
    return CliRunner().invoke(main, [str(a) for a in args])


def digits_slice(digits_run, out, *extra):
    """A 1-D, 3-point slice of the digits run's last checkpoint on 60 samples, train set only."""
    return run("slice", digits_run / "epoch_003.pt", "--dirs", "1", "--range", "-1:1:3", "--subset", 60, "--no-test",
               "--out", out, *extra)


def one_line_error(res, *words):
    """The command failed with one line starting with ``error:`` that names every one of ``words``."""
    text = res.output.strip()
    assert res.exit_code != 0 and text.startswith("error:") and "\n" not in text, res.output
    for w in words:
        assert w in text, text
