"""Raw S-OCT tile headers (``info.txt``) and the names of a tile's frame files, without NumPy.

The on-disk contract is ``reference/formats.md`` §1. What only reads headers
(discovering an acquisition, the workflows' targets, the runner) imports this
module alone; decoding frames is :mod:`serialoct.io.raw`.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from serialoct.errors import FormatError, InputError

__all__ = ["BIN_GLOB", "TileInfo", "format_info_text", "parse_info_text", "read_info", "tile_bin_files"]

BIN_GLOB = "image_*.bin"
_REQUIRED_KEYS = ("nx", "ny", "width", "height")
_FLOAT32_BYTES = 4  # the frames are float32


@dataclass(frozen=True)
class TileInfo:
    """The geometry of one raw tile, read from its ``info.txt``.

    Attributes
    ----------
    nx, ny : int
        A-lines kept per B-scan (fast axis) and B-scans per tile (slow axis).
    n_z : int
        Depth samples kept, ``bottom_z - top_z + 1``.
    n_repeat, n_extra : int
        Repeated B-scans per position; galvo fly-back A-lines per B-scan.
    width_um, height_um : float
        Lateral field of view along nx and ny, in µm.
    stage_x_mm, stage_y_mm, stage_z_mm : float or None
        Motor position of the tile centre, in mm (None when absent).
    focus_z : int or None
        Focal depth index (a hint only).
    values : dict
        Every key of the file, as parsed.
    """

    nx: int
    ny: int
    n_z: int
    n_repeat: int
    n_extra: int
    width_um: float
    height_um: float
    stage_x_mm: float | None
    stage_y_mm: float | None
    stage_z_mm: float | None
    focus_z: int | None
    values: dict = field(repr=False, compare=False)

    @property
    def n_alines(self) -> int:
        """A-lines recorded per B-scan, fly-back included."""
        return self.nx + self.n_extra

    @property
    def n_frames(self) -> int:
        """B-scans recorded per tile, repeats included."""
        return self.ny * self.n_repeat

    @property
    def pixel_size_um(self) -> tuple[float, float]:
        """Lateral pixel size ``(x, y)`` in µm."""
        return self.width_um / self.nx, self.height_um / self.ny

    @property
    def shape(self) -> tuple[int, int, int]:
        """Decoded tile shape ``(z, x, y)``."""
        return self.n_z, self.nx, self.ny

    @property
    def frame_bytes(self) -> int:
        """Bytes of one recorded B-scan."""
        return self.n_z * self.n_alines * _FLOAT32_BYTES


# --------------------------------------------------------------------------- info.txt


def _parse_number(text: str) -> int | float | None:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return None


def parse_info_text(text: str, path: str | os.PathLike = "info.txt") -> dict[str, int | float | str]:
    """Parse the text of an ``info.txt`` header.

    The first non-empty line must be ``Scan info``; every other line is
    ``key: value`` (lines without ``": "`` are ignored, a repeated key keeps
    its last value). Integers stay integers, other numbers become floats and
    anything else stays a string (unknown keys are informative).

    Raises
    ------
    FormatError
        If the header line is missing.
    """
    lines = text.lstrip("\ufeff").splitlines()
    first = next((line.strip() for line in lines if line.strip()), "")
    if first.lower() != "scan info":
        shown = first[:40] or "an empty file"
        raise FormatError(path, f"first line is {shown!r}, expected 'Scan info' (not an OCT tile header)")
    values: dict[str, int | float | str] = {}
    for line in lines:
        key, sep, raw = line.partition(": ")
        if not sep:
            continue
        number = _parse_number(raw.strip())
        values[key.strip()] = raw.strip() if number is None else number
    return values


# Header integers are sizes and indices of one tile: anything beyond 2**31 is a corrupted
# value, and refusing it here keeps huge Python ints away from float and NumPy arithmetic.
_MAX_HEADER_INT = 2**31


def _get_int(values: dict, key: str, path, default: int | None = None) -> int | None:
    if key not in values:
        return default
    value = values[key]
    if isinstance(value, str) or (isinstance(value, float) and not math.isfinite(value)) or value != int(value):
        raise FormatError(path, f"{key} = {value!r} is not a whole number")
    if abs(value) > _MAX_HEADER_INT:
        raise FormatError(path, f"{key} = {value!r} is out of range (corrupted header?)")
    return int(value)


def _get_float(values: dict, key: str, path) -> float | None:
    if key not in values:
        return None
    value = values[key]
    try:
        number = float(value) if not isinstance(value, str) else math.nan
    except OverflowError:  # an integer too large for a float
        number = math.inf
    if not math.isfinite(number):
        raise FormatError(path, f"{key} = {value!r} is not a finite number")
    return number


def _tile_info(values: dict, path) -> TileInfo:
    missing = [key for key in _REQUIRED_KEYS if key not in values]
    if missing:
        raise FormatError(path, f"missing key(s) {', '.join(missing)}; an OCT tile header needs {', '.join(_REQUIRED_KEYS)}")
    top, bottom = _get_int(values, "top_z", path), _get_int(values, "bottom_z", path)
    if top is not None and bottom is not None:
        n_z = bottom - top + 1
    elif "n_samples" in values:
        n_z = _get_int(values, "n_samples", path) // 2
    else:
        raise FormatError(path, "no depth window: needs top_z and bottom_z (or n_samples)")
    info = TileInfo(
        nx=_get_int(values, "nx", path),
        ny=_get_int(values, "ny", path),
        n_z=n_z,
        n_repeat=_get_int(values, "n_repeat", path, default=1),
        n_extra=_get_int(values, "n_extra", path, default=0),
        width_um=_get_float(values, "width", path),
        height_um=_get_float(values, "height", path),
        stage_x_mm=_get_float(values, "stage_x_pos_mm", path),
        stage_y_mm=_get_float(values, "stage_y_pos_mm", path),
        stage_z_mm=_get_float(values, "stage_z_pos_mm", path),
        focus_z=_get_int(values, "focus_z", path) if "focus_z" in values else None,
        values=values,
    )
    for name in ("nx", "ny", "n_z", "n_repeat"):
        if getattr(info, name) < 1:
            raise FormatError(path, f"{name} = {getattr(info, name)} must be at least 1")
    if info.n_extra < 0:
        raise FormatError(path, f"n_extra = {info.n_extra} must not be negative")
    if info.width_um <= 0 or info.height_um <= 0:
        raise FormatError(path, f"field of view {info.width_um} x {info.height_um} µm must be positive")
    return info


def read_info(tile_dir: str | os.PathLike) -> TileInfo:
    """Read and validate the ``info.txt`` of a tile folder.

    Raises
    ------
    InputError
        If the folder has no ``info.txt``.
    FormatError
        If the header is malformed, misses a key or holds a non-numeric value.
    """
    path = Path(tile_dir) / "info.txt"
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        raise InputError(path, "missing: every tile folder needs an info.txt header") from None
    except OSError as exc:
        raise InputError(path, f"cannot be read ({exc.strerror or exc})") from None
    return _tile_info(parse_info_text(text, path), path)


def format_info_text(values: dict[str, int | float | str]) -> str:
    """Write header values in the ``info.txt`` format (inverse of :func:`parse_info_text`)."""
    body = "".join(f"{key}: {value!r}\n" if isinstance(value, float) else f"{key}: {value}\n" for key, value in values.items())
    return "Scan info\n" + body


def tile_bin_files(tile_dir: str | os.PathLike) -> list[Path]:
    """The ``image_*.bin`` files of a tile, sorted by name.

    Raises
    ------
    InputError
        If there is none.
    """
    files = sorted(Path(tile_dir).glob(BIN_GLOB))
    if not files:
        raise InputError(tile_dir, f"no {BIN_GLOB} file in this tile folder")
    return files
