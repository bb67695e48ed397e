"""Output files: checked before the work starts, written atomically, never lost at the end.

A ``hessian --json`` to an unwritable path once computed for minutes and then exited with an
``OSError`` and nothing printed. :func:`check_writable` runs when the option is parsed (the CLI
wires it to every ``--json``/``--html``), so such a path is refused before any work; and if
writing still fails at the end (disk full, a folder appearing under the name),
:func:`write_text_safely` puts the result in a fallback file and says where.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Union

from .errors import LandscapeError

PathLike = Union[str, Path]


def check_writable(path: PathLike, *, what: str = "") -> Path:
    """Make sure ``path`` can be written (creating its folder), or raise a one-line error.

    Creates missing parent folders, as writing would, and then creates and removes a scratch file
    beside the target: this is the only test that also holds for root and for read-only mounts.
    """
    p = Path(path)
    label = f"{what} {p}" if what else str(p)
    if p.is_dir():
        raise LandscapeError(f"cannot write {label}: it is a folder")
    blocker = next((a for a in p.parents if a.exists() and not a.is_dir()), None)
    if blocker is not None:
        raise LandscapeError(f"cannot write {label}: {blocker} is a file, not a folder")
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=p.parent, prefix=f".{p.name[:40]}.", suffix=".check"):
            pass
        if p.exists() and not os.access(p, os.W_OK):
            raise PermissionError("file is read-only")
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise LandscapeError(f"cannot write {label}: {reason}") from None
    return p


def fallback_path(path: PathLike) -> Path:
    """Where a result goes when ``path`` cannot be written: the current folder, else the temp folder."""
    name = Path(path).name or "landscape-result"
    here = Path.cwd() / name
    if here.resolve() != Path(path).resolve() and _can_create(here.parent):
        return _unique(here)
    return _unique(Path(tempfile.gettempdir()) / name)


def write_text_safely(path: PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically; on failure write it to :func:`fallback_path` and warn.

    Returns the path actually written. A result that took minutes to compute is never dropped
    because its destination went bad while it was being computed.
    """
    p = Path(path)
    try:
        _atomic_write(p, text)
        return p
    except OSError as exc:
        alt = fallback_path(p)
        _atomic_write(alt, text)
        print(f"warning: could not write {p} ({exc.strerror or exc}); wrote {alt} instead", file=sys.stderr)
        return alt


def _atomic_write(p: Path, text: str) -> None:
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name[:200]}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(p)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise


def _can_create(folder: Path) -> bool:
    try:
        with tempfile.NamedTemporaryFile(dir=folder, suffix=".check"):
            return True
    except OSError:
        return False


def _unique(p: Path) -> Path:
    k, cand = 1, p
    while cand.exists():
        cand = p.with_name(f"{p.stem}.{k}{p.suffix}")
        k += 1
    return cand
