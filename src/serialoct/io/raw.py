"""Raw S-OCT tiles: ``info.txt`` headers and ``image_*.bin`` frames.

The on-disk contract is ``reference/formats.md`` §1. A tile folder holds an
``info.txt`` and one or more headerless little-endian float32 ``.bin`` files;
each file is a Fortran-order array ``(n_z, nx + n_extra, n_frames)`` and the
files, sorted by name, are concatenated along frames. A decoded tile is
``(z, x, y)`` = (depth, A-line, B-scan), float32.

Decoding order: camera-shift roll (legacy data), galvo band removal, repeat
averaging, legacy orientation. The galvo band is removed given its start; its
detection lives in :mod:`serialoct.preproc.galvo`.
"""

from __future__ import annotations

import math
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from serialoct.errors import FormatError, InputError
from serialoct.io.direct import BufferPool, read_into, write_file

__all__ = [
    "TileInfo",
    "parse_info_text",
    "read_info",
    "format_info_text",
    "tile_bin_files",
    "read_raw_frames",
    "TileReader",
    "RawFrames",
    "decode_frames",
    "read_tile",
    "finite_range",
    "require_finite",
    "write_raw_tile",
]

BIN_GLOB = "image_*.bin"
_REQUIRED_KEYS = ("nx", "ny", "width", "height")
_FLOAT32_BYTES = 4


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


# --------------------------------------------------------------------------- frames


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


