"""Failure records: how a slice that could not be processed stays visible.

When a per-slice step refuses its input (a :class:`~serialoct.errors.SerialOctError`),
``serialoct step`` writes a small JSON record naming the slice, the step and
the reason before exiting non-zero. The workflow then completes the other
slices, and the aggregate steps mark the failed slice ``use = false`` with
that reason: a slice never silently disappears. A later successful run of the
same step deletes the record.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from serialoct.errors import FormatError
from serialoct.io.atomic import write_text_atomic

__all__ = ["FailureRecord", "read_failure", "write_failure", "clear_failure"]


@dataclass(frozen=True)
class FailureRecord:
    """Which step failed on which slice, and why."""

    slice_id: str
    step: str
    error: str


def write_failure(path: str | os.PathLike, record: FailureRecord) -> None:
    """Write a failure record atomically."""
    write_text_atomic(path, json.dumps(asdict(record), indent=2) + "\n")


def read_failure(path: str | os.PathLike) -> FailureRecord:
    """Read a failure record.

    Raises
    ------
    FormatError
        If the file is not a failure record.
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return FailureRecord(slice_id=str(data["slice_id"]), step=str(data["step"]), error=str(data["error"]))
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as exc:
        raise FormatError(path, f"not a failure record ({exc})") from None


def clear_failure(path: str | os.PathLike) -> None:
    """Delete a failure record if there is one."""
    Path(path).unlink(missing_ok=True)
