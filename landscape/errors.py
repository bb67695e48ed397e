"""Errors that the CLI turns into a one-line message and a non-zero exit code.

Everything a user can get wrong (paths, specs, checkpoint contents, ranges) raises a
:class:`LandscapeError` with a message that says what was wrong and, where possible, what to do.
Anything else is a bug and keeps its traceback (shown with ``--debug``).

Fields in the library, flags in the CLI: an error about a setting is an :class:`OptionError`
whose message names the setting by its config field (``HessianConfig.top_k``) or the keyword
argument of the public function that raised it, as a ``{placeholder}``::

    raise OptionError("{top_k} {value} exceeds the {dim} parameters", value=cfg.top_k, dim=obj.dim)

Placeholders given as keyword values are filled in as in :meth:`str.format`; the others are
fields. ``str(err)`` names the fields as Python names (``top_k 9 exceeds the 8 parameters``),
which is what a Python caller passed; the CLI renders the same error with
``err.render(name_for)``, mapping each field to its flag (``--top-k 9 exceeds ...``). The library
therefore never spells a flag, and a flag renamed in ``cli/`` changes its error messages too.
"""

from __future__ import annotations

import re
import string
from typing import Any, Callable, Dict, Tuple

NameFor = Callable[[str], str]


def python_name(field_name: str) -> str:
    """How :class:`OptionError` names a field for Python callers: the field itself."""
    return field_name


class LandscapeError(Exception):
    """A user-facing error: the message is printed as one line, the process exits non-zero.

    ``fields``: the settings the message names (none for a plain error); :meth:`render` spells
    them with another naming (the CLI's flags)."""

    fields: Tuple[str, ...] = ()

    def render(self, name_for: NameFor) -> str:
        """The message with each field named by ``name_for`` (a plain message has no fields)."""
        return str(self)


class CheckpointError(LandscapeError):
    """The checkpoint file is missing, unreadable, or does not match the model."""


class SpecError(LandscapeError):
    """A model, data, loss or range specification cannot be understood or resolved."""


class Field(str):
    """A value that names a setting (rendered like a ``{field}`` placeholder): for helpers told
    by their caller which setting they check, e.g. ``resolve_range(..., name=Field("yrange"))``."""

    __slots__ = ()


class Phrase:
    """Part of a message that names settings, kept apart from the error that will quote it: e.g.
    the label ``Phrase("{direction_file} {path}", path=p)`` that a helper puts before its own
    complaint. Built and rendered like :class:`OptionError`; ``str()`` uses the Python names."""

    def __init__(self, template: str, /, **values: Any) -> None:
        self.template, self.values = template, values
        self.fields = _template_fields(template, values)

    def render(self, name_for: NameFor) -> str:
        """The text with each field named by ``name_for``."""
        return _Renderer(name_for).format(self.template, **self.values)

    def __str__(self) -> str:
        return self.render(python_name)

    def __repr__(self) -> str:
        return f"Phrase({self.template!r}, **{self.values!r})"


class _Renderer(string.Formatter):
    """``str.format`` in which unknown names are fields, rendered by ``name_for``."""

    def __init__(self, name_for: NameFor) -> None:
        self.name_for = name_for

    def get_value(self, key: Any, args: Any, kwargs: Dict[str, Any]) -> Any:
        return kwargs[key] if key in kwargs else Field(key)

    def format_field(self, value: Any, format_spec: str) -> str:
        if isinstance(value, Field):
            return self.name_for(str(value))
        if isinstance(value, (Phrase, LandscapeError)):  # quoted text: the same naming
            return value.render(self.name_for)
        return super().format_field(value, format_spec)


def _template_fields(template: str, values: Dict[str, Any]) -> Tuple[str, ...]:
    """The field names of ``template`` (placeholders not given in ``values``, plus those of
    :class:`Field` and quoted values), in order; a field must be a plain name without conversion
    or format spec (a mistake here is a bug, so it raises ``ValueError``)."""
    out = []
    for _, name, spec, conv in string.Formatter().parse(template):
        if name is None:
            continue
        root = re.split(r"[.\[]", name, maxsplit=1)[0]
        if root in values:
            v = values[root]
            if isinstance(v, Field):
                out.append(str(v))
            elif isinstance(v, (Phrase, LandscapeError)):
                out.extend(v.fields)
            continue
        if not name.isidentifier() or spec or conv:
            raise ValueError(f"template {template!r}: field {{{name}}} must be a plain name "
                             "(give values, and their formats, as keyword arguments)")
        out.append(name)
    return tuple(dict.fromkeys(out))


class OptionError(LandscapeError):
    """An error about settings whose message names each by its config field (module docstring).

    ``OptionError(template, **values)``: ``values`` fill their placeholders (with any format spec
    or conversion, e.g. ``{value!r}``); every other placeholder is a field, rendered by
    ``render(name_for)``, and as the Python name by ``str()``. A value may be a :class:`Field`
    (a field chosen by the caller), a :class:`Phrase` or another :class:`LandscapeError` (quoted
    with the same naming).
    """

    def __init__(self, template: str, /, **values: Any) -> None:
        self.phrase = Phrase(template, **values)
        self.fields = self.phrase.fields
        super().__init__(str(self.phrase))

    def render(self, name_for: NameFor) -> str:
        return self.phrase.render(name_for)

    def __reduce__(self) -> Any:  # pickles (e.g. across ranks) as template and values
        return _rebuild, (type(self), self.phrase.template, self.phrase.values)


def _rebuild(cls: type, template: str, values: Dict[str, Any]) -> OptionError:
    return cls(template, **values)


class SpecOptionError(OptionError, SpecError):
    """An :class:`OptionError` that is also a :class:`SpecError` (a specification given as a setting)."""


class CheckpointOptionError(OptionError, CheckpointError):
    """An :class:`OptionError` that is also a :class:`CheckpointError`."""