def read_raw_frames(tile_dir: str | os.PathLike, info: TileInfo | None = None, *, out: np.ndarray | None = None) -> np.ndarray:
    """The recorded frames of a tile, ``(n_z, nx + n_extra, ny * n_repeat)`` float32.

    Without ``out``, a single ``.bin`` is memory-mapped (no copy) and several
    are joined into a new array. With ``out`` (a reused buffer of ``n_z * (nx
    + n_extra) * ny * n_repeat`` contiguous float32, any shape), the files are
    read into it one after the other, around the page cache where ``out`` is
    aligned (:func:`serialoct.io.direct.read_into`).

    Raises
    ------
    InputError
        If a file cannot be read.
    FormatError
        If a file's size is not a whole number of B-scans, or the frames do
        not add up to ``ny * n_repeat``.
    """
    info = read_info(tile_dir) if info is None else info
    files = tile_bin_files(tile_dir)
    geometry = f"nx={info.nx} n_extra={info.n_extra} n_z={info.n_z}"
    sizes = []
    for path in files:
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise InputError(path, f"cannot be read ({exc.strerror or exc})") from None
        if size == 0 or size % info.frame_bytes:
            raise FormatError(path, f"{size:,} bytes is not a whole number of B-scans of {info.frame_bytes:,} bytes ({geometry}; truncated?)")
        sizes.append(size)
    if sum(sizes) != info.n_frames * info.frame_bytes:
        raise FormatError(
            files[-1] if len(files) == 1 else tile_dir,
            f"{sum(sizes):,} bytes in {len(files)} file(s), expected {info.n_frames * info.frame_bytes:,} for {geometry} "
            f"ny={info.ny} n_repeat={info.n_repeat} (truncated or wrong header?)",
        )
    shape = (info.n_z, info.n_alines, info.n_frames)
    if out is None:
        try:
            parts = [np.memmap(path, dtype="<f4", mode="r", shape=(info.n_z, info.n_alines, size // info.frame_bytes), order="F")
                     for path, size in zip(files, sizes)]
        except OSError as exc:
            raise InputError(tile_dir, f"cannot be read ({exc.strerror or exc})") from None
        if len(parts) == 1:
            return parts[0]
        # Fortran order with the frames last: the files' bytes one after the other are the whole
        # array's. Joining them flat is one copy; joining the 3-D arrays would transpose to C order.
        return np.concatenate([part.reshape(-1, order="F") for part in parts]).reshape(shape, order="F")
    if out.dtype != np.float32 or out.size != math.prod(shape) or not out.flags.c_contiguous:
        raise ValueError(f"out must be {math.prod(shape):,} contiguous float32 values, not {out.dtype} {out.shape}")
    flat = out.reshape(-1).view(np.uint8)
    at = 0
    for path, size in zip(files, sizes):
        try:
            read_into(path, flat[at : at + size])
        except (OSError, EOFError) as exc:
            raise InputError(path, f"cannot be read ({getattr(exc, 'strerror', None) or exc})") from None
        at += size
    return out.reshape(-1).reshape(shape, order="F")


class TileReader:
    """Reads tiles' frames ahead of their decoding, in one background thread, ``depth`` tiles ahead.

    :meth:`schedule` tiles in the order they will be decoded; :meth:`take`
    waits for a tile's :class:`RawFrames` (read now if it was not scheduled)
    and :meth:`give` hands its buffer back, which lets the next scheduled tile
    be read. Frames are read around the page cache into reused aligned
    buffers (:func:`read_raw_frames` with ``out``): nothing of a slice stays
    in memory but the tiles being read or decoded. A read error is raised by
    :meth:`take` of that tile.
    """

    def __init__(self, info: TileInfo, depth: int = 4):
        from concurrent.futures import ThreadPoolExecutor

        self._buffers = BufferPool((info.n_z * info.n_alines * info.n_frames,))
        self._depth = max(1, int(depth))
        self._waiting: list[Path] = []  # scheduled, not yet asked of the thread
        self._reads: dict[Path, object] = {}  # asked of the thread, not yet taken
        self._ahead: set[Path] = set()  # asked of the thread, not yet given back
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tile-reader")

    def __enter__(self) -> "TileReader":
        return self

    def __exit__(self, *exc) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def schedule(self, tile_dirs) -> None:
        """Tiles to read, in this order, after those scheduled before."""
        with self._lock:
            self._waiting.extend(Path(d) for d in tile_dirs)
            self._start_reads()

    def take(self, tile_dir) -> "RawFrames":
        """The tile's header and frames (in a buffer of this reader's, to :meth:`give` back)."""
        tile_dir = Path(tile_dir)
        with self._lock:
            read = self._reads.pop(tile_dir, None)
            if read is None and tile_dir in self._waiting:  # taken before its turn: read here, not again later
                self._waiting.remove(tile_dir)
        if read is None:
            return self._read(tile_dir)
        try:
            return read.result()
        except BaseException:  # its buffer went back with the error: let the next tile be read
            with self._lock:
                self._ahead.discard(tile_dir)
                self._start_reads()
            raise

    def give(self, frames: "RawFrames") -> None:
        """Hand a taken tile's buffer back; the next scheduled tile is read into it."""
        self._buffers.give([frames.buffer])
        with self._lock:
            self._ahead.discard(frames.tile_dir)
            self._start_reads()

    def _start_reads(self) -> None:  # with the lock held
        while self._waiting and len(self._ahead) < self._depth:
            tile_dir = self._waiting.pop(0)
            self._ahead.add(tile_dir)
            self._reads[tile_dir] = self._pool.submit(self._read, tile_dir)

    def _read(self, tile_dir: Path) -> "RawFrames":
        info = read_info(tile_dir)
        buffer = self._buffers.take() if info.n_z * info.n_alines * info.n_frames == self._buffers.shape[0] else None
        try:
            frames = read_raw_frames(tile_dir, info, out=buffer)
        except BaseException:
            if buffer is not None:
                self._buffers.give([buffer])
            raise
        return RawFrames(tile_dir, info, frames, buffer)


@dataclass(frozen=True, eq=False)
class RawFrames:
    """One tile read by a :class:`TileReader`: its folder, header, frames and the reader's buffer holding them (or None)."""

    tile_dir: Path
    info: TileInfo
    frames: np.ndarray
    buffer: np.ndarray | None


def camera_scan_start(frames: np.ndarray) -> int:
    """A-line index of the saturated sample that marks the scan start (legacy cameras)."""
    return int(np.argmax(frames.max(axis=(0, 2))))


def decode_frames(
    frames: np.ndarray,
    info: TileInfo,
    *,
    galvo_band_start: int | None = None,
    fix_camera_shift: bool = False,
    legacy_orientation: bool = False,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Turn recorded frames into a tile ``(z, x, y)`` float32.

    Parameters
    ----------
    frames : ndarray, shape (n_z, nx + n_extra, ny * n_repeat), float32
        As returned by :func:`read_raw_frames`.
    info : TileInfo
        The tile's header.
    galvo_band_start : int, optional
        First fly-back A-line (may wrap around the end of the B-scan). The
        A-line axis is rolled so the band comes last, then ``[0:nx]`` kept.
        None assumes the band already sits at the end.
    fix_camera_shift : bool
        Roll the A-line axis so the saturated scan-start sample comes first.
    legacy_orientation : bool
        Rotate by 270° in the lateral plane, then flip the first lateral axis.
    out : ndarray, optional
        A C-contiguous float32 array of the tile's shape to decode into (a
        reused buffer: on some machines a fresh page costs more than the copy).

    Returns
    -------
    ndarray, shape (n_z, nx, ny) — or (n_z, ny, nx) with legacy orientation — float32
        ``out`` when given.
    """
    n_alines = info.n_alines
    start = 0
    if fix_camera_shift:
        start = camera_scan_start(frames)
    band = info.nx if galvo_band_start is None else int(galvo_band_start) % n_alines
    # After the camera roll, A-line j of the rolled scan is raw A-line (start + j); keeping the
    # nx A-lines that follow the band means raw indices band + n_extra + k, k = 0..nx-1.
    first_kept = (band + info.n_extra) % n_alines if galvo_band_start is not None else 0
    first = (start + first_kept) % n_alines
    # The kept A-lines are one run of the scan, or two where they wrap past its end: views, not a copy.
    runs = [(first, min(first + info.nx, n_alines))]
    if runs[0][1] - first < info.nx:
        runs.append((0, info.nx - (runs[0][1] - first)))
    pieces = [frames[:, lo:hi, :] for lo, hi in runs]
    if info.n_repeat > 1:
        pieces = [p.reshape(info.n_z, p.shape[1], info.ny, info.n_repeat).mean(axis=3, dtype=np.float32) for p in pieces]
    shape = (info.n_z, info.ny, info.nx) if legacy_orientation else (info.n_z, info.nx, info.ny)
    if out is None:
        out = np.empty(shape, dtype=np.float32)
    elif out.shape != shape or out.dtype != np.float32 or not out.flags.c_contiguous:
        raise ValueError(f"out must be a C-contiguous float32 array of shape {shape}, not {out.dtype} {out.shape}")
    # Legacy orientation: out is the scan rotated by 270° in the lateral plane, then flipped along its first
    # lateral axis; the inverse turns out into a view in the scan's orientation.
    scan = np.rot90(np.flip(out, axis=1), k=1, axes=(1, 2)) if legacy_orientation else out
    at = 0
    for piece in pieces:
        scan[:, at : at + piece.shape[1], :] = piece
        at += piece.shape[1]
    return out


def read_tile(
    tile_dir: str | os.PathLike,
    *,
    galvo_band_start: int | None = None,
    fix_camera_shift: bool = False,
    legacy_orientation: bool = False,
) -> np.ndarray:
    """Read one raw tile folder into a ``(z, x, y)`` float32 array.

    See :func:`decode_frames` for the options. (The mosaic step reads through a :class:`TileReader` and decodes into
    reused arrays instead.)

    Raises
    ------
    InputError, FormatError
        For a missing or malformed header, missing or mis-sized ``.bin``
        files, or NaN or infinite samples.

    Examples
    --------
    >>> from serialoct.synth import render_acquisition  # doctest: +SKIP
    """
    info = read_info(tile_dir)
    tile = decode_frames(
        read_raw_frames(tile_dir, info), info, galvo_band_start=galvo_band_start, fix_camera_shift=fix_camera_shift,
        legacy_orientation=legacy_orientation,
    )
    return require_finite(tile, tile_dir)


def require_finite(tile: np.ndarray, tile_dir: str | os.PathLike) -> np.ndarray:
    """``tile``, checked to hold no NaN or infinite sample (a :class:`FormatError` naming ``tile_dir`` otherwise)."""
    finite_range(tile, tile_dir)
    return tile


def finite_range(tile: np.ndarray, tile_dir: str | os.PathLike) -> tuple[float, float]:
    """The smallest and largest sample of ``tile``, checked to hold no NaN or infinite sample (a
    :class:`FormatError` naming ``tile_dir`` otherwise). A tile of zeros alone is ``(0, 0)``."""
    # The extremes are finite exactly when every sample is (NaN propagates through min and max): no
    # temporary mask and, unlike a float64 sum, no cast buffers (fresh memory, costly on some machines).
    lo, hi = tile.min(), tile.max()
    if not (np.isfinite(lo) and np.isfinite(hi)):
        bad = int(np.size(tile) - np.count_nonzero(np.isfinite(tile)))
        raise FormatError(tile_dir, f"{bad:,} non-finite (NaN or inf) samples in the decoded tile")
    return float(lo), float(hi)


# --------------------------------------------------------------------------- writing


def write_raw_tile(
    tile_dir: str | os.PathLike,
    frames: np.ndarray,
    values: dict[str, int | float | str],
    *,
    n_files: int = 1,
) -> None:
    """Write one tile in the instrument's raw format (the inverse of reading).

    Parameters
    ----------
    tile_dir : path
        The ``tile_xNN_yNN_zNN`` folder to create.
    frames : ndarray, shape (n_z, nx + n_extra, ny * n_repeat)
        Recorded intensities; written as little-endian float32, Fortran order.
    values : dict
        The ``info.txt`` keys, written in order.
    n_files : int
        Split the frames over this many ``image_NNNNN.bin`` files.
    """
    tile_dir = Path(tile_dir)
    tile_dir.mkdir(parents=True, exist_ok=True)
    (tile_dir / "info.txt").write_text(format_info_text(values), encoding="utf-8")
    frames = np.asarray(frames, dtype="<f4")
    for k, part in enumerate(np.array_split(frames, n_files, axis=2)):
        write_file(tile_dir / f"image_{k:05d}.bin", [np.asfortranarray(part).T])  # C order of the transpose = Fortran order
