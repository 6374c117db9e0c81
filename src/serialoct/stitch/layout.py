"""Where tiles start: the base layout of a slice, from the nominal grid or the motor positions.

Frame
-----
Every position in :mod:`serialoct.stitch` is the top-left pixel of a tile,
``(row, col)`` = ``(x, y)``, in pixels of the slice's *stitched frame*: the
frame of :attr:`serialoct.synth.AcquisitionPlan.stitched_px`, whose origin is
the commanded top-left of tile ``(0, 0)``. Rows go with stage x and tile index
``ix``, columns with stage y and ``iy`` (formats.md §2). Only differences
between positions matter; the whole slice may be translated freely.

The *base layout* ``m`` is what the stitcher starts from: the motor (stage)
positions converted to pixels (``use_motor_positions_for_stitching``, the
guide's default) or the nominal grid ``(ix, iy) * tile * (1 -
stitch_overlap_fraction)``. Registration measures corrections to it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

import numpy as np

__all__ = [
    "TileIndex",
    "nominal_positions_px",
    "positions_from_stage_mm",
    "base_layout",
    "neighbour_pairs",
    "tiles_from_mosaic",
]

log = logging.getLogger(__name__)

#: Grid index ``(ix, iy)`` of a tile.
TileIndex = tuple[int, int]


def nominal_positions_px(
    grid_shape: tuple[int, int],
    tile_shape: tuple[int, int],
    *,
    overlap_fraction: float = 0.2,
    present: Iterable[TileIndex] | None = None,
) -> dict[TileIndex, np.ndarray]:
    """Top-left of every tile on the commanded grid, ``(ix, iy) * (h, w) * (1 - overlap)``.

    Parameters
    ----------
    grid_shape : (int, int)
        Tiles along x (rows) and y (columns).
    tile_shape : (int, int)
        Tile ``(h, w)`` in pixels (rows, columns).
    overlap_fraction : float
        Nominal overlap of neighbouring tiles, in [0, 0.5) (``stitch_overlap_fraction``).
    present : iterable of (int, int), optional
        Tiles that exist (default: the whole grid); tile holes are left out.

    Returns
    -------
    dict of (int, int) to ndarray, shape (2,), float64
        Pixels in the stitched frame (tile ``(0, 0)`` at the origin).

    Raises
    ------
    ValueError
        For an overlap outside [0, 0.5) or a tile outside the grid.

    Examples
    --------
    >>> nominal_positions_px((2, 2), (96, 96), overlap_fraction=0.2)[1, 1]
    array([76.8, 76.8])
    """
    if not 0.0 <= overlap_fraction < 0.5:
        raise ValueError(f"overlap_fraction = {overlap_fraction}: expected 0 <= value < 0.5")
    gx, gy = grid_shape
    keys = [(ix, iy) for ix in range(gx) for iy in range(gy)] if present is None else sorted(present)
    step = np.asarray(tile_shape, dtype=np.float64) * (1.0 - overlap_fraction)
    out = {}
    for ix, iy in keys:
        if not (0 <= ix < gx and 0 <= iy < gy):
            raise ValueError(f"tile ({ix}, {iy}) is outside the {gx}x{gy} grid")
        out[(ix, iy)] = np.array([ix, iy], dtype=np.float64) * step
    return out


def positions_from_stage_mm(
    stage_mm: Mapping[TileIndex, tuple[float, float]],
    pixel_size_um: float | tuple[float, float],
    *,
    step_px: tuple[float, float] | None = None,
) -> dict[TileIndex, np.ndarray]:
    """Tile top-lefts in pixels from the reported stage positions (tile centres, mm).

    Parameters
    ----------
    stage_mm : mapping of (ix, iy) to (x_mm, y_mm)
        Reported stage position of each tile (``stage_positions_mm`` of the
        mosaic grid's attributes, keys parsed to ints).
    pixel_size_um : float or (float, float)
        Lateral pixel along rows (stage x) and columns (stage y), in µm.
    step_px : (float, float), optional
        Nominal step between neighbours in pixels. When given, the frame's
        origin is chosen so that tile ``(0, 0)`` would sit at 0 on the nominal
        grid (the least-squares origin over all tiles, so a missing tile
        ``(0, 0)`` changes nothing); otherwise the tile with the smallest
        index is put at ``its index * 0``, i.e. at the origin.

    Returns
    -------
    dict of (int, int) to ndarray, shape (2,), float64
        Pixels in the stitched frame.

    Raises
    ------
    ValueError
        For an empty mapping or a non-positive pixel size.

    Notes
    -----
    A constant offset between all stage positions and the tile top-lefts
    (centre vs corner, the grid origin) cancels in every difference, so it is
    dropped. A glitch that moves every reported position of a slice by the
    same vector is harmless here for the same reason.
    """
    if not stage_mm:
        raise ValueError("no stage positions given")
    pixel_mm = np.broadcast_to(np.asarray(pixel_size_um, dtype=np.float64), (2,)) / 1000.0
    if np.any(pixel_mm <= 0):
        raise ValueError(f"pixel_size_um = {pixel_size_um}: expected positive sizes")
    keys = sorted(stage_mm)
    px = np.array([stage_mm[k] for k in keys], dtype=np.float64) / pixel_mm
    if step_px is None:
        origin = px[0]
    else:
        index = np.array(keys, dtype=np.float64)
        origin = np.mean(px - index * np.asarray(step_px, dtype=np.float64), axis=0)
    return {k: p - origin for k, p in zip(keys, px)}


def base_layout(
    tiles: Iterable[TileIndex],
    tile_shape: tuple[int, int],
    *,
    stage_mm: Mapping[TileIndex, tuple[float, float]] | None = None,
    pixel_size_um: float | tuple[float, float] | None = None,
    use_motor_positions: bool = True,
    overlap_fraction: float = 0.2,
) -> dict[TileIndex, np.ndarray]:
    """The layout a slice is stitched from: motor positions when asked and known, else the nominal grid.

    Parameters
    ----------
    tiles : iterable of (int, int)
        The tiles present.
    tile_shape : (int, int)
        ``(h, w)`` in pixels.
    stage_mm : mapping of (ix, iy) to (x_mm, y_mm), optional
        Reported stage positions (tile centres).
    pixel_size_um : float or (float, float), optional
        Lateral pixel size, needed with ``stage_mm``.
    use_motor_positions : bool
        ``use_motor_positions_for_stitching``.
    overlap_fraction : float
        ``stitch_overlap_fraction``: the nominal grid's overlap, and the
        nominal step that anchors the motor layout's origin.

    Returns
    -------
    dict of (int, int) to ndarray, shape (2,), float64

    Raises
    ------
    ValueError
        When motor positions are asked for and given but miss a tile, or come
        without a pixel size.
    """
    tiles = sorted(tiles)
    if not tiles:
        raise ValueError("no tiles")
    grid = (max(t[0] for t in tiles) + 1, max(t[1] for t in tiles) + 1)
    nominal = nominal_positions_px(grid, tile_shape, overlap_fraction=overlap_fraction, present=tiles)
    if not use_motor_positions or stage_mm is None:
        if use_motor_positions:
            log.info("no stage positions given: tiles start on the nominal grid (overlap %.3f)", overlap_fraction)
        return nominal
    missing = [t for t in tiles if t not in stage_mm]
    if missing:
        raise ValueError(f"stage positions missing for tiles {missing[:5]}")
    if pixel_size_um is None:
        raise ValueError("pixel_size_um is needed to convert stage positions to pixels")
    step = tuple(n * (1.0 - overlap_fraction) for n in tile_shape)
    return positions_from_stage_mm({t: stage_mm[t] for t in tiles}, pixel_size_um, step_px=step)


def neighbour_pairs(tiles: Iterable[TileIndex]) -> list[tuple[TileIndex, TileIndex]]:
    """Pairs ``(a, b)`` of present tiles with ``b = a + (1, 0)`` (x neighbours) or ``a + (0, 1)`` (y neighbours).

    Examples
    --------
    >>> neighbour_pairs([(0, 0), (0, 1), (1, 0)])
    [((0, 0), (1, 0)), ((0, 0), (0, 1))]
    """
    present = set(tiles)
    pairs = []
    for ix, iy in sorted(present):
        for b in ((ix + 1, iy), (ix, iy + 1)):
            if b in present:
                pairs.append(((ix, iy), b))
    return pairs


def tiles_from_mosaic(
    mosaic: np.ndarray,
    tile_shape: tuple[int, int],
    *,
    holes: Iterable[TileIndex] = (),
) -> dict[TileIndex, np.ndarray]:
    """Views of the tiles of a mosaic grid (formats.md §2), without copying.

    Parameters
    ----------
    mosaic : array-like, shape (Z, GX * h, GY * w)
        A mosaic grid: tile ``(ix, iy)`` at rows ``[ix*h, (ix+1)*h)``,
        columns ``[iy*w, (iy+1)*w)``. Any array that slices lazily (a zarr
        array) gives lazy tiles.
    tile_shape : (int, int)
        ``(h, w)``.
    holes : iterable of (int, int)
        Tiles never acquired, left out.

    Returns
    -------
    dict of (int, int) to array, shape (Z, h, w)

    Raises
    ------
    ValueError
        If the mosaic is not a whole number of tiles.
    """
    h, w = tile_shape
    if mosaic.ndim != 3 or mosaic.shape[1] % h or mosaic.shape[2] % w:
        raise ValueError(f"mosaic shape {mosaic.shape} is not (Z, GX * {h}, GY * {w})")
    gx, gy = mosaic.shape[1] // h, mosaic.shape[2] // w
    skip = {tuple(k) for k in holes}
    return {
        (ix, iy): mosaic[:, ix * h : (ix + 1) * h, iy * w : (iy + 1) * w]
        for ix in range(gx)
        for iy in range(gy)
        if (ix, iy) not in skip
    }
