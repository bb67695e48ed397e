"""Subpackages that are also the notebook function of the same name.

``landscape.report`` and ``landscape.sharpness`` are packages (``from landscape.report import
write_html``) and, in the Python API, functions (``landscape.report(results, "r.html")``,
``landscape.sharpness(obj, measure="adaptive")``). Python sets a package attribute to the submodule
whenever the submodule is imported, so the two cannot simply be different objects; instead the
package module itself is made callable, forwarding to :mod:`landscape.notebook`.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any


class CallablePackage(types.ModuleType):
    """A module whose call is the :mod:`landscape.notebook` function named like its last part."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        fn = getattr(importlib.import_module("landscape.notebook"), self.__name__.rsplit(".", 1)[-1])
        return fn(*args, **kwargs)


def make_callable(module_name: str) -> None:
    """Make the (already imported) module ``module_name`` callable; see the module docstring."""
    module = sys.modules[module_name]
    if not isinstance(module, CallablePackage):
        module.__class__ = CallablePackage
