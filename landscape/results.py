"""Turning results (frozen dataclasses, tensors, numpy values) into strict JSON.

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
from typing import Any

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
