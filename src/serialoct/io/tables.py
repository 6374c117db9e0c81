"""The pipeline's small tables: ``shifts_xy.csv``, ``slice_config.csv`` and metrics JSON.

Formats are ``reference/formats.md`` §3-5. Readers are lenient where real
files vary (ids written as floats, booleans as ``yes``/``1``/``True``,
missing optional columns) and strict where a value cannot be understood:
they raise :class:`~serialoct.errors.FormatError` naming the file, the row
and the value. Writers are atomic and never edit an input in place.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

from serialoct.errors import FormatError, InputError
from serialoct.io.atomic import write_text_atomic

__all__ = [
    "ShiftRow",
    "SliceConfigRow",
    "Metric",
    "StepMetrics",
    "SHIFTS_COLUMNS",
    "SLICE_CONFIG_COLUMNS",
    "parse_bool",
    "parse_slice_id",
    "read_shifts_xy",
    "write_shifts_xy",
    "read_slice_config",
    "write_slice_config",
    "stamp_slice_config",
    "validate_shifts_xy",
    "validate_slice_config",
    "read_metrics",
    "write_metrics",
]

Status = Literal["ok", "warning", "error"]
_STATUS_RANK = {"ok": 0, "warning": 1, "error": 2}
_TRUE = {"true", "1", "yes", "y", "t", "1.0"}
_FALSE = {"false", "0", "no", "n", "f", "", "0.0"}


def parse_bool(text: str | bool | None, *, where: str | os.PathLike = "value") -> bool:
    """Read a boolean written as true/1/yes/y/t or false/0/no/n/f/empty (any case)."""
    if isinstance(text, bool):
        return text
    word = "" if text is None else str(text).strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise FormatError(where, f"{text!r} is not a boolean (use true/false, 1/0, yes/no)")


def parse_slice_id(text: str | int | float, *, where: str | os.PathLike = "value") -> str:
    """Normalise a slice id (``7``, ``"07"``, ``"7.0"``) to its two-digit string."""
    try:
        number = float(str(text).strip())
    except ValueError:
        raise FormatError(where, f"slice id {text!r} is not a number") from None
    if not number.is_integer() or not 0 <= number <= 99:
        raise FormatError(where, f"slice id {text!r} is not a whole number between 00 and 99")
    return f"{int(number):02d}"


def _parse_float(text: str, where: str) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise FormatError(where, f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise FormatError(where, f"{text!r} is not a finite number")
    return value


def _read_text(path: Path, encoding: str = "utf-8") -> str:
    try:
        return path.read_text(encoding=encoding)
    except FileNotFoundError:
        raise InputError(path, "file not found") from None
    except UnicodeDecodeError as exc:
        raise FormatError(path, f"not UTF-8 text (byte {exc.start}); is it a binary file?") from None
    except OSError as exc:
        raise InputError(path, f"cannot be read ({exc.strerror or exc})") from None


def _read_rows(path: str | os.PathLike, required: tuple[str, ...]) -> list[dict[str, str]]:
    path = Path(path)
    text = _read_text(path, "utf-8-sig")
    reader = csv.DictReader(io.StringIO(text))
    try:
        header = [name.strip() for name in (reader.fieldnames or [])]
        missing = [name for name in required if name not in header]
        if missing:
            raise FormatError(path, f"missing column(s) {', '.join(missing)}; found {', '.join(header) or 'no header'}")
        reader.fieldnames = header
        rows = []
        for row in reader:
            if None in row:
                raise FormatError(path, f"line {reader.line_num}: more values than columns")
            rows.append({key: (value or "").strip() for key, value in row.items()})
    except csv.Error as exc:
        raise FormatError(path, f"line {reader.line_num}: not valid CSV ({exc})") from None
    return rows


def _to_csv(columns: tuple[str, ...], rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


# --------------------------------------------------------------------------- shifts_xy.csv

SHIFTS_COLUMNS = ("fixed_id", "moving_id", "x_shift", "y_shift", "x_shift_mm", "y_shift_mm", "reliable")


@dataclass(frozen=True)
class ShiftRow:
    """One consecutive-slice translation of ``shifts_xy.csv`` (applied to the moving slice).

    ``x_*`` runs along stage x = mosaic rows (axis 1), ``y_*`` along columns (axis 2);
    pixels are those of the mosaic grid.
    """

    fixed_id: str
    moving_id: str
    x_shift: float
    y_shift: float
    x_shift_mm: float
    y_shift_mm: float
    reliable: bool = True


def read_shifts_xy(path: str | os.PathLike) -> list[ShiftRow]:
    """Read ``shifts_xy.csv``; a missing ``reliable`` column means every row is reliable.

    Raises
    ------
    InputError, FormatError
        Missing file or column, a non-numeric or NaN shift, a bad id or flag.
    """
    result = []
    for line, row in enumerate(_read_rows(path, SHIFTS_COLUMNS[:6]), start=2):
        where = f"{path} line {line}"
        result.append(
            ShiftRow(
                fixed_id=parse_slice_id(row["fixed_id"], where=where),
                moving_id=parse_slice_id(row["moving_id"], where=where),
                **{key: _parse_float(row[key], f"{where} column {key}") for key in SHIFTS_COLUMNS[2:6]},
                reliable=parse_bool(row.get("reliable", "1") or "1", where=f"{where} column reliable"),
            )
        )
    return result


def validate_shifts_xy(rows: list[ShiftRow], slice_ids: list[str], *, path: str | os.PathLike = "shifts_xy.csv") -> None:
    """Check that ``rows`` place every slice of ``slice_ids`` relative to the previous one.

    ``shifts_xy.csv`` holds one row per consecutive pair of the slices found
    in the raw data. The slices to place (the mosaic grids present, say) may
    be fewer (a failed slice has no mosaic), so the pair ``(a, b)`` of
    consecutive ids in ``slice_ids`` is covered by the chain of rows
    ``a -> ... -> b``.

    Raises
    ------
    FormatError
        A pair is listed twice, or a row of a needed chain is missing (the
        message names the file and the missing pair).
    """
    step: dict[str, ShiftRow] = {}
    for row in rows:
        if row.fixed_id in step:
            raise FormatError(path, f"slice {row.fixed_id} is the fixed slice of two rows (-> {step[row.fixed_id].moving_id}, -> {row.moving_id})")
        step[row.fixed_id] = row
    ordered = sorted(slice_ids)
    for fixed, moving in zip(ordered, ordered[1:]):
        current = fixed
        while current != moving:
            row = step.get(current)
            if row is None or row.moving_id > moving or row.moving_id <= current:
                raise FormatError(
                    path,
                    f"no row from slice {current} towards slice {moving}: slices {fixed} and {moving} cannot be placed "
                    "relative to each other (missing rows? regenerate it with serialoct preproc)",
                )
            current = row.moving_id


def write_shifts_xy(path: str | os.PathLike, rows: list[ShiftRow]) -> None:
    """Write ``shifts_xy.csv`` atomically (``reliable`` as 1/0)."""
    # Shifts are stage readings (µm precision): 6 decimals keep them and drop float noise.
    records = [
        {**asdict(r), **{k: round(getattr(r, k), 6) for k in SHIFTS_COLUMNS[2:6]}, "reliable": int(r.reliable)} for r in rows
    ]
    write_text_atomic(path, _to_csv(SHIFTS_COLUMNS, records))


# --------------------------------------------------------------------------- slice_config.csv

SLICE_CONFIG_COLUMNS = (
    "slice_id",
    "use",
    "exclude_reason",
    "quality_score",
    "galvo_confidence",
    "galvo_fix",
    "notes",
    "rehomed",
    "rehoming_reliable",
    "auto_excluded",
    "auto_exclude_reason",
    "interpolated",
    "interpolation_failed",
    "interpolation_method_used",
    "interpolation_fallback_reason",
)


@dataclass(frozen=True)
class SliceConfigRow:
    """One slice of ``slice_config.csv``; numbers are None when not measured."""

    slice_id: str
    use: bool = True
    exclude_reason: str = ""
    quality_score: float | None = None
    galvo_confidence: float | None = None
    galvo_fix: bool = False
    notes: str = ""
    rehomed: bool = False
    rehoming_reliable: bool = True
    auto_excluded: bool = False
    auto_exclude_reason: str = ""
    interpolated: bool = False
    interpolation_failed: bool = False
    interpolation_method_used: str = ""
    interpolation_fallback_reason: str = ""

    @property
    def motor_only(self) -> bool:
        """Stacking places this slice by motor positions only."""
        return not self.use or self.auto_excluded


_CONFIG_KINDS = {f.name: f.type for f in fields(SliceConfigRow)}


def _config_value(name: str, text: str, where: str) -> Any:
    kind = _CONFIG_KINDS[name]
    if kind == "bool":
        return parse_bool(text, where=where)
    if kind == "float | None":
        return None if text == "" else _parse_float(text, where)
    return text


def read_slice_config(path: str | os.PathLike) -> list[SliceConfigRow]:
    """Read ``slice_config.csv``; columns other than ``slice_id`` and ``use`` are optional.

    Raises
    ------
    FormatError
        A missing required column, a bad id, boolean or number, a repeated slice id.
    """
    result: dict[str, SliceConfigRow] = {}
    for line, row in enumerate(_read_rows(path, ("slice_id", "use")), start=2):
        where = f"{path} line {line}"
        values = {
            name: _config_value(name, row[name], f"{where} column {name}")
            for name in SLICE_CONFIG_COLUMNS[1:]
            if name in row
        }
        slice_id = parse_slice_id(row["slice_id"], where=where)
        if slice_id in result:
            raise FormatError(path, f"line {line}: slice {slice_id} is listed twice")
        result[slice_id] = SliceConfigRow(slice_id=slice_id, **values)
    return list(result.values())


def validate_slice_config(rows: list[SliceConfigRow], slice_ids: list[str], *, path: str | os.PathLike = "slice_config.csv") -> None:
    """Check that ``slice_config.csv`` names only slices that exist.

    A slice missing from the table takes the defaults (used); a row naming a
    slice absent from ``slice_ids`` (the slices found in the data) is almost
    always a config meant for another acquisition, so it is refused.

    Raises
    ------
    FormatError
        Naming the file, the unknown slices and the slices present.
    """
    unknown = sorted({r.slice_id for r in rows} - set(slice_ids))
    if unknown:
        raise FormatError(
            path,
            f"names slice(s) {', '.join(unknown)} that are not in the data (found {', '.join(sorted(slice_ids)) or 'none'}); "
            "is it the config of another acquisition?",
        )


def _format_config_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    return str(value)


def write_slice_config(path: str | os.PathLike, rows: list[SliceConfigRow]) -> None:
    """Write ``slice_config.csv`` atomically, all columns, sorted by slice id."""
    records = [{k: _format_config_value(v) for k, v in asdict(r).items()} for r in sorted(rows, key=lambda r: r.slice_id)]
    write_text_atomic(path, _to_csv(SLICE_CONFIG_COLUMNS, records))


def stamp_slice_config(rows: list[SliceConfigRow], updates: dict[str, dict[str, Any]]) -> list[SliceConfigRow]:
    """Return a new table with ``updates[slice_id]`` fields set (the input is unchanged).

    Raises
    ------
    FormatError
        If an update names a slice absent from the table or an unknown column.
    """
    by_id = {r.slice_id: r for r in rows}
    unknown = sorted(set(updates) - set(by_id))
    if unknown:
        raise FormatError("slice_config", f"update names unknown slice(s) {', '.join(unknown)}; known: {', '.join(sorted(by_id))}")
    for slice_id, changes in updates.items():
        bad = sorted(set(changes) - set(SLICE_CONFIG_COLUMNS[1:]))
        if bad:
            raise FormatError("slice_config", f"unknown column(s) {', '.join(bad)} for slice {slice_id}")
        by_id[slice_id] = replace(by_id[slice_id], **changes)
    return [by_id[r.slice_id] for r in rows]


# --------------------------------------------------------------------------- metrics JSON


@dataclass(frozen=True)
class Metric:
    """One named measurement of a step, with its unit and verdict."""

    value: Any
    unit: str = ""
    description: str = ""
    status: Status = "ok"


@dataclass(frozen=True)
class StepMetrics:
    """The ``<output>_metrics.json`` of one step (formats.md §5)."""

    step_name: str
    info: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Metric] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()

    @property
    def overall_status(self) -> Status:
        """The worst of the metrics' statuses, raised by any warning or error message."""
        worst = max((_STATUS_RANK[m.status] for m in self.metrics.values()), default=0)
        if self.warnings:
            worst = max(worst, 1)
        if self.errors:
            worst = 2
        return next(name for name, rank in _STATUS_RANK.items() if rank == worst)

    def to_dict(self) -> dict[str, Any]:
        return {
            "step_name": self.step_name,
            "info": self.info,
            "params": self.params,
            "metrics": {name: asdict(m) for name, m in self.metrics.items()},
            "overall_status": self.overall_status,
            "warnings": list(self.warnings),
            "errors": list(self.errors),
        }


