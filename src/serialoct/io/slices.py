"""Per-slice OME-Zarr stores of the pipeline: mosaic grids (tile by tile) and stitched slices.

A mosaic grid (formats.md §2) is read and written one tile or one shard at a
time: the tile shape is the zarr chunk (how every tool finds tiles), and a
new grid is assembled shard by shard (``sharding_factor**2`` tiles), each
shard written once, so a step's memory is a few shards whatever the slice
size. A stitched slice is small enough at the working resolution (hundreds
of MB at most) to be read and written whole.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from serialoct.errors import FormatError
from serialoct.io.direct import BufferPool
from serialoct.io.omezarr import create_ome_zarr, open_ome_zarr
from serialoct.io.shards import write_shard, write_shard_made, write_volume
from serialoct.preproc.mosaic import MosaicLayout

__all__ = ["MosaicGrid", "open_mosaic_grid", "write_mosaic_grid", "StitchedSlice", "read_slice", "read_planes", "read_slice_map",
           "slice_layout", "write_slice", "SLICE_CHUNK"]

#: Lateral chunk of a stitched slice, in pixels.
SLICE_CHUNK = 128
#: Planes per chunk of a stitched slice: what needs a few planes of each slice (the stack's depth matching and
#: intensity steps) decodes those chunks only. A shard spans the whole depth, so an A-line is still one file.
SLICE_DEPTH_CHUNK = 16
#: Lateral chunks per shard, along each axis.
SLICE_SHARD_FACTOR = 4


@dataclass(frozen=True)
class MosaicGrid:
    """An opened mosaic grid: lazy access to its tiles.

    Attributes
    ----------
    array : zarr.Array, shape (Z, GX * h, GY * w)
    tile_shape : (int, int, int)
        The zarr chunk, ``(z, h, w)``.
    grid_shape : (int, int)
    voxel_size_um : (float, float, float)
        ``(z, x, y)`` in µm.
    sharding_factor : int
        Tiles per shard along each lateral axis (1 without sharding).
    extra : dict
        serialoct's group attributes (stage positions, overlap...); empty for other producers.
    """

    path: str
    array: Any = field(repr=False)
    tile_shape: tuple[int, int, int]
    grid_shape: tuple[int, int]
    voxel_size_um: tuple[float, float, float]
    sharding_factor: int
    extra: dict

    def tile(self, ix: int, iy: int) -> np.ndarray:
        """Tile ``(ix, iy)``, shape ``tile_shape``, float32."""
        _, h, w = self.tile_shape
        return np.asarray(self.array[:, ix * h : (ix + 1) * h, iy * w : (iy + 1) * w], dtype=np.float32)

    def indices(self) -> Iterator[tuple[int, int]]:
        """Every grid position, row-major."""
        for ix in range(self.grid_shape[0]):
            for iy in range(self.grid_shape[1]):
                yield ix, iy


def open_mosaic_grid(path: str | os.PathLike) -> MosaicGrid:
    """Open a mosaic grid written by serialoct or the reference pipeline.

    Raises
    ------
    FormatError
        If the array is not 3D or its shape is not a whole number of tiles.
    """
    image = open_ome_zarr(path)
    array = image.level(0)
    if array.ndim != 3:
        raise FormatError(path, f"a mosaic grid is 3D (z, y, x); found {array.ndim} axes")
    tile = tuple(int(c) for c in array.chunks)
    if array.shape[0] != tile[0] or array.shape[1] % tile[1] or array.shape[2] % tile[2]:
        raise FormatError(path, f"shape {array.shape} is not a whole grid of {tile} tiles (the zarr chunk must be the tile)")
    shards = getattr(array, "shards", None)
    factor = 1 if not shards else max(1, shards[1] // tile[1])
    voxel_um = tuple(v * 1000.0 for v in image.voxel_size_mm())
    return MosaicGrid(
        path=os.fspath(path),
        array=array,
        tile_shape=tile,
        grid_shape=(array.shape[1] // tile[1], array.shape[2] // tile[2]),
        voxel_size_um=voxel_um,
        sharding_factor=factor,
        extra=dict(image.extra_attrs or {}),
    )


def write_mosaic_grid(
    path: str | os.PathLike,
    layout: MosaicLayout,
    make_tile: Callable[[int, int], np.ndarray | None],
    *,
    extra: Mapping[str, Any] | None = None,
    workers: int = 1,
    before_commit: Callable[[], None] | None = None,
    prefetch: Callable[[list[tuple[int, int]]], None] | None = None,
    buffers: BufferPool | None = None,
    first: Iterable[tuple[int, int]] = (),
) -> None:
    """Write a mosaic grid shard by shard; ``make_tile(ix, iy)`` gives each tile (None: a hole).

    The shards are written row-major, those holding a tile of ``first`` before the others.

    With one worker each tile is made when the shard's writer comes to it and
    goes back to ``buffers`` once encoded: one tile in memory at a time, in a
    buffer that is reused (before, the kernel zeroed a fresh page for every
    byte of the first shards' tiles: ``medium`` mosaic jobs 0.61-0.70 ->
    0.55-0.59 s of CPU, peak RSS 255 -> 168 MB; BENCHMARKS.md). With more
    workers, the tiles of a shard are made ``workers`` at a
    time, and the encoding of one shard overlaps the making of the next: at
    most ``workers`` shards are in flight; tiles that ``make_tile`` took from
    ``buffers`` go back to it once their shard is written.
    ``prefetch(indices)`` is told the next shard's tiles before the current
    shard's are made (to start reading them). The store appears at ``path``
    only when complete; ``before_commit`` may raise to discard it (a check
    over all tiles).
    """
    voxel_mm = tuple(v / 1000.0 for v in layout.voxel_size_um)
    factor = layout.sharding_factor

    def write(out, region, tiles):  # a chunk is a tile: the shard's tiles encoded as they are, no block pasted
        chunks = {(0, ix - region.ix0, iy - region.iy0): tile for (ix, iy), tile in tiles.items()}
        write_shard(out.array, (0, region.ix0 // factor, region.iy0 // factor), chunks)
        if buffers is not None:
            buffers.give(tiles.values())

    def write_made(out, region):  # each tile made in its turn, given back once encoded
        tiles = set(region.tile_indices())

        def make(position):
            ij = (region.ix0 + position[1], region.iy0 + position[2])
            return make_tile(*ij) if ij in tiles else None  # a shard at the grid's edge has fewer tiles

        release = (lambda tile: buffers.give([tile])) if buffers is not None else None
        write_shard_made(out.array, (0, region.ix0 // factor, region.iy0 // factor), make, release=release)

    in_flight = []
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool, create_ome_zarr(
        path, layout.shape, voxel_size_mm=voxel_mm, chunks=layout.tile_shape, shards=layout.shards, extra_attrs=extra
    ) as out:
        early = set(first)
        regions = sorted(layout.shard_regions(), key=lambda region: early.isdisjoint(region.tile_indices()))
        if prefetch is not None and regions:
            prefetch(list(regions[0].tile_indices()))
        for k, region in enumerate(regions):
            if prefetch is not None and k + 1 < len(regions):
                prefetch(list(regions[k + 1].tile_indices()))
            if workers <= 1:
                write_made(out, region)
                continue
            indices = list(region.tile_indices())
            made = dict(zip(indices, pool.map(lambda ij: make_tile(*ij), indices)))
            tiles = {ij: tile for ij, tile in made.items() if tile is not None}
            in_flight.append(pool.submit(write, out, region, tiles))
            if len(in_flight) >= max(1, workers):
                in_flight.pop(0).result()
        for job in in_flight:
            job.result()
        if before_commit is not None:
            before_commit()


def slice_layout(shape: tuple[int, int, int]) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """``(chunks, shards)`` of a stitched slice of ``shape``: chunks of ``SLICE_DEPTH_CHUNK`` planes and
    ``SLICE_CHUNK`` pixels, shards of the whole depth and ``SLICE_SHARD_FACTOR`` chunks along each lateral axis."""
    z, rows, cols = (int(n) for n in shape)
    chunks = (min(SLICE_DEPTH_CHUNK, z), min(SLICE_CHUNK, rows), min(SLICE_CHUNK, cols))
    lateral = [-(-min(n, c * SLICE_SHARD_FACTOR) // c) * c for n, c in zip((rows, cols), chunks[1:])]
    return chunks, (-(-z // chunks[0]) * chunks[0], *lateral)


@dataclass(frozen=True, eq=False)
class StitchedSlice:
    """A stitched slice read whole: the volume, its voxel size and serialoct's attributes."""

    volume: np.ndarray
    voxel_size_um: tuple[float, float, float]
    extra: dict


