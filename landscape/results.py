"""Results: frozen dataclasses with generic JSON, told apart by their ``kind``.

:func:`result` is the class decorator every result type uses: it makes the class a frozen
dataclass, gives it a generic ``to_json`` (every field through :func:`jsonable`; a field with
``metadata={"json": False}`` is left out, ``{"json": "name"}`` renames it) unless the class writes
its own, and — with ``kind`` — starts the JSON with ``"kind": kind`` and registers the class in
:data:`RESULT_KINDS`, so a reader (``landscape report``) dispatches on the kind instead of guessing
from keys.

JSON has no NaN or infinity; landscape writes non-finite numbers as the strings ``"NaN"``,
``"Infinity"`` and ``"-Infinity"`` (Python's ``float()`` reads them back), so a diverged loss
stays distinguishable from an undefined one and every file parses in any JSON reader.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from pathlib import Path
from typing import Any, Callable, Dict, Optional, TypeVar

import numpy as np
import torch


def jsonable(obj: Any) -> Any:
    """Recursively convert to JSON-safe Python values (see module docstring for non-finite)."""
    if hasattr(obj, "to_json") and callable(obj.to_json):
        return jsonable(obj.to_json())
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, torch.Tensor):
        return jsonable(obj.detach().cpu().tolist() if obj.dim() else obj.item())
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, (np.floating, np.integer, np.bool_)):
        return jsonable(obj.item())
    if isinstance(obj, float):
        if math.isnan(obj):
            return "NaN"
        if math.isinf(obj):
            return "Infinity" if obj > 0 else "-Infinity"
        return obj
    if isinstance(obj, Path):
        return str(obj)
    return obj


T = TypeVar("T", bound=type)
RESULT_KINDS: Dict[str, type] = {}


def plain(obj: Any) -> Any:
    """Like :func:`jsonable` but keeps floats as they are (NaN stays a float until written)."""
    if hasattr(obj, "to_json") and callable(obj.to_json):
        return obj.to_json()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return generic_json(obj)
    if isinstance(obj, dict):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().tolist() if obj.dim() else obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (np.floating, np.integer, np.bool_)):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    return obj


def generic_json(obj: Any) -> dict:
    """A dataclass's fields as plain JSON-shaped values (metadata ``json``: False leaves a field
    out, a string renames it); non-finite floats become strings only when written (:func:`dumps`)."""
    out = {}
    for f in dataclasses.fields(obj):
        key = f.metadata.get("json", True)
        if key is False:
            continue
        out[f.name if key is True else str(key)] = plain(getattr(obj, f.name))
    return out


def internal(**kwargs: Any) -> Any:
    """A dataclass field kept out of JSON, repr and comparison (tensors, warm-start vectors, objects)."""
    return dataclasses.field(repr=False, compare=False, metadata={"json": False}, **kwargs)


def _generic_to_json(self: Any) -> dict:
    return generic_json(self)


def result(kind: Optional[str] = None) -> Callable[[T], T]:
    """Class decorator for result types (module docstring)."""

    def wrap(cls: T) -> T:
        if not dataclasses.is_dataclass(cls):
            cls = dataclasses.dataclass(frozen=True)(cls)
        custom = any("to_json" in c.__dict__ for c in cls.__mro__ if c is not object)
        base: Callable[[Any], dict] = cls.to_json if custom else _generic_to_json  # type: ignore[attr-defined]
        if kind is not None:
            def to_json(self: Any, _base: Callable[[Any], dict] = base) -> dict:
                d = _base(self)
                return {"kind": kind, **{k: v for k, v in d.items() if k != "kind"}}

            to_json.__doc__ = f"The result as JSON, starting with ``\"kind\": \"{kind}\"``."
            cls.to_json = to_json  # type: ignore[attr-defined]
            cls.RESULT_KIND = kind  # type: ignore[attr-defined]
            RESULT_KINDS[kind] = cls
        elif not custom:
            cls.to_json = _generic_to_json  # type: ignore[attr-defined]
        return cls

    return wrap


def dumps(obj: Any) -> str:
    return json.dumps(jsonable(obj), indent=2, allow_nan=False)


def write_json(obj: Any, path: str | Path) -> None:
    """Write ``obj`` as JSON to ``path`` (``-`` for stdout); only rank 0 writes under torchrun."""
    from .distributed import is_main

    if not is_main():
        return
    text = dumps(obj)
    if str(path) == "-":
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
        return
    from .outputs import write_text_safely

    write_text_safely(Path(path), text + "\n")