def _json_default(value: Any) -> Any:
    # NumPy scalars and arrays reach here without importing NumPy at module level.
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def write_metrics(path: str | os.PathLike, metrics: StepMetrics) -> None:
    """Write a step's metrics JSON atomically."""
    write_text_atomic(path, json.dumps(metrics.to_dict(), indent=2, default=_json_default, allow_nan=False) + "\n")


def read_metrics(path: str | os.PathLike) -> StepMetrics:
    """Read a step's metrics JSON.

    Raises
    ------
    FormatError
        Not JSON, no ``step_name``, or a metric with an unknown status.
    """
    path = Path(path)
    try:
        data = json.loads(_read_text(path))
    except json.JSONDecodeError as exc:
        raise FormatError(path, f"not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except RecursionError:
        raise FormatError(path, "not a metrics file: nested too deeply") from None
    if not isinstance(data, dict) or "step_name" not in data:
        raise FormatError(path, "not a metrics file: no step_name")
    for key, kind in (("metrics", dict), ("info", dict), ("params", dict), ("warnings", list), ("errors", list)):
        if not isinstance(data.get(key) or kind(), kind):
            raise FormatError(path, f"{key!r} must be a JSON {'object' if kind is dict else 'array'}")
    metrics = {}
    for name, m in (data.get("metrics") or {}).items():
        if not isinstance(m, dict):
            raise FormatError(path, f"metric {name!r} must be an object with value, unit, description, status")
        status = m.get("status", "ok")
        if not isinstance(status, str) or status not in _STATUS_RANK:
            raise FormatError(path, f"metric {name!r} has status {status!r}; expected one of {', '.join(_STATUS_RANK)}")
        metrics[name] = Metric(m.get("value"), m.get("unit", ""), m.get("description", ""), status)
    return StepMetrics(
        step_name=data["step_name"],
        info=data.get("info") or {},
        params=data.get("params") or {},
        metrics=metrics,
        warnings=tuple(data.get("warnings") or ()),
        errors=tuple(data.get("errors") or ()),
    )