def read_slice(path: str | os.PathLike) -> StitchedSlice:
    """Read a stitched slice (level 0) into memory."""
    image = open_ome_zarr(path)
    return StitchedSlice(
        volume=np.asarray(image.read(0), dtype=np.float32),
        voxel_size_um=tuple(v * 1000.0 for v in image.voxel_size_mm()),
        extra=dict(image.extra_attrs or {}),
    )


def read_planes(path: str | os.PathLike, start: int, stop: int) -> np.ndarray:
    """Planes ``start .. stop - 1`` of a stitched slice (level 0), clipped to its depth; only their chunks are decoded."""
    array = open_ome_zarr(path).level(0)
    return np.asarray(array[max(0, start) : min(stop, array.shape[0])], dtype=np.float32)


def write_slice(
    path: str | os.PathLike,
    volume: np.ndarray,
    voxel_size_um: tuple[float, float, float],
    *,
    extra: Mapping[str, Any] | None = None,
    maps: Mapping[str, np.ndarray] | None = None,
) -> None:
    """Write a stitched slice in the layout of :func:`slice_layout`, with 2-D ``maps`` of its A-lines (:func:`read_slice_map`)."""
    chunks, shards = slice_layout(volume.shape)
    for name, values in (maps or {}).items():
        if np.shape(values) != volume.shape[1:]:
            raise ValueError(f"map {name!r} of shape {np.shape(values)} does not match the A-lines of a slice of shape {volume.shape}")
    with create_ome_zarr(
        path, volume.shape, voxel_size_mm=tuple(v / 1000.0 for v in voxel_size_um), chunks=chunks, shards=shards, extra_attrs=extra
    ) as out:
        write_volume(out.array, volume)
        for name, values in (maps or {}).items():
            out.add_map(name, values)


def read_slice_map(path: str | os.PathLike, name: str) -> np.ndarray | None:
    """A 2-D map written with a stitched slice (:func:`write_slice`'s ``maps``); None when it has none."""
    return open_ome_zarr(path).map(name)
