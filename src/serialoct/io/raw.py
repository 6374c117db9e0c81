"""Raw S-OCT tiles' ``image_*.bin`` frames: reading, decoding, writing (headers: :mod:`serialoct.io.tileinfo`).

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
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from serialoct.errors import FormatError, InputError
from serialoct.io.direct import BufferPool, read_into, write_file
from serialoct.io.tileinfo import TileInfo, format_info_text, read_info, tile_bin_files

__all__ = [
    "read_raw_frames",
    "checked_frame_files",
    "TileReader",
    "RawFrames",
    "decode_frames",
    "read_tile",
    "finite_range",
    "require_finite",
    "write_raw_tile",
]

def read_raw_frames(tile_dir: str | os.PathLike, info: TileInfo | None = None, *, out: np.ndarray | None = None) -> np.ndarray:
    """The recorded frames of a tile, ``(n_z, nx + n_extra, ny * n_repeat)`` float32.

    Without ``out``, a single ``.bin`` is memory-mapped (no copy) and several
    are joined into a new array. With ``out`` (a reused buffer of ``n_z * (nx
    + n_extra) * ny * n_repeat`` contiguous float32, any shape), the files are
    read into it one after the other, around the page cache where ``out`` is
    aligned (:func:`serialoct.io.direct.read_into`).

    Raises
    ------
    InputError, FormatError
        As :func:`checked_frame_files`, or if a file cannot be read.
    """
    info = read_info(tile_dir) if info is None else info
    files, sizes = checked_frame_files(tile_dir, info)
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


def checked_frame_files(tile_dir: str | os.PathLike, info: TileInfo) -> tuple[list[Path], list[int]]:
    """A tile's ``.bin`` files and their sizes, checked against its header without reading them.

    Raises
    ------
    InputError
        If a file cannot be read.
    FormatError
        If a file's size is not a whole number of B-scans, or the frames do
        not add up to ``ny * n_repeat``.
    """
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
    return files, sizes


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

    def hold(self, frames: "RawFrames") -> None:
        """Keep a taken tile's buffer for later without holding up the reads ahead (:meth:`give` it back then)."""
        with self._lock:
            self._ahead.discard(frames.tile_dir)
            self._start_reads()

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
        _transposing_copy(scan[:, at : at + piece.shape[1], :], piece)
        at += piece.shape[1]
    return out


#: Lines copied at a time by :func:`_transposing_copy` (both sides of a block stay in the L2 cache).
_COPY_LINES = 4


def _transposing_copy(dst: np.ndarray, src: np.ndarray) -> None:
    """``dst[...] = src`` for ``(z, A-line, frame)`` arrays, a few lines at a time.

    The frames are stored depth first, the tile frame by frame: copied whole, every depth plane of the
    tile walks through all of the frames' memory, which no cache holds. Blocks of a few lines across the
    axis that neither side stores contiguously (A-lines; frames in the legacy orientation, where the
    A-lines are ``dst``'s contiguous axis) are read and written within the cache: 2.6 -> 2.1 ms per
    ``medium`` tile in a mosaic job, where the frames come from the disk (BENCHMARKS.md).
    """
    axis = 2 if abs(dst.strides[1]) == dst.itemsize else 1
    for lo in range(0, src.shape[axis], _COPY_LINES):
        block = (slice(None),) * axis + (slice(lo, lo + _COPY_LINES),)
        dst[block] = src[block]


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
