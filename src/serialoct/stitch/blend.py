"""Render a stitched slice from its tiles and their placement, whole or one block at a time.

Each tile is resampled to its sub-pixel position (linear interpolation, the
fractional part of its position only, edges extended) and pasted at the
integer part; where tiles overlap, their values are combined by the blending
method:

``"none"``
    Each pixel comes from the tile whose border is farthest from it (the
    cut runs along the middle of each overlap): no mixing, visible steps
    where tiles differ.
``"average"``
    Plain mean of the tiles covering the pixel: a step at every tile edge
    where tiles differ in intensity.
``"diffusion"``
    Weighted mean with weights that diffuse smoothly from the tile's
    interior and fall to 0 at its edge: ``w = S(d_r / o_r) * S(d_c / o_c)``,
    ``d`` the distance of the pixel centre to the nearest tile edge along
    rows and columns, ``o`` the overlap width and ``S(t) = 3t^2 - 2t^3``
    (``t`` clipped to [0, 1]), a C1 ramp. Inside an overlap the two ramps
    sum to 1, so the image crosses from one tile to the other over the whole
    overlap without a step, and any intensity difference between tiles is
    spread over the overlap instead of showing at an edge.

:func:`blend_region` renders any rectangle of the canvas from the tiles
that touch it (fetched through a callable, e.g. from a zarr mosaic grid), so
a caller can write the stitched slice shard by shard; :func:`blend_slice`
renders the whole canvas at once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Literal

import numpy as np

from serialoct.compute import Backend, get_backend, to_numpy
from serialoct.stitch.layout import TileIndex
from serialoct.stitch.placement import Placement

__all__ = ["BlendMethod", "BLEND_METHODS", "blend_weights", "blend_region", "blend_slice"]

BlendMethod = Literal["none", "average", "diffusion"]
BLEND_METHODS: tuple[str, ...] = ("none", "average", "diffusion")


def _check_method(method: str) -> None:
    if method not in BLEND_METHODS:
        raise ValueError(f"unknown blending method {method!r}; choose one of {', '.join(BLEND_METHODS)}")


def _edge_distance(n: int) -> np.ndarray:
    """Distance of each pixel centre to the nearer edge of ``n`` pixels (0.5 at the border pixels)."""
    k = np.arange(n, dtype=np.float64) + 0.5
    return np.minimum(k, n - k)


def blend_weights(tile_shape: tuple[int, int], method: BlendMethod, *, overlap_px: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """A tile's blending weight (``"average"``, ``"diffusion"``) or border distance (``"none"``).

    Parameters
    ----------
    tile_shape : (int, int)
        ``(h, w)``.
    method : {"none", "average", "diffusion"}
    overlap_px : (float, float)
        Width of the overlaps along rows and columns (the diffusion ramps);
        at least one pixel is used.

    Returns
    -------
    ndarray, shape (h, w), float32
        Positive everywhere: 1 for ``"average"``; the smooth ramp product for
        ``"diffusion"``; ``min(d_r, d_c)`` for ``"none"``, whose largest value
        wins a pixel.

    Raises
    ------
    ValueError
        For an unknown method.

    Examples
    --------
    >>> w = blend_weights((8, 10), "diffusion", overlap_px=(2.0, 2.0))
    >>> w.shape, float(w.max()), bool(w.min() > 0)
    ((8, 10), 1.0, True)
    """
    _check_method(method)
    h, w = tile_shape
    dr, dc = _edge_distance(h), _edge_distance(w)
    if method == "average":
        return np.ones((h, w), dtype=np.float32)
    if method == "none":
        return np.minimum(dr[:, None], dc[None, :]).astype(np.float32)

    def ramp(d, width):
        t = np.clip(d / max(float(width), 1.0), 0.0, 1.0)
        return t * t * (3.0 - 2.0 * t)

    return (ramp(dr, overlap_px[0])[:, None] * ramp(dc, overlap_px[1])[None, :]).astype(np.float32)


def _subpixel_tile(tile, fraction, backend: Backend):
    """The tile moved by ``fraction`` (each in [0, 1)) pixels along rows and columns.

    Linear interpolation with the edges extended, one axis after the other:
    ``out[k] = (1 - f) t[k] + f t[k - 1]`` (``t[-1] = t[0]``), which is what
    ``scipy.ndimage.shift(order=1, mode="nearest")`` computes, at a fraction
    of its cost.
    """
    xp = backend.xp
    out = xp.asarray(tile, dtype=xp.float32)
    for axis, f in ((1, float(fraction[0])), (2, float(fraction[1]))):
        if f == 0.0:
            continue
        previous = xp.concatenate([xp.take(out, xp.asarray([0]), axis=axis), xp.take(out, xp.arange(out.shape[axis] - 1), axis=axis)], axis=axis)
        out = out + xp.float32(f) * (previous - out)
    return out


def blend_region(
    get_tile: Callable[[TileIndex], np.ndarray],
    placement: Placement,
    region: tuple[int, int, int, int],
    *,
    method: BlendMethod = "diffusion",
    backend: Backend | None = None,
) -> np.ndarray:
    """Render one rectangle of the stitched slice.

    Parameters
    ----------
    get_tile : callable
        ``get_tile((ix, iy))`` returns the tile, array of shape ``(Z, h, w)``;
        called only for the tiles that touch the region, once each.
    placement : Placement
        From :func:`serialoct.stitch.placement.solve_placement`.
    region : (int, int, int, int)
        ``(row_start, row_stop, col_start, col_stop)`` on the canvas
        (``placement.canvas_shape``); may extend beyond it (zeros there).
    method : {"none", "average", "diffusion"}
    backend : Backend, optional
        NumPy/SciPy (default) or CuPy for the resampling and sums.

    Returns
    -------
    ndarray, shape (Z, row_stop - row_start, col_stop - col_start), float32
        Zeros where no tile reaches. A pixel's value does not depend on the
        region it was rendered in, so blocks tile the canvas seamlessly.

    Raises
    ------
    ValueError
        For an unknown method, an empty region, or a tile of the wrong shape.
    """
    _check_method(method)
    backend = backend or get_backend(False)
    xp = backend.xp
    r0, r1, c0, c1 = (int(v) for v in region)
    if r1 <= r0 or c1 <= c0:
        raise ValueError(f"empty region {region}")
    h, w = placement.tile_shape
    weights = xp.asarray(blend_weights((h, w), method, overlap_px=placement.overlap_px))
    total = weight_sum = best = None
    for tile_index, position in zip(placement.tiles, placement.positions_px):
        corner = np.floor(position).astype(int)
        # Rows/columns of the region this tile covers, in canvas and in tile coordinates.
        rr0, rr1 = max(r0, corner[0]), min(r1, corner[0] + h)
        cc0, cc1 = max(c0, corner[1]), min(c1, corner[1] + w)
        if rr1 <= rr0 or cc1 <= cc0:
            continue
        tile = get_tile(tile_index)
        if tuple(tile.shape[1:]) != (h, w):
            raise ValueError(f"tile {tile_index} has shape {tuple(tile.shape)}, expected (Z, {h}, {w})")
        moved = _subpixel_tile(tile, position - corner, backend)
        if total is None:
            z = moved.shape[0]
            total = xp.zeros((z, r1 - r0, c1 - c0), dtype=xp.float32)
            weight_sum = xp.zeros((r1 - r0, c1 - c0), dtype=xp.float32)
            best = xp.full((r1 - r0, c1 - c0), -1.0, dtype=xp.float32)
        out = (slice(rr0 - r0, rr1 - r0), slice(cc0 - c0, cc1 - c0))
        inside = (slice(rr0 - corner[0], rr1 - corner[0]), slice(cc0 - corner[1], cc1 - corner[1]))
        part, weight = moved[(slice(None), *inside)], weights[inside]
        if method == "none":
            wins = weight > best[out]
            best[out] = xp.where(wins, weight, best[out])
            total[(slice(None), *out)] = xp.where(wins[None], part, total[(slice(None), *out)])
        else:
            total[(slice(None), *out)] += part * weight[None]
            weight_sum[out] += weight
    if total is None:
        z = _depth(get_tile, placement)
        return np.zeros((z, r1 - r0, c1 - c0), dtype=np.float32)
    if method != "none":
        covered = weight_sum > 0
        total /= xp.where(covered, weight_sum, xp.float32(1.0))[None]
    return to_numpy(total).astype(np.float32, copy=False)


def _depth(get_tile, placement: Placement) -> int:
    """Depth of the tiles (a region that no tile touches still needs it)."""
    return int(get_tile(placement.tiles[0]).shape[0])


def blend_slice(
    tiles: Mapping[TileIndex, np.ndarray],
    placement: Placement,
    *,
    method: BlendMethod = "diffusion",
    backend: Backend | None = None,
) -> np.ndarray:
    """The whole stitched slice (see :func:`blend_region`).

    Parameters
    ----------
    tiles : mapping of (ix, iy) to ndarray, shape (Z, h, w)
    placement : Placement
    method : {"none", "average", "diffusion"}
    backend : Backend, optional

    Returns
    -------
    ndarray, shape (Z, *placement.canvas_shape), float32
    """
    rows, cols = placement.canvas_shape
    return blend_region(tiles.__getitem__, placement, (0, rows, 0, cols), method=method, backend=backend)
