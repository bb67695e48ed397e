"""Resolving ``module:attr`` and ``path/to/file.py:attr`` specifications to Python objects."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any, Optional, Tuple

from .errors import Field, SpecError, SpecOptionError


def split_spec(spec: str) -> Tuple[str, Optional[str]]:
    """``"name:rest"`` -> ``("name", "rest")``; ``"name"`` -> ``("name", None)``."""
    head, sep, tail = spec.partition(":")
    return head, (tail if sep else None)


def is_factory_spec(head: str) -> bool:
    """A spec head names user code when it is a ``.py`` file or a dotted module path."""
    return head.endswith(".py") or "." in head or "/" in head


def imports_code(spec: str) -> bool:
    """Whether resolving ``spec`` would import Python code (a user file, a module, torchvision)."""
    head, _ = split_spec(spec)
    return head == "torchvision" or is_factory_spec(head)


def check_recorded_spec(spec: Any, *, what: str, source: str, trust: bool) -> str:
    """Refuse a spec read from a file's metadata when it would import code, unless trusted.

    Specs that import code (``file.py:fn``, ``pkg.mod:fn``, ``torchvision:...``) are honoured from
    the command line or Python arguments only: a checkpoint or HDF5 file that merely *records*
    one could otherwise make landscape run code just by being opened. ``trust`` (the
    ``--trust-checkpoint`` flag) lifts this for files the user trusts.
    """
    if not isinstance(spec, str) or not spec:
        raise SpecOptionError("{source} records an invalid {what} spec {spec!r}; pass {flag} yourself",
                              source=source, what=what, spec=spec, flag=Field(what))
    if imports_code(spec) and not trust:
        raise SpecOptionError("{source} records the {what} spec {spec!r}, which would import and run code; "
                              "pass {flag} yourself, or {trust} if you trust this file",
                              source=source, what=what, spec=spec, flag=Field(what))
    return spec


def resolve_factory(spec: str) -> Any:
    """Import ``file.py:attr`` or ``package.module:attr`` and return the attribute."""
    head, attr = split_spec(spec)
    if not attr:
        raise SpecError(f"factory spec {spec!r} needs the form file.py:function or module:function")
    if head.endswith(".py"):
        path = Path(head)
        if not path.is_file():
            raise SpecError(f"factory file not found: {head}")
        mod_name = f"_landscape_user_{abs(hash(str(path.resolve())))}"
        module_spec = importlib.util.spec_from_file_location(mod_name, path)
        if module_spec is None or module_spec.loader is None:
            raise SpecError(f"cannot import {head}")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[mod_name] = module
        try:
            module_spec.loader.exec_module(module)
        except Exception as exc:  # user code: report, don't crash with a traceback
            raise SpecError(f"importing {head} failed: {type(exc).__name__}: {exc}") from exc
    else:
        try:
            module = importlib.import_module(head)
        except Exception as exc:
            raise SpecError(f"cannot import module {head!r}: {type(exc).__name__}: {exc}") from exc
    try:
        return getattr(module, attr)
    except AttributeError:
        raise SpecError(f"{head} has no attribute {attr!r}") from None


def parse_kwargs(text: Optional[str]) -> dict:
    """``"width=2,act=tanh,hidden=64-64"`` -> ``{"width": 2, "act": "tanh", "hidden": "64-64"}``."""
    out: dict = {}
    if not text:
        return out
    for item in text.split(","):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SpecError(f"cannot parse option {item!r}; expected key=value")
        out[key.strip()] = _coerce(value.strip())
    return out


def _coerce(value: str) -> Any:
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    return value
