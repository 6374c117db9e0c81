"""The parameter model: one declared parameter, its type, and value coercion.

Values reach serialoct from three places: Python code (real ``bool``/``int``
objects), YAML config files (mostly typed, but lists and ``null`` included)
and the command line (always strings). :func:`coerce` turns any of them into
the one canonical Python value of the parameter's type, or raises
:class:`~serialoct.errors.ParameterError` naming the parameter, the value and
what is allowed. Standard library only: this module is imported at CLI start-up.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

from serialoct.errors import ParameterError

__all__ = [
    "FRACTION",
    "NON_NEGATIVE",
    "POSITIVE",
    "TYPES",
    "Bounds",
    "Parameter",
    "ParamType",
    "allowed_text",
    "coerce",
    "format_value",
    "param",
    "plain",
]

ParamType = Literal["bool", "int", "float", "str", "path", "choice", "float_list"]
TYPES: tuple[str, ...] = ("bool", "int", "float", "str", "path", "choice", "float_list")

_TRUE = frozenset({"true", "yes", "y", "on", "1"})
_FALSE = frozenset({"false", "no", "n", "off", "0"})
_NULL = frozenset({"null", "none", "~"})


@dataclass(frozen=True)
class Bounds:
    """An interval of allowed numbers; ``None`` leaves that side open-ended.

    Parameters
    ----------
    low, high : float or None
        Lower and upper limits.
    low_open, high_open : bool
        Exclude the limit itself (``x > low`` rather than ``x >= low``).
    """

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def contains(self, x: float) -> bool:
        """Return whether ``x`` lies inside the interval."""
        if self.low is not None and (x <= self.low if self.low_open else x < self.low):
            return False
        if self.high is not None and (x >= self.high if self.high_open else x > self.high):
            return False
        return True

    def __str__(self) -> str:
        if self.low is not None and self.high is not None:
            left = "(" if self.low_open else "["
            right = ")" if self.high_open else "]"
            return f"in {left}{_num(self.low)}, {_num(self.high)}{right}"
        if self.low is not None:
            return f"{'>' if self.low_open else '>='} {_num(self.low)}"
        if self.high is not None:
            return f"{'<' if self.high_open else '<='} {_num(self.high)}"
        return "any value"


NON_NEGATIVE = Bounds(low=0)
POSITIVE = Bounds(low=0, low_open=True)
FRACTION = Bounds(low=0, high=1)


@dataclass(frozen=True)
class Parameter:
    """One workflow parameter, declared once.

    Parameters
    ----------
    name : str
        The reference guide's name, used verbatim in configs and on the CLI.
    default : object
        The guide's default in canonical form (a tuple for ``float_list``,
        ``None`` for a required parameter or a ``null`` default).
    type : {'bool', 'int', 'float', 'str', 'path', 'choice', 'float_list'}
        Value type. ``choice`` is a closed set of strings (see ``choices``);
        ``path`` is a string naming a file or folder.
    description : str
        One sentence on what the parameter does, with its unit.
    group : str
        Section of the workflow's parameter table (the guide's order).
    steps : tuple of str
        Pipeline steps that read the parameter; ``"workflow"`` for the
        orchestration itself (inputs, CPU limits, slice selection).
    choices : tuple or None
        Closed set of allowed values (strings for ``choice``, numbers for a
        numeric parameter such as ``allen_resolution``).
    nullable : bool
        ``null`` is an allowed value.
    required : bool
        The user must give a value; there is no default.
    bounds : Bounds or None
        Allowed interval for a number (each element of a ``float_list``).
    sentinels : tuple
        Numbers with a special meaning allowed outside ``bounds`` (the
        preprocessing ``resolution = -1`` keeps the native sampling).
    pattern, pattern_help : str or None
        Regular expression a string must match in full, and its wording
        for error messages.
    implemented : bool
        serialoct honours the parameter. A parameter that is not implemented
        yet may only keep its default.
    extension : bool
        A serialoct parameter absent from the reference guide.
    """

    name: str
    default: object
    type: ParamType
    description: str
    group: str
    steps: tuple[str, ...]
    choices: tuple | None = None
    nullable: bool = False
    required: bool = False
    bounds: Bounds | None = None
    sentinels: tuple = ()
    pattern: str | None = None
    pattern_help: str | None = None
    implemented: bool = False
    extension: bool = False

    @property
    def step(self) -> str:
        """The consuming steps as one comma-separated string."""
        return ", ".join(self.steps)


def _num(x: float) -> str:
    """Format a number without a spurious ``.0`` (``10.0`` -> ``10``)."""
    if isinstance(x, float) and x.is_integer() and abs(x) < 1e15:
        return str(int(x))
    return repr(x)


def format_value(value: object) -> str:
    """Format a value the way a user writes it in YAML or on the CLI.

    Examples
    --------
    >>> format_value(True), format_value(None), format_value((10.0, 25.0))
    ('true', 'null', '[10, 25]')
    >>> format_value("diffusion"), format_value("")
    ("'diffusion'", "''")
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return _num(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    return repr(str(value))


def plain(value: object) -> object:
    """Return ``value`` as a YAML/JSON-safe object (tuples become lists)."""
    return list(value) if isinstance(value, tuple) else value


def allowed_text(param: Parameter) -> str:
    """Describe the allowed values of ``param`` in a few words.

    Examples
    --------
    >>> allowed_text(Parameter("x", 0.2, "float", "", "", (), bounds=FRACTION))
    'number in [0, 1]'
    """
    if param.choices is not None:
        text = "one of " + ", ".join(
            c if isinstance(c, str) else _num(c) for c in param.choices
        )
    elif param.type == "bool":
        text = "true or false"
    elif param.type == "float_list":
        text = "list of numbers" + (f" {param.bounds}" if param.bounds else "")
    elif param.type in ("int", "float"):
        text = "integer" if param.type == "int" else "number"
        text += f" {param.bounds}" if param.bounds else ""
        text += "".join(f", or {_num(s)}" for s in param.sentinels)
    elif param.pattern_help:
        text = param.pattern_help
    else:
        text = "path" if param.type == "path" else "text"
    return text + " or null" if param.nullable else text


def _bad(param: Parameter, value: object, why: str = "") -> ParameterError:
    detail = f" ({why})" if why else ""
    return ParameterError(
        f"parameter {param.name!r}: {value!r} is not allowed{detail}; "
        f"expected {allowed_text(param)}"
    )


def _is_null(value: object) -> bool:
    return value is None or (isinstance(value, str) and value.strip().lower() in _NULL)


def _to_bool(param: Parameter, value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE or word in _FALSE:
            return word in _TRUE
    raise _bad(param, value, "use true/false, yes/no or 1/0")


def _to_float(param: Parameter, value: object) -> float:
    if isinstance(value, bool):
        raise _bad(param, value, "a boolean is not a number")
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise _bad(param, value, "not a number") from None
    if not math.isfinite(number):
        raise _bad(param, value, "not a finite number")
    return number


def _to_int(param: Parameter, value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass  # "10.0" or "1e3": accepted below when the number is whole
    number = _to_float(param, value)
    if not number.is_integer():
        raise _bad(param, value, "not a whole number")
    return int(number)


def _to_str(param: Parameter, value: object) -> str:
    # YAML reads `debug_slices: 25` as an integer; a plain number is still text.
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return _num(value)
    if isinstance(value, str):
        return value
    raise _bad(param, value, "not text")


def _to_float_list(param: Parameter, value: object) -> tuple[float, ...]:
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("[") and text.endswith("]"):
            text = text[1:-1]
        items: list[object] = [t for t in re.split(r"[,\s]+", text) if t]
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        items = [value]
    if not items:
        raise _bad(param, value, "the list is empty")
    numbers = []
    for item in items:
        try:
            number = _to_float(param, item)
        except ParameterError:
            raise _bad(param, value, f"{item!r} is not a number") from None
        if param.bounds is not None and not param.bounds.contains(number):
            raise _bad(param, value, f"{_num(number)} is out of range")
        numbers.append(number)
    return tuple(numbers)


_CONVERTERS = {
    "bool": _to_bool,
    "int": _to_int,
    "float": _to_float,
    "str": _to_str,
    "path": _to_str,
    "choice": _to_str,
    "float_list": _to_float_list,
}


def coerce(param: Parameter, value: object) -> object:
    """Convert ``value`` to the canonical value of ``param``'s type.

    Parameters
    ----------
    param : Parameter
        The declared parameter.
    value : object
        A Python value, a YAML value or a command-line string. Booleans
        accept ``true/false``, ``yes/no``, ``on/off``, ``1/0`` (any case);
        lists accept ``"10,25,50"`` and ``"[10, 25, 50]"``; a nullable
        parameter accepts ``None``, ``"null"``, ``"none"``, ``"~"`` and, unless
        it is text, ``""``.

    Returns
    -------
    object
        ``bool``, ``int``, ``float``, ``str``, ``tuple`` of floats or ``None``.

    Raises
    ------
    ParameterError
        The value cannot be read as the parameter's type or is not allowed;
        the message names the parameter, the value and what is allowed.
    """
    text_type = param.type in ("str", "path", "choice")
    if param.nullable and (_is_null(value) or (value == "" and not text_type)):
        return None
    if value is None:
        raise _bad(param, value, "null is not allowed here")
    result = _CONVERTERS[param.type](param, value)
    if param.choices is not None and result not in param.choices:
        raise _bad(param, value)
    if param.bounds is not None and param.type in ("int", "float"):
        if not param.bounds.contains(result) and result not in param.sentinels:
            raise _bad(param, value, "out of range")
    if param.pattern is not None and not re.fullmatch(param.pattern, result):
        raise _bad(param, value)
    return result


def param(
    name: str,
    default: object,
    type: ParamType,
    steps: str | tuple[str, ...],
    description: str,
    **options: object,
) -> Parameter:
    """Declare a parameter whose group the workflow registry fills in.

    A shorthand for the workflow tables: ``steps`` may be one step name, and
    ``group`` and ``implemented`` are set when the registry is built.
    """
    steps = (steps,) if isinstance(steps, str) else tuple(steps)
    return Parameter(name, default, type, description, "", steps, **options)
