"""Small JSON records written by the alignment and stacking steps (canvas, transforms, manifests).

Written atomically; read back with a :class:`~serialoct.errors.FormatError`
that names the file when it is not the JSON object a step expects.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from serialoct.errors import FormatError, InputError
from serialoct.io.atomic import write_text_atomic

__all__ = ["read_json", "write_json"]


def _plain(value: Any) -> Any:
    """JSON-able copy: NumPy values to Python, non-finite floats to None, tuples to lists."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


def write_json(path: str | os.PathLike, data: Mapping[str, Any]) -> Path:
    """Write ``data`` as indented JSON, atomically; NaN and infinities become null."""
    return write_text_atomic(path, json.dumps(_plain(data), indent=2, allow_nan=False) + "\n")


def read_json(path: str | os.PathLike, *, required: tuple[str, ...] = ()) -> dict[str, Any]:
    """Read a JSON object.

    Raises
    ------
    InputError
        The file is missing or unreadable.
    FormatError
        Not JSON, not an object, or a ``required`` key is absent.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(path, "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(path, f"cannot be read ({exc})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FormatError(path, f"not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, dict):
        raise FormatError(path, "expected a JSON object")
    missing = [k for k in required if k not in data]
    if missing:
        raise FormatError(path, f"missing key(s) {', '.join(missing)}")
    return data
