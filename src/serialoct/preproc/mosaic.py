"""Mosaic-grid assembly: decoded tiles pasted edge to edge on their grid (formats.md §2).

A mosaic grid keeps every tile whole (overlaps are not removed): tile
``(ix, iy)`` occupies rows ``[ix*h, (ix+1)*h)`` and columns ``[iy*w, (iy+1)*w)``.
Resampling to isotropic voxels (``resolution > 0``) uses
:func:`serialoct.correct.resample.resample_tile_isotropic`, the same
exact-spacing resampler as the reconstruction's ``resample_mosaic_grid``.
The zarr chunk is the tile, and a shard holds ``sharding_factor**2`` tiles,
so a slice is assembled one shard at a time: the peak memory of a slice is a
shard, whatever the grid size.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from serialoct.correct.resample import resampled_tile_shape

__all__ = ["MosaicLayout", "ShardRegion", "mosaic_layout"]


@dataclass(frozen=True)
class ShardRegion:
    """The tiles of one shard: grid origin and extent, in tiles."""

    ix0: int
    iy0: int
    n_x: int
    n_y: int

    def tile_indices(self) -> Iterator[tuple[int, int]]:
        for ix in range(self.ix0, self.ix0 + self.n_x):
            for iy in range(self.iy0, self.iy0 + self.n_y):
                yield ix, iy


@dataclass(frozen=True)
class MosaicLayout:
    """Shape, chunking and voxel size of a slice's mosaic grid.

    Attributes
    ----------
    tile_shape : (int, int, int)
        Output tile ``(z, h, w)`` after any resampling.
    grid_shape : (int, int)
        Tiles along x (rows) and y (columns).
    voxel_size_um : (float, float, float)
        Output voxel along z, rows (stage x) and columns (stage y), in µm.
    sharding_factor : int
        Tiles per shard along each lateral axis.
    """

    tile_shape: tuple[int, int, int]
    grid_shape: tuple[int, int]
    voxel_size_um: tuple[float, float, float]
    sharding_factor: int

    @property
    def shape(self) -> tuple[int, int, int]:
        z, h, w = self.tile_shape
        return z, self.grid_shape[0] * h, self.grid_shape[1] * w

    @property
    def shards(self) -> tuple[int, int, int]:
        z, h, w = self.tile_shape
        s, (gx, gy) = self.sharding_factor, self.grid_shape
        return z, min(s, gx) * h, min(s, gy) * w  # no shard larger than the mosaic

    def shard_regions(self) -> Iterator[ShardRegion]:
        """Every shard of the grid, row-major; edge shards hold fewer tiles."""
        s, (gx, gy) = self.sharding_factor, self.grid_shape
        for ix0 in range(0, gx, s):
            for iy0 in range(0, gy, s):
                yield ShardRegion(ix0, iy0, min(s, gx - ix0), min(s, gy - iy0))


def mosaic_layout(
    tile_shape: tuple[int, int, int],
    grid_shape: tuple[int, int],
    native_voxel_um: tuple[float, float, float],
    *,
    resolution_um: float = -1,
    sharding_factor: int = 4,
) -> MosaicLayout:
    """The mosaic layout of a slice at native sampling (``resolution_um <= 0``) or isotropic.

    Parameters
    ----------
    tile_shape : (int, int, int)
        Decoded tile ``(z, x, y)``.
    grid_shape : (int, int)
        Tiles along x and y.
    native_voxel_um : (float, float, float)
        Axial voxel (``axial_resolution``) and lateral pixels, in µm.
    resolution_um : float
        Isotropic output voxel in µm; -1 keeps the native sampling.
    sharding_factor : int
        Tiles per shard along each lateral axis (at least 1).
    """
    if sharding_factor < 1:
        raise ValueError(f"sharding_factor must be at least 1, got {sharding_factor}")
    if resolution_um is None or resolution_um <= 0:
        return MosaicLayout(tuple(tile_shape), tuple(grid_shape), tuple(native_voxel_um), sharding_factor)
    out = resampled_tile_shape(tuple(tile_shape), tuple(native_voxel_um), resolution_um=resolution_um)
    return MosaicLayout(out, tuple(grid_shape), (float(resolution_um),) * 3, sharding_factor)
