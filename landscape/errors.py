"""Errors that the CLI turns into a one-line message and a non-zero exit code.

Everything a user can get wrong (paths, specs, checkpoint contents, ranges) raises a
:class:`LandscapeError` with a message that says what was wrong and, where possible, what to do.
Anything else is a bug and keeps its traceback (shown with ``--debug``).
"""

from __future__ import annotations


class LandscapeError(Exception):
    """A user-facing error: the message is printed as one line, the process exits non-zero."""


class CheckpointError(LandscapeError):
    """The checkpoint file is missing, unreadable, or does not match the model."""


class SpecError(LandscapeError):
    """A model, data, loss or range specification cannot be understood or resolved."""
