"""Resample a mosaic grid to isotropic voxels, tile by tile (step ``resample_mosaic_grid``).

A mosaic grid (``reference/formats.md`` §2) keeps every tile whole, so
resampling it is resampling each tile on its own: tile ``(ix, iy)`` of shape
``(z, h, w)`` becomes a tile of shape :func:`resampled_tile_shape` at the
same grid position, and that new tile shape is the output chunk. Holes
(all-zero tiles) stay all-zero without being computed.

The voxel of the output is exactly ``resolution_um`` along every axis: the
output tile holds ``round(n * v / r)`` voxels per axis, sampled every ``r``
µm from the tile's first edge, so it covers the tile's field of view to
within half an output voxel. (``preproc.mosaic.resample_tile`` instead
stretches the grid to the exact field of view, which makes the true voxel
``n * v / m`` with ``m = round(n * v / r)``: up to ``1 / (2 m)`` relatively
off ``r``, i.e. up to half a voxel per tile, which accumulates over a mosaic
placed from motor positions.)
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from serialoct.compute import Backend, get_backend, to_numpy

__all__ = [
    "ResampledMosaic",
    "iter_mosaic_tiles",
    "mosaic_grid_shape",
    "resample_mosaic_grid",
    "resample_tile_isotropic",
    "resampled_tile_shape",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)  # holds arrays: compare fields explicitly
class ResampledMosaic:
    """A mosaic grid resampled to isotropic voxels.

    Attributes
    ----------
    mosaic : ndarray, shape (Z, GX * h, GY * w), float32
        The resampled grid; tile ``(ix, iy)`` at rows ``[ix*h, (ix+1)*h)``
        and columns ``[iy*w, (iy+1)*w)``.
    tile_shape : (int, int, int)
        The resampled tile ``(z, h, w)``: the zarr chunk of the output.
    grid_shape : (int, int)
        Tiles along x (rows) and y (columns), unchanged.
    voxel_size_um : (float, float, float)
        Output voxel ``(z, x, y)`` in µm, all equal to ``resolution_um``.
    n_holes : int
        All-zero tiles, copied as zeros.
    """

    mosaic: np.ndarray
    tile_shape: tuple[int, int, int]
    grid_shape: tuple[int, int]
    voxel_size_um: tuple[float, float, float]
    n_holes: int


def mosaic_grid_shape(mosaic_shape: tuple[int, ...], tile_shape: tuple[int, int, int]) -> tuple[int, int]:
    """Tiles along x and y of a mosaic grid, after checking the shapes agree.

    Parameters
    ----------
    mosaic_shape : (int, int, int)
        ``(Z, rows, cols)`` of the mosaic grid.
    tile_shape : (int, int, int)
        ``(z, h, w)`` of one tile.

    Raises
    ------
    ValueError
        If the mosaic is not 3D, its depth differs from the tile's, or its
        lateral size is not a whole number of tiles.
    """
    if len(mosaic_shape) != 3 or len(tile_shape) != 3:
        raise ValueError(f"mosaic shape {tuple(mosaic_shape)} and tile shape {tuple(tile_shape)}: expected (z, rows, cols) and (z, h, w)")
    z, rows, cols = mosaic_shape
    tz, h, w = tile_shape
    if min(tile_shape) < 1 or tz != z or rows % h or cols % w:
        raise ValueError(
            f"mosaic shape {tuple(mosaic_shape)} is not a grid of tiles of shape {tuple(tile_shape)}: "
            "expected the same depth and rows, cols multiples of h, w (formats.md §2)"
        )
    return rows // h, cols // w


def iter_mosaic_tiles(mosaic, tile_shape: tuple[int, int, int]) -> Iterator[tuple[tuple[int, int], np.ndarray]]:
    """Every tile of a mosaic grid, row-major, read one at a time.

    Parameters
    ----------
    mosaic : array-like, shape (Z, GX * h, GY * w)
        A NumPy array, or anything sliced like one (a zarr array reads one
        chunk per tile).
    tile_shape : (int, int, int)
        ``(z, h, w)``.

    Yields
    ------
    (ix, iy) : (int, int)
        Grid index.
    tile : ndarray, shape (z, h, w)
        The tile (a view when ``mosaic`` is a NumPy array).
    """
    gx, gy = mosaic_grid_shape(tuple(mosaic.shape), tile_shape)
    _, h, w = tile_shape
    for ix in range(gx):
        for iy in range(gy):
            yield (ix, iy), np.asarray(mosaic[:, ix * h : (ix + 1) * h, iy * w : (iy + 1) * w])


def resampled_tile_shape(
    tile_shape: tuple[int, int, int], voxel_size_um: tuple[float, float, float], *, resolution_um: float
) -> tuple[int, int, int]:
    """The tile shape at isotropic ``resolution_um``: ``round(n * v / r)``, at least 1, per axis.

    Parameters
    ----------
    tile_shape : (int, int, int)
        ``(z, h, w)`` at native sampling.
    voxel_size_um : (float, float, float)
        Native voxel ``(z, x, y)`` in µm.
    resolution_um : float
        Output voxel in µm (> 0).
    """
    _check_resolution(voxel_size_um, resolution_um)
    return tuple(max(1, int(round(n * v / resolution_um))) for n, v in zip(tile_shape, voxel_size_um))


def resample_tile_isotropic(
    tile: np.ndarray,
    voxel_size_um: tuple[float, float, float],
    *,
    resolution_um: float,
    backend: Backend | None = None,
) -> np.ndarray:
    """Resample one tile to isotropic voxels of ``resolution_um``, anti-aliased when shrinking.

    Parameters
    ----------
    tile : ndarray, shape (Z, X, Y), float32
        One tile at native sampling.
    voxel_size_um : (float, float, float)
        Native voxel ``(z, x, y)`` in µm.
    resolution_um : float
        Output voxel in µm (> 0); coarser or finer than native.
    backend : Backend, optional
        NumPy (default) or CuPy (:func:`serialoct.compute.get_backend`).

    Returns
    -------
    ndarray, shape resampled_tile_shape(...), float32, on the host

    Notes
    -----
    Output voxel ``k`` is centred ``(k + 1/2) * r`` µm from the tile's first
    edge, i.e. at input index ``(k + 1/2) * r / v - 1/2``, and is
    interpolated linearly (nearest value past the edges). Before an axis
    shrinks by ``f = r / v > 1`` a Gaussian of ``sigma = (f - 1) / 2`` input
    voxels removes what the coarser grid cannot hold (the anti-aliasing rule
    of ``skimage.transform.resize``); a linear interpolation of a
    low-passed signal keeps its mean. Growing axes are only interpolated.
    Filter and interpolation are separable and linear, so each axis is one
    ``(n_out, n_in)`` matrix (the Gaussian's impulse responses, ``nearest``
    edges, read at the output positions) applied by one matrix product,
    shrinking axes first so that later products see less data; BLAS (or
    cuBLAS) does the work (0.1-0.2 s for a (200, 300, 300) tile on 2 cores,
    3x faster than a 3D Gaussian and ``affine_transform``).
    """
    if tile.ndim != 3:
        raise ValueError(f"tile has shape {tuple(tile.shape)}: expected (z, x, y)")
    out_shape = resampled_tile_shape(tuple(tile.shape), voxel_size_um, resolution_um=resolution_um)
    backend = backend or get_backend(False)
    xp = backend.xp
    data = xp.asarray(tile, dtype=xp.float32)
    if not bool(data.any()):
        return np.zeros(out_shape, dtype=np.float32)
    shrinking_first = sorted(range(3), key=lambda a: out_shape[a] >= tile.shape[a])  # stable: z first, no copy of the full tile
    for axis in shrinking_first:
        n_in, factor = data.shape[axis], resolution_um / voxel_size_um[axis]
        if out_shape[axis] == n_in and factor == 1.0:
            continue
        matrix = xp.asarray(_axis_matrix(n_in, out_shape[axis], factor))
        front = xp.ascontiguousarray(xp.moveaxis(data, axis, 0))  # one large product beats a batch of small ones
        data = xp.moveaxis((matrix @ front.reshape(n_in, -1)).reshape((out_shape[axis],) + front.shape[1:]), 0, axis)
    return to_numpy(xp.ascontiguousarray(data)).astype(np.float32, copy=False)


def _axis_matrix(n_in: int, n_out: int, factor: float) -> np.ndarray:
    """The (n_out, n_in) float32 operator: Gaussian low-pass when shrinking, then linear interpolation at ``(k + 1/2) * factor - 1/2``."""
    from scipy.ndimage import gaussian_filter1d

    impulses = np.eye(n_in, dtype=np.float64)  # column j: the response to a unit voxel at j
    if factor > 1.0:
        impulses = gaussian_filter1d(impulses, (factor - 1.0) / 2.0, axis=0, mode="nearest")
    position = np.clip((np.arange(n_out) + 0.5) * factor - 0.5, 0.0, n_in - 1)
    lower = np.minimum(np.floor(position).astype(np.int64), max(n_in - 2, 0))
    upper = np.minimum(lower + 1, n_in - 1)
    weight = (position - lower)[:, None]
    return ((1.0 - weight) * impulses[lower] + weight * impulses[upper]).astype(np.float32)


def resample_mosaic_grid(
    mosaic,
    tile_shape: tuple[int, int, int],
    voxel_size_um: tuple[float, float, float],
    *,
    resolution_um: float = 10.0,
    backend: Backend | None = None,
) -> ResampledMosaic:
    """Resample every tile of a mosaic grid to isotropic ``resolution_um`` voxels.

    Parameters
    ----------
    mosaic : array-like, shape (Z, GX * h, GY * w), float32
        Mosaic grid at native sampling (a NumPy or zarr array; read tile by tile).
    tile_shape : (int, int, int)
        Native tile ``(z, h, w)``.
    voxel_size_um : (float, float, float)
        Native voxel ``(z, x, y)`` in µm.
    resolution_um : float
        Output isotropic voxel in µm (parameter ``resolution``, default 10).
    backend : Backend, optional
        NumPy (default) or CuPy.

    Returns
    -------
    ResampledMosaic
        The output grid holds the whole resampled slice; a streaming caller
        instead writes :func:`resample_tile_isotropic` of each tile of
        :func:`iter_mosaic_tiles` into a chunk of ``resampled_tile_shape``.

    Raises
    ------
    ValueError
        If the shapes disagree or ``resolution_um`` or a voxel size is not positive.

    Examples
    --------
    >>> import numpy as np
    >>> grid = np.ones((40, 2 * 32, 3 * 32), np.float32)
    >>> out = resample_mosaic_grid(grid, (40, 32, 32), (2.5, 5.0, 5.0), resolution_um=10.0)
    >>> out.tile_shape, out.mosaic.shape, out.voxel_size_um
    ((10, 16, 16), (10, 32, 48), (10.0, 10.0, 10.0))
    """
    gx, gy = mosaic_grid_shape(tuple(mosaic.shape), tile_shape)
    new_tile = resampled_tile_shape(tile_shape, voxel_size_um, resolution_um=resolution_um)
    backend = backend or get_backend(False)
    z, h, w = new_tile
    out = np.zeros((z, gx * h, gy * w), dtype=np.float32)
    holes = 0
    for (ix, iy), tile in iter_mosaic_tiles(mosaic, tile_shape):
        if not tile.any():
            holes += 1
            continue
        out[:, ix * h : (ix + 1) * h, iy * w : (iy + 1) * w] = resample_tile_isotropic(
            tile, voxel_size_um, resolution_um=resolution_um, backend=backend
        )
    log.info("resampled %d tiles of %s to %s at %g µm (%d holes)", gx * gy - holes, tuple(tile_shape), new_tile, resolution_um, holes)
    return ResampledMosaic(out, new_tile, (gx, gy), (float(resolution_um),) * 3, holes)


def _check_resolution(voxel_size_um, resolution_um: float) -> None:
    if len(voxel_size_um) != 3 or not all(np.isfinite(v) and v > 0 for v in voxel_size_um):
        raise ValueError(f"voxel_size_um = {tuple(voxel_size_um)}: expected three positive sizes (z, x, y) in µm")
    if resolution_um is None or not np.isfinite(resolution_um) or resolution_um <= 0:
        raise ValueError(f"resolution_um = {resolution_um}: expected a positive voxel size in µm")
